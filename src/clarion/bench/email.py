"""Email throughput: the SMTP provider sending multipart mail to the local SMTP server
(aiosmtpd, STARTTLS, in its own process) over connections it opens once and reuses."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clarion import channels
from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.config import SqliteProviderTokenStore
from clarion.bench.driver import Progress, fake_providers_process
from clarion.channels.base import Content, OutboundMessage, SendStatus
from clarion.channels.config import ProviderDeps
from clarion.clock import SystemClock
from clarion.errors import BackendError
from clarion.models import Priority
from clarion.types import EventId, UserId

BATCH = 100
"""Messages handed to the provider at once, as the email stage does."""


@dataclass
class EmailReport:
    messages: int
    connections: int
    messages_per_s: float
    milliseconds_per_message: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_email(
    messages: int, *, connections: int = 1, progress: Progress | None = None
) -> EmailReport:
    report = progress or (lambda *_: None)
    with (
        tempfile.TemporaryDirectory(prefix="clarion-bench-") as scratch,
        fake_providers_process(Path(scratch)) as config,
    ):
        doc = dict(config["smtp"]) | {"connections": connections}
        seconds = asyncio.run(_send(doc, Path(scratch), messages, report))
    return EmailReport(
        messages=messages,
        connections=connections,
        messages_per_s=round(messages / seconds),
        milliseconds_per_message=round(seconds * 1000 / messages, 3),
    )


async def _send(doc: dict[str, Any], scratch: Path, messages: int, report: Progress) -> float:
    db = SqliteDatabase(scratch / "tokens.db")
    deps = ProviderDeps(SystemClock(), SqliteProviderTokenStore(db))
    provider = channels.build("smtp", channels.parse("smtp", doc), deps)
    try:
        await provider.send([_mail(0)])  # connect (and STARTTLS) before the clock starts
        started = time.perf_counter()
        for first in range(0, messages, BATCH):
            batch = [_mail(i) for i in range(first, min(first + BATCH, messages))]
            results = await provider.send(batch)
            if any(r.status is not SendStatus.DELIVERED for r in results):
                raise BackendError(f"the SMTP server refused mail: {results[0].reason}")
            report("sending mail", first + len(batch), messages)
        return time.perf_counter() - started
    finally:
        await provider.close()
        db.close()


def _mail(i: int) -> OutboundMessage:
    content = Content(
        subject=f"Your weekly digest #{i}",
        text="Three people commented on your post.\n\nSee them: https://example.com/p/1",
        html="<p>Three people commented on your post.</p><p><a href='https://example.com/p/1'>"
        "See them</a></p>",
    )
    return OutboundMessage(
        id=f"bench-{i}",
        event_id=EventId("evt_bench"),
        user_id=UserId(f"u{i}"),
        address=f"u{i}@example.com",
        content=content,
        priority=Priority.P2,
        expires_at=time.time() + 3600,
        unsubscribe_url=f"https://clarion.example/v1/unsubscribe/t{i}",
    )
