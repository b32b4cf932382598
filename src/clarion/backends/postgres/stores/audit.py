"""The audit log, written inside the transaction of the change it records."""

from __future__ import annotations

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.stores.records import AuditEntry
from clarion.stores.rows import audit_entry


async def record_audit(
    c: Connection,
    kind: str,
    subject: str,
    actor: str,
    at: float,
    before: str | None,
    after: str | None,
) -> None:
    """Log a change; ``before`` and ``after`` are JSON text (or None for absent)."""
    await c.execute(
        "INSERT INTO audit (kind, subject, actor, at, before, after)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        kind,
        subject,
        actor,
        at,
        before,
        after,
    )


async def read_audit(db: PostgresDatabase, kind: str, subject: str, limit: int) -> list[AuditEntry]:
    rows = await db.fetch(
        "SELECT actor, at, before, after FROM audit WHERE kind = $1 AND subject = $2"
        " ORDER BY id DESC LIMIT $3",
        kind,
        subject,
        limit,
    )
    return [audit_entry(kind, subject, r) for r in rows]
