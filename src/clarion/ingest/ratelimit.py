"""Per-sender token bucket, as a pure function the stores call inside their transaction."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float


def take(
    bucket: Bucket | None, *, rate_per_s: float, burst_s: float, need: int, now: float
) -> tuple[Bucket, float]:
    """Try to spend ``need`` tokens.

    Returns the bucket to store and how long to wait: ``0.0`` means granted (and spent);
    otherwise nothing was spent and the caller should retry after that many seconds —
    ``inf`` when ``need`` exceeds what the bucket can ever hold.
    """
    capacity = max(rate_per_s * burst_s, 1.0)
    if bucket is None:
        tokens = capacity
    else:
        tokens = min(capacity, bucket.tokens + max(now - bucket.updated_at, 0.0) * rate_per_s)
    if need <= tokens:
        return Bucket(tokens - need, now), 0.0
    if need > capacity:
        return Bucket(tokens, now), math.inf
    return Bucket(tokens, now), (need - tokens) / rate_per_s
