"""The embedded backend's shared SQLite file: connections, locking and schema."""

from clarion.sqlite.database import SqliteDatabase, WriteGate

__all__ = ["SqliteDatabase", "WriteGate"]
