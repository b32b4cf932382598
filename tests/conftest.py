"""Shared fixtures: a manual clock, a runtime on a temporary SQLite file, and a real HTTP
server on loopback (a thread running uvicorn) whose pipeline the test drains in-process."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from clarion.api.app import create_app
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.fakes.suite import FakeProviders, FakeProvidersThread
from clarion.keys import create_key
from clarion.launch import free_port
from clarion.runtime import Runtime, open_runtime
from clarion.worker import build_runner
from tests.services import PostgresServer, RedisServer, empty_postgres

T = TypeVar("T")
_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test in this session uses (servers are shared per module)."""
    return f"{prefix}{next(_names)}"


@pytest.fixture
def untraced_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start this test's processes without coverage's tracer.

    For the load tests (a 100,000-follower fan-out through real processes): tracing slows
    them 2.4x and they reach no line that the smaller end-to-end tests do not.
    """
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)


@pytest.fixture(scope="session")
def fake_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviders]:
    """Every provider look-alike, started once per session on its own thread."""
    runner = FakeProvidersThread(tmp_path_factory.mktemp("fakes"))
    suite = runner.start()
    try:
        yield suite
    finally:
        runner.stop()


@pytest.fixture
def fakes(fake_suite: FakeProviders) -> Iterator[FakeProviders]:
    """The look-alikes with nothing received and no failure rules, before and after."""
    fake_suite.reset()
    try:
        yield fake_suite
    finally:
        fake_suite.reset()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis per session (append-only file on, like production should run it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """One real PostgreSQL per session, started on first use."""
    server = PostgresServer()
    server.start()
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def backend() -> str:
    """Where a test runtime keeps its state: ``sqlite`` (everything embedded), ``redis``
    (queues in Redis Streams, stores in SQLite) or ``postgres`` (queues in Redis, stores in
    PostgreSQL). Test directories whose every test must pass on each backend parametrize
    this."""
    return "sqlite"


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    wanted = backend in ("redis", "postgres")
    return str(request.getfixturevalue("redis_url")) if wanted else None


@pytest.fixture
async def store_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The session's PostgreSQL, emptied for this test (``postgres`` backend only)."""
    if backend != "postgres":
        return None
    dsn = str(request.getfixturevalue("postgres_dsn"))
    await empty_postgres(dsn)
    return dsn


@pytest.fixture
def settings(tmp_path: Path, broker_url: str | None, store_url: str | None) -> Settings:
    return Settings(db=tmp_path / "clarion.db", batch_size=100, broker=broker_url, store=store_url)


@pytest.fixture
async def runtime(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    rt = open_runtime(settings, clock=clock)
    try:
        yield rt
    finally:
        await rt.close()


class _ServerThread:
    """The API on its own event loop in a thread; the test thread runs coroutines on that
    same loop (``call``), since a PostgreSQL pool or a Redis connection belongs to one loop."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.loop.close()


@dataclass
class Api:
    """A running API with an admin key, plus helpers to act on its database directly."""

    url: str
    runtime: Runtime
    clock: ManualClock
    admin_key: str
    client: httpx.Client
    server: _ServerThread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the API's own event loop (where its connections live)."""
        return self.server.call(coro)

    def call(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        headers.setdefault("Authorization", f"Bearer {key or self.admin_key}")
        return self.client.request(method, path, headers=headers, **kw)

    def sender_key(self, sender: str | None = None, **kw: Any) -> str:
        _, secret = self.run(
            create_key(self.runtime.stores.keys, self.clock, sender=sender or unique("svc"), **kw)
        )
        return secret

    def register_type(self, name: str | None = None, **spec: Any) -> str:
        name = name or unique("type_")
        body = {"priority": "P1", "channels": ["in_app"], "ttl_seconds": 3600} | spec
        response = self.call("PUT", f"/v1/types/{name}", json=body)
        assert response.status_code == 200, response.text
        return name

    def drain(self) -> int:
        """Run every pipeline stage in this process until no message is ready."""

        async def drain() -> int:
            runner = build_runner(self.runtime, name="test-worker")
            try:
                return await runner.drain()
            finally:
                await runner.close()

        return self.run(drain())


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    """Settings for a module's API server; a test module redefines this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def api_backend() -> str:
    """The API tests' backend (``backend`` for a whole module); tests/api runs each."""
    return "sqlite"


@pytest.fixture(scope="module")
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    api_settings: dict[str, Any],
    api_backend: str,
) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("api")
    port = free_port()
    backends: dict[str, Any] = {}
    if api_backend == "postgres":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        dsn = str(request.getfixturevalue("postgres_dsn"))
        asyncio.run(empty_postgres(dsn))
        backends = {"broker": redis_server.url, "store": dsn}
    settings = dataclasses.replace(
        Settings(db=folder / "clarion.db", batch_size=100, public_url=f"http://127.0.0.1:{port}"),
        **backends,
        **api_settings,
    )
    clock = ManualClock(start=time.time())
    rt = open_runtime(settings, clock=clock, durable_commits=True)
    server = _ServerThread(create_app(rt), port)
    server.start()
    _, admin = server.call(create_key(rt.stores.keys, clock, sender="admin", admin=True))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        yield Api(f"http://127.0.0.1:{port}", rt, clock, admin, client, server)
    finally:
        client.close()
        server.call(rt.close())
        server.stop()
