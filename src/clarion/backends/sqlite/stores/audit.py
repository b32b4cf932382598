"""The audit log: who changed what, when, before and after. Written inside the transaction
of the change itself, so a change without its audit entry cannot exist."""

from __future__ import annotations

import sqlite3

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import AuditEntry
from clarion.stores.rows import audit_entry


def record_audit(
    c: sqlite3.Connection,
    kind: str,
    subject: str,
    actor: str,
    at: float,
    before: str | None,
    after: str | None,
) -> None:
    """Log a change; ``before`` and ``after`` are JSON text (or None for absent)."""
    c.execute(
        "INSERT INTO audit (kind, subject, actor, at, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        (kind, subject, actor, at, before, after),
    )


async def read_audit(db: SqliteDatabase, kind: str, subject: str, limit: int) -> list[AuditEntry]:
    rows = await db.read(
        lambda c: c.execute(
            "SELECT actor, at, before, after FROM audit WHERE kind = ? AND subject = ?"
            " ORDER BY id DESC LIMIT ?",
            (kind, subject, limit),
        ).fetchall()
    )
    return [audit_entry(kind, subject, r) for r in rows]
