"""Preference documents on the embedded backend, with the evaluators' memory of them.

Evaluation reads the documents of thousands of people per claim, and the same people come
back claim after claim (seed 001 serves every evaluation "from an in-memory cache"). So the
store remembers what it read — each person's document, or that they have none — and before
every lookup asks which people changed since its last look: triggers log every insert,
update and delete of a document (``preference_changes``), and SQLite's single writer makes
the log's numbers commit order, so "after the last number I saw" misses no change.
Read-your-writes holds: a change committed before a lookup begins is in that lookup.
Evaluation's lookups (``documents``) use the memory; ``load_many`` (the records with their
versions, for a cache in front of this store) reads them afresh.
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
        self._docs: dict[UserId, str] = {}
        """The documents read, by person (people with the same document share the string)."""
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
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT p.user_id, p.doc, p.version, p.updated_at"
                " FROM json_each(?) j CROSS JOIN preferences p ON p.user_id = j.value",
                (orjson.dumps(user_ids),),
            ).fetchall()
        )
        return {r[0]: r for r in map(StoredPreferences._make, rows)}

    async def documents(self, user_ids: Sequence[UserId]) -> dict[str, list[UserId]]:
        # One connection guard around the whole lookup: the catch-up and the fill of
        # the memory never interleave with another lookup's.
        return await self._db.read(lambda c: self._documents(c, user_ids))

    def _documents(
        self, c: sqlite3.Connection, user_ids: Sequence[UserId]
    ) -> dict[str, list[UserId]]:
        docs, absent = self._catch_up(c)
        # Set operations run in C: no Python step per person on the common, remembered path.
        wanted = set(user_ids)
        missed = wanted.difference(docs).difference(absent)
        if missed:
            cold = len(missed) == len(wanted)  # a fan-out to people not seen before
            room = len(docs) + len(absent) + len(missed) <= self._remembered
            if not room and not cold:
                docs.clear()  # full: start afresh with these people
                absent.clear()
                missed = wanted
            # Driven from the id list, in key order (the batch's own, when every one of them
            # is read): one key lookup per id, each near the last. Grouped by document in
            # SQL, so a person costs no Python object here but their id.
            rows = c.execute(
                "SELECT p.doc, json_group_array(p.user_id)"
                " FROM json_each(?) j CROSS JOIN preferences p ON p.user_id = j.value"
                " GROUP BY p.doc",
                (orjson.dumps(list(dict.fromkeys(user_ids)) if cold else sorted(missed)),),
            ).fetchall()
            found: dict[str, list[UserId]] = {raw: orjson.loads(people) for raw, people in rows}
            if cold and not room:
                # A celebrity's fan-out: a million people seen once each would only push
                # out the people who come back (the owners of liked posts, active users).
                return found
            for raw, people in found.items():
                docs.update(dict.fromkeys(people, raw))  # one string shared by its people
            absent.update(missed.difference(docs))
            if cold:
                return found
        groups: dict[str, list[UserId]] = {}
        for user in docs.keys() & wanted:
            raw = docs[user]
            group = groups.get(raw)
            if group is None:
                groups[raw] = [user]
            else:
                group.append(user)
        return groups

    def _catch_up(self, c: sqlite3.Connection) -> tuple[dict[UserId, str], set[UserId]]:
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
