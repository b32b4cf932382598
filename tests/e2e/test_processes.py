"""The README's main job and ``clarion serve`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clarion.launch import free_port

pytestmark = pytest.mark.slow


def test_demo_delivers_every_follower(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clarion",
            "demo",
            "--followers",
            "3000",
            "--batch-size",
            "250",
            "--workers",
            "2",
            "--db",
            str(tmp_path / "demo.db"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Total notifications delivered: 3,000 / 3,000" in done.stdout
    assert "Who did what" in done.stdout


def test_serve_runs_the_api_and_workers_in_one_command(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    cli = [sys.executable, "-m", "clarion"]
    created = subprocess.run(
        [*cli, "keys", "create", "--sender", "ops", "--admin", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    port = free_port()
    server = subprocess.Popen(
        [
            *cli,
            "serve",
            "--port",
            str(port),
            "--db",
            str(db),
            "--workers",
            "1",
            "--p0-workers",
            "1",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        api.put("/v1/types/otp", json={"priority": "P0", "mandatory": True})
        sent = api.post(
            "/v1/notifications",
            json={"type": "otp", "target": "u42", "payload": {"title": "Code 123456"}},
        )
        assert sent.status_code == 202
        deadline = time.monotonic() + 30
        while not (items := api.get("/v1/users/u42/inbox").json()["items"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert items[0]["title"] == "Code 123456"
        api.close()
        workers = _children(server.pid)
        assert len(workers) == 2
    finally:
        server.terminate()
        assert server.wait(30) == 0
    assert not any(_alive(pid) for pid in workers), "workers outlived clarion serve"


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(p) for p in children.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


def test_demo_ui_keeps_the_server_up_with_its_pages(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "clarion", "demo", "--followers", "200", "--workers", "1",
        "--db", str(tmp_path / "ui.db"), "--ui",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    ) as demo:  # fmt: skip
        try:
            assert demo.stdout is not None
            found = None
            deadline = time.monotonic() + 120
            while found is None:
                assert time.monotonic() < deadline, "the demo never printed its pages"
                line = demo.stdout.readline()
                assert line, "the demo stopped"
                if "Inbox widget" in line:
                    found = line.split()[2]
            page = httpx.get(found, timeout=10)
            assert page.status_code == 200
            assert "<clarion-inbox token=" in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)
