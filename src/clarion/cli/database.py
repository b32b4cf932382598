"""``clarion db upgrade``: bring a database's schema up to this version of Clarion."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import typer
from rich.console import Console

from clarion.backends.postgres import connect
from clarion.backends.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from clarion.backends.postgres.schema import ensure_log_partitions, migrate
from clarion.backends.sqlite import SqliteDatabase
from clarion.cli.common import Commands, DbOption, JsonOption, StoreOption, settings_for
from clarion.errors import InputError

app = typer.Typer(cls=Commands, help="The database's schema.", no_args_is_help=True)
_out = Console()


@app.command("upgrade")
def upgrade(db: DbOption = None, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Apply the schema migrations this version needs (every process also does this when it
    starts, once), and create the delivery log's partitions for the coming days."""
    if store is None:
        settings = settings_for(db)
        SqliteDatabase(settings.db).close()  # opening migrates
        conn = sqlite3.connect(settings.db)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
        created: list[str] = []
        report: dict[str, object] = {
            "backend": "sqlite",
            "database": str(settings.db),
            "version": version,
        }
    else:
        if not store.startswith(("postgresql://", "postgres://")):
            raise InputError.single("store", "a postgresql://user@host:port/db URL")
        version, created = asyncio.run(_upgrade_postgres(store))
        report = {
            "backend": "postgresql",
            "database": store,
            "version": version,
            "created_partitions": created,
        }
    if as_json:
        typer.echo(json.dumps(report))
        return
    _out.print(f"{report['database']}: schema version {version} ({report['backend']}).")
    for name in created:
        _out.print(f"  created delivery-log partition {name}")


async def _upgrade_postgres(dsn: str) -> tuple[int, list[str]]:
    async with connect(dsn) as conn:
        version = await migrate(conn)
        created = await ensure_log_partitions(conn, time.time())
    assert version == len(PG_MIGRATIONS)
    return version, created
