"""Small shared vocabulary: identifiers and JSON aliases."""

from __future__ import annotations

from typing import Any, NewType, TypeAlias

UserId = NewType("UserId", str)
EventId = NewType("EventId", str)
Seq = NewType("Seq", int)
"""The store's integer for an event: orders inboxes newest-first and keys per-event rows."""

JSONObject: TypeAlias = dict[str, Any]
