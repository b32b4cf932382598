"""Campaigns with real processes, on both backends: three schedulers (one per worker)
racing for the same campaign reach everyone exactly once; the lease holder SIGKILLed in
the middle of its expansion is taken over from the checkpoint with nobody missed or
doubled; a throttle holds its rate. Driven through the CLI as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clarion.config import Settings
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.supervisor import WorkerSpec
from tests.backends import prepared, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
PEOPLE = 3_000


PROMO = TypeSpec("promo", Priority.P2, (Channel.IN_APP,), default_enabled=True)


def _cli(local: LocalClarion, key: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "CLARION_URL": local.url, "CLARION_KEY": key}
    done = subprocess.run(
        [sys.executable, "-m", "clarion", *args, "--json"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _start(local: LocalClarion, key: str, folder: Path, **extra: str) -> str:
    people = folder / "people.txt"
    people.write_text("".join(f"p{n:05d}\n" for n in range(PEOPLE)))
    audience = _cli(local, key, "audiences", "upload", str(people), "--name", "all")
    assert audience["size"] == PEOPLE
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]
    made = _cli(
        local, key, "campaigns", "create", "--name", "spring", "--type", "promo",
        "--title", "Spring sale", "--audience", audience["id"], *flags,
    )  # fmt: skip
    return str(made["id"])


def _everyone_once(settings: Settings) -> None:
    rows = query(settings, "SELECT user_id, count(*) FROM inbox GROUP BY user_id")
    assert len(rows) == PEOPLE, f"{PEOPLE - len(rows)} people missed"
    assert {n for _, n in rows} == {1}, "someone got it twice"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_three_schedulers_race_and_everyone_gets_it_once(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(  # six pages of expansion (500 people each) to race over
        db=tmp_path / "c.db", broker=broker_url, store=store_url,
        batch_size=100, fanout_slice_batches=5,
    )  # fmt: skip
    key = prepared(settings, PROMO)
    workers = [WorkerSpec(f"w{n}") for n in range(3)]
    with LocalClarion(settings, workers) as local:
        campaign = _start(local, key, tmp_path)
        shown = _cli(local, key, "campaigns", "show", campaign, "--watch")
        assert (shown["state"], shown["delivered"]) == ("completed", PEOPLE)
    _everyone_once(settings)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_lease_holder_is_taken_over_from_its_checkpoint(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(
        db=tmp_path / "c.db", broker=broker_url, store=store_url, campaign_lease_s=2.0
    )
    key = prepared(settings, PROMO)
    workers = [WorkerSpec("w0"), WorkerSpec("w1")]
    with LocalClarion(settings, workers) as local:
        campaign = _start(local, key, tmp_path, throttle="1000")  # three seconds of pages
        owner = None
        deadline = time.monotonic() + 30
        while owner is None:
            assert time.monotonic() < deadline, "no scheduler took the campaign"
            ((holder, targeted),) = query(
                settings, f"SELECT lease_owner, targeted FROM campaigns WHERE id = '{campaign}'"
            )
            if holder and 0 < targeted < PEOPLE:
                owner = str(holder).split(":")[0]
            time.sleep(0.05)
        assert local.supervisor is not None
        local.supervisor.processes[owner].send_signal(signal.SIGKILL)
        shown = _cli(local, key, "campaigns", "show", campaign, "--watch")
        assert shown["state"] == "completed"
        ((after,),) = query(settings, f"SELECT lease_owner FROM campaigns WHERE id = '{campaign}'")
    _everyone_once(settings)
    assert not str(after).startswith(f"{owner}:") or local.supervisor.restarts > 0


def test_a_throttle_holds_its_rate(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "c.db")
    key = prepared(settings, PROMO)
    with LocalClarion(settings, [WorkerSpec("w0")]) as local:
        campaign = _start(local, key, tmp_path, throttle="1000")
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 30
        while not samples or samples[-1][1] < PEOPLE:
            assert time.monotonic() < deadline
            sql = f"SELECT targeted FROM campaigns WHERE id = '{campaign}'"
            ((targeted,),) = query(settings, sql)
            samples.append((time.monotonic(), int(targeted)))
            time.sleep(0.1)
    moving = [s for s in samples if 0 < s[1] < PEOPLE]
    (t0, n0), (t1, n1) = moving[0], moving[-1]
    rate = (n1 - n0) / (t1 - t0)
    assert 850 <= rate <= 1100, rate
