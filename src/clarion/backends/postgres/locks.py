"""Per-key locks for read-decide-write steps that PostgreSQL rows alone cannot guard (a
key with no row yet): transaction-scoped advisory locks, taken in one order by everyone so
two workers locking overlapping keys never deadlock."""

from __future__ import annotations

from collections.abc import Iterable

from asyncpg import Connection

# Sorted in a subquery PostgreSQL cannot flatten (DISTINCT, ORDER BY): the locks are taken
# in hash order whatever order the keys came in.
_LOCK = """
SELECT count(pg_advisory_xact_lock($1, h)) FROM (
    SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) k ORDER BY h
) ordered
"""

FREQUENCY = 0x46726571  # "Freq"
AGGREGATES = 0x41676772  # "Aggr"
COLLAPSE = 0x436F6C6C  # "Coll"
DIGESTS = 0x44696765  # "Dige"


async def lock_keys(c: Connection, space: int, keys: Iterable[str]) -> None:
    """Hold a lock on each of ``keys`` (in the namespace ``space``) until the transaction
    ends; another transaction locking one of them waits for this one."""
    await c.execute(_LOCK, space, sorted(set(keys)))
