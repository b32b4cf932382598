"""Processes and clients the live-sync tests share: one more API process on its own port,
and a device's SSE stream read with the standard library (closing it is one socket
shutdown the server sees at once)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from clarion.launch import LocalClarion, free_port


class SecondApi:
    """One more ``clarion serve`` (API only) on its own port, sharing the database."""

    def __init__(self, local: LocalClarion) -> None:
        self._env = local.env()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "clarion", "serve", "--port", str(self.port),
                   "--workers", "0", "--p0-workers", "0", "--log-level", "warning"]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, "the second API did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)


class SseDevice:
    """An SSE stream on a thread, read with the standard library."""

    def __init__(self, url: str, token: str, **params: str) -> None:
        self.messages: list[dict[str, Any]] = []
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Authorization": f"Bearer {token}"}
        if "last_event_id" in params:
            headers["Last-Event-ID"] = params.pop("last_event_id")
        self._conn.request("GET", f"/v1/me/stream?{urlencode(params)}", headers=headers)
        self._response = self._conn.getresponse()
        assert self._response.status == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            while line := self._response.readline():
                text = line.decode().rstrip("\r\n")
                key, _, value = text.partition(": ")
                if key in ("id", "event"):
                    event["type" if key == "event" else "id"] = value
                elif key == "data":
                    event["data"] = json.loads(value)
                elif not text and event:
                    self.messages.append(event)
                    event = {}

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count:
            assert time.monotonic() < deadline, self.messages
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._conn.close()
