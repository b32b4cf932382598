"""Control-plane records: templates, provider configurations, shared provider tokens,
status webhooks, and generated secrets."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.stores.records import StatusHook, TemplateVersion
from clarion.stores.rows import HOOK_COLUMNS, hook
from clarion.types import JSONObject


class PostgresTemplateStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def put(self, template_id: str, doc: JSONObject, at: float, actor: str) -> int:
        async with self._db.transaction() as c:
            await c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", template_id)
            version: int = await c.fetchval(
                "INSERT INTO templates (template_id, version, doc, created_at, created_by)"
                " SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4 FROM templates"
                " WHERE template_id = $1 RETURNING version",
                template_id,
                orjson.dumps(doc).decode(),
                at,
                actor,
            )
            return version

    async def get(self, template_id: str, version: int | None = None) -> TemplateVersion | None:
        if version is None:
            row = await self._db.fetchrow(
                "SELECT version, doc, created_at, created_by FROM templates"
                " WHERE template_id = $1 ORDER BY version DESC LIMIT 1",
                template_id,
            )
        else:
            row = await self._db.fetchrow(
                "SELECT version, doc, created_at, created_by FROM templates"
                " WHERE template_id = $1 AND version = $2",
                template_id,
                version,
            )
        if row is None:
            return None
        return TemplateVersion(template_id, row[0], orjson.loads(row[1]), row[2], row[3])

    async def versions(self, template_id: str) -> list[int]:
        rows = await self._db.fetch(
            "SELECT version FROM templates WHERE template_id = $1 ORDER BY version", template_id
        )
        return [r[0] for r in rows]


class PostgresProviderStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def put(self, name: str, doc: JSONObject, at: float) -> None:
        await self._db.execute(
            "INSERT INTO providers (name, doc, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET doc = excluded.doc,"
            " updated_at = excluded.updated_at",
            name,
            orjson.dumps(doc).decode(),
            at,
        )

    async def get(self, name: str) -> JSONObject | None:
        doc = await self._db.fetchval("SELECT doc FROM providers WHERE name = $1", name)
        return None if doc is None else orjson.loads(doc)

    async def all(self) -> dict[str, JSONObject]:
        rows = await self._db.fetch("SELECT name, doc FROM providers ORDER BY name")
        return {r[0]: orjson.loads(r[1]) for r in rows}

    async def delete(self, name: str) -> bool:
        return await self._db.execute("DELETE FROM providers WHERE name = $1", name) > 0


class PostgresProviderTokenStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def current(self, name: str) -> tuple[str, float] | None:
        row = await self._db.fetchrow(
            "SELECT token, issued_at FROM provider_tokens WHERE name = $1", name
        )
        return None if row is None else (row[0], row[1])

    async def replace(
        self, name: str, token: str, issued_at: float, *, expected: float | None
    ) -> bool:
        if expected is None:  # the first token: only if nobody stored one meanwhile
            stored = await self._db.execute(
                "INSERT INTO provider_tokens (name, token, issued_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                token,
                issued_at,
            )
        else:
            stored = await self._db.execute(
                "UPDATE provider_tokens SET token = $2, issued_at = $3"
                " WHERE name = $1 AND issued_at = $4",
                name,
                token,
                issued_at,
                expected,
            )
        return stored > 0


class PostgresStatusHookStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, h: StatusHook) -> None:
        await self._db.execute(
            "INSERT INTO status_hooks (id, sender, url, events, secrets, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            h.id,
            h.sender,
            h.url,
            orjson.dumps(sorted(h.events)).decode(),
            orjson.dumps(list(h.secrets)).decode(),
            h.created_at,
        )

    async def list(self, sender: str | None) -> list[StatusHook]:
        if sender is None:
            rows = await self._db.fetch(
                f"SELECT {HOOK_COLUMNS} FROM status_hooks ORDER BY created_at"
            )
        else:
            rows = await self._db.fetch(
                f"SELECT {HOOK_COLUMNS} FROM status_hooks WHERE sender = $1 ORDER BY created_at",
                sender,
            )
        return [hook(r) for r in rows]

    async def delete(self, hook_id: str, sender: str | None) -> bool:
        if sender is None:
            return await self._db.execute("DELETE FROM status_hooks WHERE id = $1", hook_id) > 0
        return (
            await self._db.execute(
                "DELETE FROM status_hooks WHERE id = $1 AND sender = $2", hook_id, sender
            )
            > 0
        )

    async def disable(self, hook_id: str, at: float) -> None:
        await self._db.execute(
            "UPDATE status_hooks SET disabled_at = $1 WHERE id = $2", at, hook_id
        )


class PostgresSecretStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        async with self._db.transaction() as c:
            await c.execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                name,
                make(),
            )
            value: str = await c.fetchval("SELECT value FROM secrets WHERE name = $1", name)
            return value
