"""Live sync at seed 002's scale: 5,000 people with two devices each hold 10,000 SSE
streams while the product publishes playback positions at 15,000 updates/s.

Every update carries the wall-clock time it was published and a per-person counter ``n``
(its version too). The devices (``bench.sse_devices``, one process) time each message from
publish to arrival and count every ``n`` they never heard as lost. Then all 10,000 drop at
once and reconnect with ``Last-Event-ID`` while updates keep coming at a tenth of the rate
(the reconnect storm), and every device must end with its person's last update, nothing
skipped or doubled.

Updates go out in batches (``POST /v1/state``, 250 a request), round-robin over people, at
most four requests in flight; the publish time is taken as the request is sent, so the
latency includes the request's own handling. Memory per connection is the API processes'
resident memory after the connections opened, less before, over the connections.

What the figure leaves out: everything runs on the same two cores — the API processes,
the devices' process and the publisher (``cpu_cores`` says how many cores each kept busy
while measuring); the devices parse only what the bench needs (a phone
would render); connections come over loopback, with no TLS and no proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import threading
import time
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from clarion.bench import sse_devices
from clarion.bench.backends import owned_backends
from clarion.bench.driver import Progress
from clarion.bench.loadgen import KeepAlive
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keyring import SigningKeys, new_key_spec
from clarion.keys import create_key
from clarion.launch import LocalClarion, cpu_seconds
from clarion.live import tokens
from clarion.runtime import open_runtime
from clarion.types import UserId

KEY = "playback:show_42"
STORM_SHARE = 0.1
"""During the storm updates keep coming, at this share of the rate (every device has to
get what was published while it was away, and what comes while it reconnects)."""
_IN_FLIGHT = 4


@dataclass
class StreamReport:
    connections: int
    people: int
    updates_per_s: float
    """Published and applied per second while measuring (the target rate, if kept up)."""
    target_updates_per_s: float
    seconds: float
    messages_per_s: float
    """Messages the devices received per second while measuring (two per update)."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    lost: int
    """Updates some device never heard, over the whole run (storm included)."""
    doubled: int
    resets: int
    bytes_per_connection: float
    connect_s: float
    storm_reconnect_s: float | None
    """All connections dropped → all reopened and caught up to their last id."""
    storm_settle_s: float | None
    """After publishing stopped: until every device had its person's last update."""
    backend: str
    api_processes: int
    cpu_cores: dict[str, float]
    """Cores each part kept busy while measuring (``api``: all API processes; ``devices``;
    ``publisher``), of the machine's ``cores``: where the two cores went."""
    cores: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_stream(
    people: int = 5_000,
    *,
    devices_each: int = 2,
    rate: float = 15_000.0,
    seconds: float = 20.0,
    batch: int = 250,
    storm: bool = True,
    api_processes: int = 1,
    broker: str | None = None,
    store: str | None = None,
    progress: Progress | None = None,
) -> StreamReport:
    report = progress or (lambda *_: None)
    with owned_backends(broker, store), tempfile.TemporaryDirectory(prefix="clarion-") as scratch:
        spec = new_key_spec()
        settings = Settings(
            db=Path(scratch) / "stream.db", broker=broker, store=store, user_token_keys=spec
        )
        admin = asyncio.run(_admin_key(settings))
        keys = SigningKeys.parse(spec)
        now = time.time()
        listeners = [
            (f"p{p}d{d}", p, tokens.mint(UserId(f"viewer{p}"), keys, now, ttl_s=3600))
            for p in range(people)
            for d in range(devices_each)
        ]
        with (
            LocalClarion(settings, (), api_processes=api_processes) as local,
            _Devices(local.port) as devices,
        ):
            assert local.server is not None
            before = _tree_rss(local.server.pid)
            report("connecting", 0, len(listeners))
            connect_s = devices.call("connect", listeners)
            time.sleep(2.0)  # idle: what the connections hold, not what opening them took
            per_connection = (_tree_rss(local.server.pid) - before) / len(listeners)
            publisher = _Publisher(local.url, admin, people, rate, batch)
            publisher.run_for(min(2.0, seconds), report)  # warm-up
            parts = {"api": _tree(local.server.pid), "devices": [devices.pid]}
            parts["publisher"] = [os.getpid()]
            devices.call("measure", True)
            started, cpu_before = time.perf_counter(), _cpu_s(parts)
            applied = publisher.run_for(seconds, report)
            measured_s = time.perf_counter() - started
            cpu_used = {
                part: round((used - cpu_before[part]) / measured_s, 2)
                for part, used in _cpu_s(parts).items()
            }
            devices.call("measure", False)
            latencies = array("d")
            latencies.frombytes(devices.call("latencies", None))
            storm_s = settle_s = None
            if storm:
                report("reconnect storm", 0, None)
                publisher.start_background(rate * STORM_SHARE)
                storm_s = devices.call("storm", None)
                time.sleep(1.0)
                publisher.stop_background()
            report("settling", 0, None)
            settle_s, tally = devices.call("settle", (publisher.expected(), 60.0))
        if tally["failed"]:
            raise BackendError(f"{tally['failed']} streams failed: {tally['failures']}")
    ordered = sorted(latencies)
    return StreamReport(
        connections=len(listeners),
        people=people,
        updates_per_s=round(applied / measured_s, 1),
        target_updates_per_s=rate,
        seconds=round(measured_s, 2),
        messages_per_s=round(len(latencies) / measured_s, 1),
        p50_ms=_ms(ordered, 0.50),
        p99_ms=_ms(ordered, 0.99),
        max_ms=_ms(ordered, 1.0),
        samples=len(ordered),
        lost=tally["lost"],
        doubled=tally["doubled"],
        resets=tally["resets"],
        bytes_per_connection=round(per_connection),
        connect_s=round(connect_s, 2),
        storm_reconnect_s=None if storm_s is None else round(storm_s, 2),
        storm_settle_s=round(settle_s, 2) if storm else None,
        backend="redis+postgresql" if store else ("redis" if broker else "sqlite"),
        api_processes=api_processes,
        cpu_cores=cpu_used,
        cores=os.cpu_count() or 1,
    )


