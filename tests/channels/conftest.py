"""Helpers for provider tests: a provider built from the look-alikes' configuration."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clarion import channels
from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.config import SqliteProviderTokenStore
from clarion.channels.base import Content, OutboundMessage, Provider
from clarion.channels.config import ProviderDeps
from clarion.clock import SystemClock
from clarion.fakes.suite import FakeProviders
from clarion.models import Priority
from clarion.types import EventId, UserId

CONTENT = Content(
    title="New comment",
    body="Ann replied to you",
    subject="Ann replied",
    text="Ann replied",
    html="<p>Ann replied</p>",
    data={"event_id": "evt_1", "type": "comment"},
)


def message(address: str, **fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "id": "evt_1.u1.dev1",
        "event_id": EventId("evt_1"),
        "user_id": UserId("u1"),
        "address": address,
        "content": CONTENT,
        "priority": Priority.P1,
        "expires_at": time.time() + 3600,
    } | fields
    return OutboundMessage(**values)


@pytest.fixture
def tokens_db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    db = SqliteDatabase(tmp_path / "tokens.db")
    yield db
    db.close()


MakeProvider = Callable[..., Provider]


@pytest.fixture
async def provider(fakes: FakeProviders, tokens_db: SqliteDatabase) -> AsyncIterator[MakeProvider]:
    """``provider("apns", **overrides)``: a provider for a look-alike, closed afterwards."""
    built: list[Provider] = []
    deps = ProviderDeps(
        SystemClock(),
        SqliteProviderTokenStore(tokens_db),
        allow_private_targets=True,
        public_url="https://clarion.example",
    )

    def make(name: str, *, deps_: ProviderDeps | None = None, **overrides: Any) -> Provider:
        doc = fakes.clarion_config()[name] | overrides
        instance = channels.build(name, channels.parse(name, doc), deps_ or deps)
        built.append(instance)
        return instance

    yield make
    for instance in built:
        await instance.close()
