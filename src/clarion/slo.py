"""Service-level objectives per priority (seed 001 Part 10): what share of deliveries must
reach the provider (or the inbox) how soon after the event was accepted.

P0 (a password-reset code): 99.9 % within 1 s. P1 (a like, a reply): 99 % within 10 s.
P2 (marketing): best effort, no target. A delivery later than its target counts against
the platform; ``clarion slo`` reports each priority over a window from the delivery log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clarion.models import Priority


@dataclass(frozen=True, slots=True)
class Target:
    share: float
    """Of deliveries, e.g. 0.999."""
    within_s: float


TARGETS: dict[Priority, Target] = {
    Priority.P0: Target(0.999, 1.0),
    Priority.P1: Target(0.99, 10.0),
}


@dataclass(frozen=True, slots=True)
class Counts:
    """One priority's deliveries in a window, sorted by whose they were."""

    priority: Priority
    in_time: int = 0
    late_platform: int = 0
    """Handed over past the target on the first attempt: waiting in Clarion's queues."""
    late_provider: int = 0
    """Past the target after a provider's failure made it retry."""
    failed_provider: int = 0
    """Given up on after the provider kept failing (errors, timeouts)."""
    expired: int = 0
    """Dropped at its time to live before it could go: the platform was too slow."""
    deferred: int = 0
    """Held on purpose (quiet hours, caps, digests), then sent late or expired: not
    counted either way."""

    @property
    def counted(self) -> int:
        return (
            self.in_time
            + self.late_platform
            + self.late_provider
            + self.failed_provider
            + self.expired
        )

    @property
    def share(self) -> float | None:
        return self.in_time / self.counted if self.counted else None


def counts_sql(param: list[str], *, narrow: str = "") -> str:
    """The window's counts per priority, on either database. ``param`` holds the four
    placeholders: since, until, and the P0 and P1 targets in seconds. ``narrow`` is a
    condition on the log's rows a database adds to find the window's rows fast."""
    since, until, p0, p1 = param
    within = f"CASE e.priority WHEN 'P0' THEN {p0} WHEN 'P1' THEN {p1} END"
    late = f"d.outcome = 'delivered' AND d.at - e.created_at > {within}"
    expired = "d.outcome = 'suppressed' AND d.reason = 'expired'"
    held = (
        "EXISTS (SELECT 1 FROM deliveries h WHERE h.user_id = d.user_id AND h.seq = d.seq"
        " AND h.outcome = 'held')"
    )
    return f"""
SELECT e.priority,
  sum(CASE WHEN d.outcome = 'delivered' AND ({within} IS NULL
           OR d.at - e.created_at <= {within}) THEN 1 ELSE 0 END),
  sum(CASE WHEN {late} AND d.attempt = 1 AND NOT {held} THEN 1 ELSE 0 END),
  sum(CASE WHEN {late} AND d.attempt > 1 AND NOT {held} THEN 1 ELSE 0 END),
  sum(CASE WHEN d.outcome = 'failed' AND d.reason LIKE 'gave up%' THEN 1 ELSE 0 END),
  sum(CASE WHEN {expired} AND NOT {held} THEN 1 ELSE 0 END),
  sum(CASE WHEN ({late} OR {expired}) AND {held} THEN 1 ELSE 0 END)
FROM deliveries d JOIN events e ON e.seq = d.seq
WHERE d.at >= {since} AND d.at < {until}{f" AND {narrow}" if narrow else ""}
GROUP BY e.priority
"""


def counts_of(rows: Sequence[Sequence[Any]]) -> list[Counts]:
    """``counts_sql``'s rows, one ``Counts`` per priority (zeros where none were sent)."""
    found = {}
    for row in rows:
        priority = Priority(str(row[0]))
        found[priority] = Counts(priority, *(int(v or 0) for v in row[1:]))
    return [found.get(p, Counts(p)) for p in Priority]
