"""Driving a locally launched Clarion from a benchmark: send one event, wait until it is done."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from clarion.errors import BackendError
from clarion.types import EventId

Progress = Callable[[str, int, int | None], None]
"""``(phase, done, total)``: called as a benchmark advances."""


def send_event(url: str, key: str, body: dict[str, Any]) -> tuple[float, EventId]:
    """POST one event; returns when it was accepted (wall clock) and its id."""
    response = httpx.post(
        f"{url}/v1/notifications",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=30,
    )
    accepted_at = time.time()
    if response.status_code != 202:
        raise BackendError(f"event refused: {response.status_code} {response.text}")
    return accepted_at, EventId(response.json()["event_id"])


def wait_until_evaluated(
    url: str, key: str, event_id: EventId, total: int, report: Progress
) -> float:
    """Poll until every batch of the event is evaluated — its in-app entries written and
    its suppressions logged; people held for later (quiet hours) keep it from completing,
    but not from being evaluated. Returns the wall-clock time that was first seen."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        while True:
            status: dict[str, Any] = api.get(f"/v1/notifications/{event_id}").json()
            settled = status["delivered"] + status["suppressed"] + status["held"]
            report("delivering", settled, total)
            batches = status["batches_total"]
            if status["state"] == "failed" or (
                batches is not None and status["batches_done"] >= batches
            ):
                return time.time()
            time.sleep(0.02)


def wait_until_done(
    url: str,
    key: str,
    event_id: EventId,
    total: int,
    report: Progress,
    phase: str,
    *,
    outcomes: int | None = None,
) -> dict[str, Any]:
    """Poll the event's status until it is completed or failed — and, with ``outcomes``,
    until that many deliveries have an outcome (channel sends finish after evaluation)."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        while True:
            status: dict[str, Any] = api.get(f"/v1/notifications/{event_id}").json()
            settled = status["delivered"] + status["suppressed"] + status["failed"]
            report(phase, settled, total)
            finished = status["state"] in ("completed", "failed")
            if finished and (
                outcomes is None or settled >= outcomes or status["state"] == "failed"
            ):
                return status
            time.sleep(0.02)


@contextmanager
def fake_providers_process(folder: Path, *, timeout_s: float = 30.0) -> Iterator[dict[str, Any]]:
    """``clarion fake-providers`` in its own process (so the look-alikes do not share our
    interpreter lock); yields the provider configuration pointing at them."""
    config_file = folder / "fake-providers.json"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "clarion", "fake-providers", "--write-config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                config: dict[str, Any] = json.loads(config_file.read_text())
                break
            except (FileNotFoundError, json.JSONDecodeError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BackendError("the fake providers did not start") from None
                time.sleep(0.05)
        yield config
    finally:
        process.terminate()
        process.wait(10)


def lookalike_control(config: dict[str, Any]) -> httpx.Client:
    """A client for the look-alikes' control and inspection endpoints (what the SMS
    look-alike received, the APNs one's counters), trusting their private CA."""
    trusted = ssl.create_default_context(cafile=config["sms_twilio"]["ca_file"])
    return httpx.Client(base_url=config["sms_twilio"]["base_url"], verify=trusted, timeout=30)
