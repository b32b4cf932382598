"""Pipeline tests that reach the outside world get a runtime wired to the look-alikes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clarion import channels
from clarion.channels.config import stored
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.fakes.suite import FakeProviders
from clarion.runtime import Runtime, open_runtime


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every pipeline test runs embedded, with Redis queues, and with Redis queues and
    PostgreSQL stores."""
    return str(request.param)


@pytest.fixture
def rt_settings() -> dict[str, Any]:
    """Setting overrides for ``rt``; a test module redefines this fixture to change them."""
    return {}


@pytest.fixture
async def rt(
    tmp_path: Path,
    clock: ManualClock,
    fakes: FakeProviders,
    rt_settings: dict[str, Any],
    broker_url: str | None,
    store_url: str | None,
) -> AsyncIterator[Runtime]:
    settings = Settings(
        db=tmp_path / "c.db",
        broker=broker_url,
        store=store_url,
        batch_size=100,
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "k" * 32,
    ).replace(**rt_settings)
    runtime = open_runtime(settings, clock=clock)
    for name, doc in fakes.clarion_config().items():
        await runtime.stores.providers.put(name, stored(channels.parse(name, doc)), clock.now())
    try:
        yield runtime
    finally:
        await runtime.close()
