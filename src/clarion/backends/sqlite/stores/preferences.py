"""Preference documents on the embedded backend, with the evaluators' memory of them.

Evaluation reads the documents of thousands of people per claim, and the same people come
back claim after claim (seed 001 serves every evaluation "from an in-memory cache"). So the
store remembers what it read — each person's document, or that they have none — and before
every lookup asks which people changed since its last look: triggers log every insert,
update and delete of a document (``preference_changes``), and SQLite's single writer makes
the log's numbers commit order, so "after the last number I saw" misses no change.
Read-your-writes holds: a change committed before a lookup begins is in that lookup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.audit import read_audit, record_audit
from clarion.errors import StaleVersionError
from clarion.stores.records import AuditEntry, StoredPreferences
from clarion.types import JSONObject, UserId

REMEMBERED = 50_000
"""People whose documents a process keeps (tens of MB); past it, it starts afresh."""
_CHANGES_KEPT = 100_000
"""Log entries kept; a reader further behind than that forgets everything it knew."""
_CATCH_UP = 10_000
"""More changes than this since the last look: forgetting everything is cheaper."""


class SqlitePreferenceStore:
    def __init__(self, db: SqliteDatabase, *, remembered: int = REMEMBERED) -> None:
        self._db = db
        self._remembered = remembered
        self._docs: dict[UserId, StoredPreferences] = {}
        """The documents read, by person."""
        self._absent: set[UserId] = set()
        """People read who have no document (the defaults)."""
        self._seen = -1
        """The last logged change the memory reflects; -1 before the first look."""

    async def get(self, user_id: UserId) -> StoredPreferences | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT doc, version, updated_at FROM preferences WHERE user_id = ?", (user_id,)
            ).fetchone()
        )
        return None if row is None else StoredPreferences(user_id, row[0], row[1], row[2])

    async def put(
        self,
        user_id: UserId,
        doc: JSONObject,
        at: float,
        actor: str,
        *,
        expected_version: int | None = None,
    ) -> StoredPreferences:
        raw = orjson.dumps(doc).decode()

        def _put(c: sqlite3.Connection) -> int:
            before = c.execute(
                "SELECT doc, version FROM preferences WHERE user_id = ?", (user_id,)
            ).fetchone()
            if expected_version is not None and expected_version != (before[1] if before else 0):
                raise StaleVersionError(f"preferences of {user_id!r} changed meanwhile")
            row = c.execute(
                "INSERT INTO preferences (user_id, doc, version, updated_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc,"
                " version = version + 1, updated_at = excluded.updated_at RETURNING version",
                (user_id, raw, at),
            ).fetchone()
            record_audit(c, "preferences", user_id, actor, at, before and before[0], raw)
            c.execute(
                "DELETE FROM preference_changes"
                " WHERE n <= (SELECT max(n) FROM preference_changes) - ?",
                (_CHANGES_KEPT,),
            )
            return int(row[0])

        version = await self._db.write(_put)
        return StoredPreferences(user_id, raw, version, at)

    async def history(self, user_id: UserId, *, limit: int) -> list[AuditEntry]:
        return await read_audit(self._db, "preferences", user_id, limit)

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        # One connection guard around the whole lookup: the catch-up and the fill of
        # the memory never interleave with another lookup's.
        return await self._db.read(lambda c: self._lookup(c, user_ids))

    def _lookup(
        self, c: sqlite3.Connection, user_ids: Sequence[UserId]
    ) -> dict[UserId, StoredPreferences]:
        docs, absent = self._catch_up(c)
        # Set operations run in C: no Python step per person on the common, remembered path.
        wanted = set(user_ids)
        missed = wanted.difference(docs).difference(absent)
        if not missed:
            return {user: docs[user] for user in docs.keys() & wanted}
        cold = len(missed) == len(wanted)  # a fan-out to people not seen before
        rows = c.execute(
            # Driven from the id list, in key order (the batch's own, when every one of them
            # is read): one key lookup per id, each near the last.
            "SELECT p.user_id, p.doc, p.version, p.updated_at"
            " FROM json_each(?) j CROSS JOIN preferences p ON p.user_id = j.value",
            (orjson.dumps(user_ids if cold else sorted(missed)),),
        ).fetchall()
        if len(docs) + len(absent) + len(missed) > self._remembered:
            docs.clear()
            absent.clear()
        found = {r[0]: r for r in map(StoredPreferences._make, rows)}
        docs.update(found)
        absent.update(missed.difference(found))
        if cold:
            return found
        return {user: docs[user] for user in docs.keys() & wanted}

    def _catch_up(
        self, c: sqlite3.Connection
    ) -> tuple[dict[UserId, StoredPreferences], set[UserId]]:
        """Forget the people whose documents changed since the last look."""
        docs, absent, seen = self._docs, self._absent, self._seen
        changes = c.execute(
            "SELECT n, user_id FROM preference_changes WHERE n > ? ORDER BY n LIMIT ?",
            (seen, _CATCH_UP + 1),
        ).fetchall()
        if seen < 0 or len(changes) > _CATCH_UP or (changes and changes[0][0] != seen + 1):
            # The first look, far behind, or the log was pruned past what we saw.
            docs.clear()
            absent.clear()
            (self._seen,) = c.execute(
                "SELECT coalesce(max(n), 0) FROM preference_changes"
            ).fetchone()
            return docs, absent
        for _, user in changes:
            docs.pop(user, None)
            absent.discard(user)
        if changes:
            self._seen = changes[-1][0]
        return docs, absent
