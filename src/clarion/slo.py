"""Service-level objectives per priority (seed 001 Part 10): what share of deliveries must
reach the provider (or the inbox) how soon after the event was accepted.

P0 (a password-reset code): 99.9 % within 1 s. P1 (a like, a reply): 99 % within 10 s.
P2 (marketing): best effort, no target. A delivery later than its target counts against
the platform; ``clarion slo`` reports each priority over a window from the delivery log.
"""

from __future__ import annotations

from dataclasses import dataclass

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
