"""On the embedded backend an OTP's commit does not queue behind bulk writers: while
another process holds the write queue (a campaign's commit running a WAL checkpoint, say),
the API still accepts a P0 event, and a P2 event waits its turn."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import httpx
import pytest

from clarion.api.app import create_app
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import free_port
from clarion.models import Priority
from clarion.runtime import open_runtime
from clarion.testing import type_spec
from tests.conftest import _ServerThread


def test_an_otp_is_accepted_while_bulk_writers_hold_the_write_queue(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "clarion.db")
    clock = ManualClock(start=time.time())
    runtime = open_runtime(settings, clock=clock, durable_commits=True, urgent=True)
    port = free_port()
    server = _ServerThread(create_app(runtime), port)
    server.start()
    lock = os.open(tmp_path / "clarion.db.lock", os.O_RDWR)
    try:
        for spec in (type_spec("otp", Priority.P0), type_spec("promo", Priority.P2)):
            server.call(runtime.stores.types.put(spec, clock.now()))
        _, secret = server.call(create_key(runtime.stores.keys, clock, sender="app"))
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a bulk writer in another process
            otp = client.post("/v1/notifications", json={"type": "otp", "target": "u1"}, timeout=5)
            assert otp.status_code == 202
            time.sleep(0.1)  # past the API's hold on the urgent lane
            with pytest.raises(httpx.ReadTimeout):  # queued behind the bulk writer
                client.post(
                    "/v1/notifications", json={"type": "promo", "target": "u1"}, timeout=0.5
                )
            fcntl.flock(lock, fcntl.LOCK_UN)
            deadline = time.monotonic() + 10
            while server.call(runtime.stores.events.count()) < 2:
                assert time.monotonic() < deadline, "the promo was never stored"
                time.sleep(0.05)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
        server.call(runtime.close())
        server.stop()
