"""Presentation helpers shared by the routes."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(timestamp: float) -> str:
    """``2026-11-22T08:15:00.123Z``: UTC, millisecond precision."""
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def iso_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso(timestamp)
