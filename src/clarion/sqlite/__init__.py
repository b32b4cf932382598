"""The embedded backend's shared SQLite file: connections, locking and schema."""

from clarion.sqlite.database import SqliteDatabase

__all__ = ["SqliteDatabase"]
