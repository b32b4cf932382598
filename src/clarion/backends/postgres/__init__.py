"""The PostgreSQL backend: connection handling and schema; its stores in ``stores``, ingest's
outbox in ``outbox``."""

from asyncpg import Connection

from clarion.backends.postgres.database import PostgresDatabase, connect, rowcount

__all__ = ["Connection", "PostgresDatabase", "connect", "rowcount"]
