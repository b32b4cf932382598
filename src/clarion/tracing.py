"""W3C Trace Context (``traceparent``): a producer's trace id, kept with the event it sent,
carried through the queues and written on every log line and trail entry about it, so the
producer's trace finds everything Clarion did."""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> str | None:
    """A W3C ``traceparent`` header as sent, or None if it is not one (the recommendation:
    ignore an invalid one, never refuse the request for it)."""
    if value is None:
        return None
    value = value.strip().lower()
    found = _TRACEPARENT.match(value)
    if found is None or found.group(1) == "0" * 32:
        return None
    return value


def trace_id_of(traceparent: str | None) -> str | None:
    return None if traceparent is None else traceparent[3:35]
