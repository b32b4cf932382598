"""How a look-alike misbehaves, set by a test (or over the control API) while it runs.

A rule matches requests by address (a token, an email address, a phone number, a path: a
substring, or ``*`` for all) and says what to answer instead of success: a status with the
provider's own error body, a Retry-After, extra latency, or a dropped connection. A rule can
be limited to a number of uses, to a window of time, or to a rate (beyond ``rate_per_s`` the
provider answers 429, as real ones do under load).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rule:
    match: str = "*"
    status: int = 500
    body: dict[str, Any] | None = None
    retry_after_s: float | None = None
    latency_s: float = 0.0
    drop: bool = False
    """Close the connection without answering."""
    times: int | None = None
    """Apply this many times, then retire."""
    for_s: float | None = None
    """Apply for this long after being set."""
    rate_per_s: float | None = None
    """Only past this rate: answer 429 to requests beyond it, succeed below it."""
    set_at: float = field(default_factory=time.monotonic)
    _recent: deque[float] = field(default_factory=deque)

    def matches(self, address: str) -> bool:
        return self.match == "*" or self.match in address

    def live(self, now: float) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        return self.for_s is None or now - self.set_at < self.for_s

    def over_rate(self, now: float) -> bool:
        assert self.rate_per_s is not None
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        self._recent.append(now)
        return len(self._recent) > self.rate_per_s

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Rule:
        allowed = {
            "match",
            "status",
            "body",
            "retry_after_s",
            "latency_s",
            "drop",
            "times",
            "for_s",
            "rate_per_s",
        }
        return cls(**{k: v for k, v in doc.items() if k in allowed})


class Behaviour:
    """The rules of one look-alike, safe to change from another thread."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self.misbehaved = 0
        """Requests answered by a rule rather than with success (how hard we were hit)."""

    def add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.misbehaved = 0

    def decide(self, address: str) -> Rule | None:
        """The rule that applies to this request, if any (its use is counted)."""
        now = time.monotonic()
        with self._lock:
            self._rules = [r for r in self._rules if r.live(now)]
            for rule in self._rules:
                if not rule.matches(address):
                    continue
                if rule.rate_per_s is not None:
                    if rule.over_rate(now):
                        self.misbehaved += 1
                        return Rule(status=429, retry_after_s=rule.retry_after_s, body=rule.body)
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.misbehaved += 1
                return rule
        return None


class Recorder:
    """What a look-alike received, for assertions."""

    def __init__(self, view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._view = view
        """Turns a stored item into what readers see (parse lazily what is costly to parse)."""

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            item.setdefault("at", time.time())
            self._items.append(item)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        return [self._view(i) for i in items] if self._view else items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
