"""The embedded backend's shared SQLite file: connections, locking and schema."""

from clarion.backends.sqlite.database import SqliteDatabase, WriteGate

__all__ = ["SqliteDatabase", "WriteGate"]
