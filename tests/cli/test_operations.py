"""``clarion dlq`` and ``clarion senders`` as an operator runs them, on a real database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clarion.broker import Outbound
from clarion.config import Settings
from clarion.models import Channel, FanOut, Priority
from clarion.pipeline.messages import EventHeader, FanoutTask
from clarion.runtime import open_runtime
from clarion.types import EventId, Seq, UserId


def clarion(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _task(event_id: str) -> Outbound:
    header = EventHeader(
        seq=Seq(1),
        event_id=EventId(event_id),
        type="upload",
        priority=Priority.P1,
        sender="videos",
        actor="creator",
        object="v1",
        channels=(Channel.IN_APP,),
        created_at=0.0,
        expires_at=9e9,
        mandatory=False,
    )
    return FanoutTask(header, FanOut.DIRECT, recipients=(UserId("a"), UserId("b"))).encode()


@pytest.fixture
def db(tmp_path: Path, broker_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database holding two dead letters (there, or in Redis) and a blocked sender."""
    path = tmp_path / "ops.db"
    if broker_url is not None:
        monkeypatch.setenv("CLARION_BROKER", broker_url)

    async def seed() -> None:
        rt = open_runtime(Settings.from_env().replace(db=path), durable_commits=True)
        try:
            await rt.broker.publish(
                [
                    _task("ev_one").as_dead_letter("ValueError: boom"),
                    Outbound("evaluate.p2", b"not json").as_dead_letter("undecodable"),
                ]
            )
            for _ in range(3):
                await rt.stores.senders.strike("spammy", "boom", 1.0, limit=3, window_s=60)
        finally:
            await rt.close()

    asyncio.run(seed())
    return path


def _letters(db: Path) -> list[dict[str, object]]:
    done = clarion(db, "dlq", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_dlq_list_show_replay_and_purge(db: Path, broker_url: str | None) -> None:
    rows = _letters(db)
    assert len(rows) == 2
    (ours,) = [r for r in rows if r["event_ids"] == ["ev_one"]]
    assert (ours["senders"], ours["recipients"]) == (["videos"], 2)
    assert ours["error"] == "ValueError: boom"
    table = clarion(db, "dlq", "list").stdout
    assert "ev_one" in table
    assert "boom" in table

    shown = json.loads(clarion(db, "dlq", "show", str(ours["id"])).stdout)
    assert shown["body"]["recipients"] == ["a", "b"]

    replayed = clarion(db, "dlq", "replay", str(ours["id"]))
    assert replayed.returncode == 0, replayed.stderr
    assert "Replayed 1" in replayed.stdout
    assert [r["event_ids"] for r in _letters(db)] == [[]]  # only the unreadable one is left

    purged = clarion(db, "dlq", "purge", "--all")
    assert "Purged 1" in purged.stdout
    assert _letters(db) == []
    assert "No dead letters" in clarion(db, "dlq", "list").stdout
    if broker_url is not None:  # the letters were in Redis, not in the database
        assert "No dead letters" in clarion(db, "dlq", "list", "--broker", broker_url).stdout


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_queues_shows_what_waits_where(db: Path, broker_url: str | None) -> None:
    async def enqueue() -> None:
        rt = open_runtime(Settings.from_env().replace(db=db), durable_commits=True)
        try:
            await rt.broker.publish([Outbound("evaluate.p2", b"batch")] * 3)
            await rt.broker.publish([Outbound("push.p0", b"otp")])
            await rt.broker.publish([Outbound("evaluate.p1", b"held", delay_s=3600)] * 2)
        finally:
            await rt.close()

    asyncio.run(enqueue())
    done = clarion(db, "queues", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["depths"] == {"evaluate.p2": 3, "push.p0": 1}
    assert shown["held"] == {"evaluate.p1": 2}  # quiet hours are not a backlog
    assert (shown["level"], shown["backlog"]) == ("normal", 4)
    table = clarion(db, "queues").stdout
    assert "held for later" in table
    (evaluate,) = [line.split("│")[1:-1] for line in table.splitlines() if "evaluate" in line]
    assert [cell.strip() for cell in evaluate] == ["evaluate", "0", "0", "3", "2"]
    assert ("Redis at" if broker_url else "the database") in table


def test_dlq_on_an_unreachable_broker_says_so(db: Path) -> None:
    done = clarion(db, "dlq", "list", "--broker", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert "cannot reach the broker" in done.stderr
    assert "Traceback" not in done.stderr


def test_dlq_errors_say_what_to_do(db: Path) -> None:
    for args in (("show", "nope"), ("replay", "nope"), ("purge", "nope")):
        done = clarion(db, "dlq", *args)
        assert done.returncode == 1
        assert "clarion dlq list" in done.stderr
        assert "Traceback" not in done.stderr
    both = clarion(db, "dlq", "purge", "x", "--all")
    assert both.returncode == 2
    assert "--all" in both.stderr


def test_senders_list_and_unblock(db: Path) -> None:
    listed = json.loads(clarion(db, "senders", "list", "--json").stdout)
    assert [r["sender"] for r in listed] == ["spammy"]
    assert "3 events dead-lettered" in listed[0]["reason"]
    assert "spammy" in clarion(db, "senders", "list").stdout
    assert clarion(db, "senders", "unblock", "spammy").returncode == 0
    assert "No sender is blocked" in clarion(db, "senders", "list").stdout
    again = clarion(db, "senders", "unblock", "spammy")
    assert again.returncode == 1
    assert "not blocked" in again.stderr


def test_why_says_when_there_is_nothing_to_tell(tmp_path: Path) -> None:
    done = clarion(tmp_path / "why.db", "why", "nobody")
    assert done.returncode != 0
    assert "nothing recorded for 'nobody'" in done.stderr
    assert "Traceback" not in done.stderr


def test_slo_reports_each_priority_as_json(tmp_path: Path) -> None:
    done = clarion(tmp_path / "slo.db", "slo", "--hours", "1", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [p["priority"] for p in doc["priorities"]] == ["P0", "P1", "P2"]
    assert doc["priorities"][0]["target_share"] == 0.999
    assert doc["dead_letters"] == 0
