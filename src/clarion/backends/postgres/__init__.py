"""The PostgreSQL backend's connection handling and schema (stores in ``stores.postgres``)."""

from asyncpg import Connection

from clarion.backends.postgres.database import PostgresDatabase, connect, rowcount

__all__ = ["Connection", "PostgresDatabase", "connect", "rowcount"]
