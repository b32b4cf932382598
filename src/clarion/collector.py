"""The cyclic garbage collector, tuned for long-running processes.

An API process holding 10,000 live streams keeps millions of objects alive (each
connection's task, queue, request and buffers), and CPython's default thresholds (a young
collection every 700 allocations) made the collector a third of its time in ``clarion bench
stream``: objects that survive a few milliseconds (a queued message) keep promoting, and
full collections walk everything. Started processes freeze what they loaded (modules,
settings, the app: never garbage) out of the collector's sight and collect young objects
less often. Reference counting still frees almost everything at once; only cycles wait.
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Allocations between young collections (CPython's default: 700)."""


def settle() -> None:
    """Call once the process has started: what exists now lives as long as it does."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, 20, 20)
