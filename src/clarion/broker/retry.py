"""Backoff arithmetic for redelivery: pure functions, no sleeping."""

from __future__ import annotations

import random


def backoff_s(
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 60.0,
    rng: random.Random | None = None,
) -> float:
    """Delay before delivery ``attempt + 1``: exponential, capped, with "equal jitter".

    Half the delay is fixed so retries are never immediate; the other half is random so a
    crowd of failures does not come back at the same instant.
    """
    ceiling = min(cap_s, base_s * 2.0 ** max(attempt - 1, 0))
    draw = rng.random() if rng is not None else random.random()
    return ceiling / 2 + draw * ceiling / 2
