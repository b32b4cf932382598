"""Logs: one line per happening, JSON for a log pipeline or readable for a person.

``--log-format json`` writes one object per line (``ts``, ``level``, ``logger``,
``message`` and the fields below); ``console`` writes the readable line with the fields as
``key=value``; ``auto`` (the default) is console on a terminal, JSON otherwise.

Fields come from where the line is written: what a worker is processing is bound for the
duration (``bound(stage=…, priority=…)``) and a line about one message adds its own
(``extra={"fields": {"event_id": …, "batch_key": …, "trace_id": …}}``), so every line
about an event carries its id, batch key, priority, stage and the producer's trace id.

Nothing secret reaches a line: the code never logs keys, tokens, addresses or payloads,
the HTTP and SMTP libraries (which would print URLs and envelopes) log only warnings, and
as a last guard every line is scrubbed of anything shaped like an email address, an API
key or a signed token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Literal

import orjson

Format = Literal["auto", "json", "console"]

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("clarion_log_fields", default={})  # noqa: B039 - never mutated, replaced
_QUIET = ("httpx", "httpcore", "hpack", "h2", "aiosmtplib", "asyncio", "urllib3", "multipart")
"""Libraries whose debug and info lines carry URLs, headers or SMTP envelopes."""

_SECRETS = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an email address
    r"|clk_[0-9a-f]+_[\w-]+"  # an API key
    r"|eyJ[\w-]+\.[\w-]+\.[\w-]*"  # a JWT (user tokens, provider tokens)
    r"|[Bb]earer\s+\S+"
)


def scrub(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged in this task until the block ends."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {**_CONTEXT.get(), **getattr(record, "fields", {})}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(line, default=str).decode())


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return scrub(text)


LEVEL_ENV, FORMAT_ENV = "CLARION_LOG_LEVEL", "CLARION_LOG_FORMAT"
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "console")


def from_env() -> None:
    """Configure as ``CLARION_LOG_LEVEL`` and ``CLARION_LOG_FORMAT`` say (``clarion serve``
    sets them for the processes it starts)."""
    level = os.environ.get(LEVEL_ENV, "info").lower()
    form = os.environ.get(FORMAT_ENV, "auto").lower()
    configure(level if level in LEVELS else "info", form if form in FORMATS else "auto")  # type: ignore[arg-type]


def configure(level: str = "info", form: Format = "auto") -> None:
    """Send every log line to stderr in ``form``; safe to call again (it replaces)."""
    if form == "auto":
        form = "console" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