def _ms(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000, 1)


async def _admin_key(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()


def _tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn's worker processes)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return found


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants."""
    total = 0
    for current in _tree(pid):
        with (
            contextlib.suppress(FileNotFoundError, ProcessLookupError),
            open(f"/proc/{current}/status") as status,
        ):
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _cpu_s(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds each part's processes have used so far."""
    used = cpu_seconds({f"{part}:{pid}": pid for part, pids in parts.items() for pid in pids})
    return {
        part: sum(s for name, s in used.items() if name.partition(":")[0] == part) for part in parts
    }


class _Devices:
    """The devices' process (``sse_devices.run``), called command by command."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(
            target=sse_devices.run, args=(theirs, "127.0.0.1", port), daemon=True
        )

    def __enter__(self) -> _Devices:
        self._process.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self.call("close", None)
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None, "started in __enter__"
        return self._process.pid

    def call(self, command: str, arg: Any) -> Any:
        self._pipe.send((command, arg))
        if not self._pipe.poll(300):
            raise BackendError(f"the devices' process did not answer {command!r} in 300 s")
        return self._pipe.recv()


class _Publisher:
    """The product's backend: batches of updates, round-robin over people, paced."""

    def __init__(self, url: str, key: str, people: int, rate: float, batch: int) -> None:
        self._url, self._key = url, key
        self._counters = [0] * people
        self._cursor = 0
        self._rate, self._batch = rate, max(1, min(batch, people // (_IN_FLIGHT + 1)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    def expected(self) -> dict[int, int]:
        return {p: n for p, n in enumerate(self._counters) if n}

    def run_for(self, seconds: float, report: Progress) -> int:
        return asyncio.run(self._publish(seconds, report, self._rate))

    def start_background(self, rate: float) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._background, args=(rate,), daemon=True)
        self._thread.start()

    def _background(self, rate: float) -> None:
        try:
            asyncio.run(self._publish(None, lambda *_: None, rate))
        except BaseException as exc:  # raised again in stop_background
            self._failed = exc

    def stop_background(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._failed is not None:
            raise self._failed

    async def _publish(self, seconds: float | None, report: Progress, rate: float) -> int:
        interval = self._batch / rate
        applied = 0
        slots = asyncio.Semaphore(_IN_FLIGHT)
        client = KeepAlive(self._url, {"Authorization": f"Bearer {self._key}"})
        try:

            async def send(body: bytes) -> None:
                nonlocal applied
                try:
                    status, answer = await client.post("/v1/state", body)
                finally:
                    slots.release()
                if status != 200:
                    raise BackendError(f"state refused: {status} {answer.decode()}")
                result = orjson.loads(answer)
                if result["ignored"]:
                    raise BackendError(f"{result['ignored']} updates ignored: out of order")
                applied += result["applied"]

            started = time.perf_counter()
            sent: list[tuple[int, asyncio.Task[None]]] = []
            tick = 0
            while not self._stop.is_set():
                elapsed = time.perf_counter() - started
                if seconds is not None and elapsed >= seconds:
                    break
                await asyncio.sleep(max(started + tick * interval - time.perf_counter(), 0))
                await slots.acquire()  # the server is behind: the rate drops, as it would
                # A person comes round again only once the request they were last in has
                # answered: their versions arrive in order, as one backend's would.
                for _, task in sent:
                    if task.done():
                        task.result()  # a refused request ends the run
                sent = [(at, task) for at, task in sent if not task.done()]
                # The batch about to go covers ``cursor … cursor + batch`` (modulo people);
                # of the batches still out, only those a round before overlap it.
                round_ago = self._cursor - len(self._counters)
                await asyncio.gather(
                    *(task for at, task in sent if abs(at - round_ago) < self._batch)
                )
                sent.append((self._cursor, asyncio.create_task(send(self._next_batch()))))
                tick += 1
                if seconds is not None and tick % 20 == 0:
                    report("publishing", int(elapsed), int(seconds))
            await asyncio.gather(*(t for _, t in sent))
        finally:
            client.close()
        return applied

    def _next_batch(self) -> bytes:
        people = len(self._counters)
        at = time.time()
        updates = []
        for _ in range(self._batch):
            person = self._cursor % people
            self._cursor += 1
            n = self._counters[person] = self._counters[person] + 1
            updates.append(
                {"user_id": f"viewer{person}", "key": KEY, "value": {"t": at, "n": n}, "version": n}
            )
        return orjson.dumps({"updates": updates})
