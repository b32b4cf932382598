"""The ``clarion`` command as a user runs it: real subprocesses on a temporary database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clarion import cli
from clarion.backends.postgres import schema as pg_schema


def clarion(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def test_keys_create_prints_the_key_alone_on_its_last_line(db: Path) -> None:
    done = clarion(db, "keys", "create", "--sender", "videos", "--types", "a,b", "--rate", "50")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("clk_")
    assert " " not in last
    listed = json.loads(clarion(db, "keys", "list", "--json").stdout)
    assert listed[0]["sender"] == "videos"
    assert listed[0]["types"] == ["a", "b"]
    assert listed[0]["rate_per_s"] == 50
    assert last not in clarion(db, "keys", "list").stdout  # secrets are never shown again
    stored = sqlite3.connect(db).execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert stored == hashlib.sha256(last.encode()).hexdigest()


def test_keys_revoke_and_unknown_key_error(db: Path) -> None:
    created = json.loads(clarion(db, "keys", "create", "--sender", "s", "--json").stdout)
    assert clarion(db, "keys", "revoke", created["key_id"]).returncode == 0
    again = clarion(db, "keys", "revoke", created["key_id"])
    assert again.returncode == 1
    assert "no active key" in again.stderr
    assert "Traceback" not in again.stderr


def test_keys_create_refuses_bad_input_without_a_traceback(db: Path) -> None:
    done = clarion(db, "keys", "create", "--sender", "bad sender", "--rate", "-1")
    assert done.returncode == 2
    assert "sender" in done.stderr
    assert "Traceback" not in done.stderr


def test_followers_import_from_csv_with_progress(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "fans.csv"
    source.write_text("follower_id,since\n" + "".join(f"fan{i},2020\n" for i in range(2500)))
    done = clarion(db, "followers", "import", "star", str(source))
    assert done.returncode == 0, done.stderr
    assert "2,500 followers added; star now has 2,500 followers." in done.stdout
    removal = tmp_path / "gone.txt"
    removal.write_text("fan1\nfan2\nnot_a_fan\n")
    done = clarion(db, "followers", "import", "star", str(removal), "--remove")
    assert "2 followers removed; star now has 2,498 followers." in done.stdout


def test_partitions_refresh_builds_then_applies_changes(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "fans.txt"
    source.write_text("".join(f"fan{i:04d}\n" for i in range(2500)))
    assert clarion(db, "followers", "import", "star", str(source)).returncode == 0
    assert clarion(db, "followers", "import", "small", str(source)).returncode == 0
    small = tmp_path / "few.txt"
    small.write_text("fan0001\n")
    assert clarion(db, "followers", "import", "tiny", str(small)).returncode == 0

    built = clarion(db, "partitions", "refresh", "--threshold", "2000", "--json")
    assert built.returncode == 0, built.stderr
    assert sorted(
        (r["creator"], r["action"], r["partitions"]) for r in json.loads(built.stdout)
    ) == [
        ("small", "built", 3),
        ("star", "built", 3),
    ]
    source.write_text("fan9999\n")
    assert clarion(db, "followers", "import", "star", str(source)).returncode == 0
    again = clarion(db, "partitions", "refresh", "--creator", "star")
    assert again.returncode == 0, again.stderr
    assert "refreshed" in again.stdout
    assert "2,501" in again.stdout
    missing = clarion(db, "partitions", "refresh", "--creator", "nobody")
    assert missing.returncode == 1
    assert "nobody has no followers" in missing.stderr


def test_followers_import_refuses_a_bad_file_whole(db: Path, tmp_path: Path) -> None:
    listed = clarion(db, "types", "list")  # the database exists, empty: it says so
    assert listed.returncode == 0
    assert "No types registered yet" in listed.stdout
    source = tmp_path / "fans.ndjson"
    source.write_text('"a"\n"b"\n{"oops": 1}\n')
    done = clarion(db, "followers", "import", "star", str(source))
    assert done.returncode == 2
    assert "line 3" in done.stderr
    assert "Traceback" not in done.stderr
    assert sqlite3.connect(db).execute("SELECT count(*) FROM followers").fetchone()[0] == 0


def test_types_put_and_list(db: Path) -> None:
    done = clarion(
        db,
        "types",
        "put",
        "otp",
        "--priority",
        "P0",
        "--channels",
        "sms,push",
        "--ttl",
        "300",
        "--mandatory",
        "--routing",
        "all",
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(clarion(db, "types", "list", "--json").stdout)
    assert listed == [
        {
            "name": "otp",
            "priority": "P0",
            "channels": ["sms", "push"],
            "ttl_seconds": 300,
            "mandatory": True,
            "description": "",
            "default_enabled": None,
            "template": None,
            "routing": "all",
            "retry": None,
            "aggregate_s": 0,
            "overflow": None,
        }
    ]
    bad = clarion(db, "types", "put", "x", "--priority", "P1", "--channels", "pigeon")
    assert bad.returncode == 2
    assert "choose from" in bad.stderr


def test_worker_refuses_unknown_stages(db: Path) -> None:
    done = clarion(db, "worker", "--stages", "teleport")
    assert done.returncode == 2
    assert "stages" in done.stderr


def test_worker_and_serve_refuse_a_broker_they_cannot_use(db: Path) -> None:
    unreachable = clarion(db, "worker", "--broker", "redis://127.0.0.1:1/0")
    assert unreachable.returncode == 1
    assert "cannot reach the broker at redis://127.0.0.1:1/0" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    wrong = clarion(db, "serve", "--broker", "amqp://127.0.0.1/")
    assert wrong.returncode == 1
    assert "broker must be a redis:// (or rediss://, unix://) URL" in wrong.stderr


@pytest.mark.parametrize("api_processes", ["1", "2"])
def test_serve_on_a_port_in_use_says_so_and_fails(db: Path, api_processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = clarion(
            db, "serve", "--port", port, "--api-processes", api_processes, "--workers", "1"
        )
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_a_postgres_store_needs_redis_queues_and_a_reachable_server(
    db: Path, redis_url: str
) -> None:
    alone = clarion(db, "worker", "--store", "postgresql://postgres@127.0.0.1:1/postgres")
    assert alone.returncode == 1
    assert "the queues must be in Redis" in alone.stderr
    unreachable = clarion(
        db, "worker", "--broker", redis_url, "--store", "postgresql://postgres@127.0.0.1:1/x"
    )
    assert unreachable.returncode == 1
    assert "cannot reach the store at postgresql://postgres@127.0.0.1:1/x" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    wrong = clarion(db, "serve", "--broker", redis_url, "--store", "mysql://127.0.0.1/")
    assert wrong.returncode == 1
    assert "store must be a postgresql:// URL" in wrong.stderr


def test_db_upgrade_on_either_backend(db: Path, postgres_dsn: str) -> None:
    embedded = clarion(db, "db", "upgrade", "--json")
    assert embedded.returncode == 0, embedded.stderr
    assert json.loads(embedded.stdout)["backend"] == "sqlite"
    assert json.loads(embedded.stdout)["version"] >= 3

    upgraded = clarion(db, "db", "upgrade", "--store", postgres_dsn, "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    report = json.loads(upgraded.stdout)
    assert (report["backend"], report["version"]) == ("postgresql", len(pg_schema.MIGRATIONS))
    again = json.loads(clarion(db, "db", "upgrade", "--store", postgres_dsn, "--json").stdout)
    assert again["version"] == len(pg_schema.MIGRATIONS)
    assert again["created_partitions"] == []  # today's and the next days' exist already

    bad = clarion(db, "db", "upgrade", "--store", "postgres-ish")
    assert bad.returncode == 2
    assert "store" in bad.stderr


@pytest.mark.parametrize("store", [False, True], ids=["sqlite-store", "postgres-store"])
def test_worker_on_redis_stops_cleanly_on_sigterm(
    db: Path, redis_url: str, store: bool, request: pytest.FixtureRequest
) -> None:
    command = ["worker", "--broker", redis_url]
    if store:
        command += ["--store", str(request.getfixturevalue("postgres_dsn"))]
    worker = subprocess.Popen(
        [sys.executable, "-m", "clarion", *command, "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for it to be up (it logs what it consumes), then ask it to stop.
        assert worker.stderr is not None
        while "consuming" not in (line := worker.stderr.readline()):
            assert line, "the worker exited before it started consuming"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "stopped" in err


def test_kill_create_list_and_lift(db: Path) -> None:
    made = clarion(db, "kill", "create", "--type", "promo", "--reason", "bad copy")
    assert made.returncode == 0, made.stderr
    switch_id = made.stdout.split()[2].rstrip(":")
    listed = json.loads(clarion(db, "kill", "list", "--json").stdout)
    assert [(s["id"], s["kind"], s["value"], s["reason"]) for s in listed] == [
        (switch_id, "type", "promo", "bad copy")
    ]
    assert listed[0]["created_by"].startswith("cli (")
    assert clarion(db, "kill", "lift", switch_id).returncode == 0
    assert json.loads(clarion(db, "kill", "list", "--json").stdout) == []
    assert len(json.loads(clarion(db, "kill", "list", "--all", "--json").stdout)) == 1
    again = clarion(db, "kill", "lift", switch_id)
    assert again.returncode == 1
    assert "no active kill switch" in again.stderr


def test_kill_needs_exactly_one_target(db: Path) -> None:
    done = clarion(db, "kill", "create", "--type", "a", "--sender", "b")
    assert done.returncode == 2
    assert "exactly one" in done.stderr


def test_devices_prune_marks_stale_then_expired(db: Path) -> None:
    from clarion.config import Settings
    from clarion.models import Channel, Platform
    from clarion.runtime import open_runtime
    from clarion.stores.records import Device
    from clarion.types import UserId

    async def register() -> None:
        runtime = open_runtime(Settings(db=db))
        now = runtime.clock.now()
        for name, age_days in (("fresh", 1), ("quiet", 40), ("gone", 100)):
            seen = now - age_days * 86_400
            device = Device(
                UserId(name), "phone", Platform.ANDROID, f"token-{name}", last_seen=seen
            )
            await runtime.stores.devices.register(device, max_per_user=10)
        await runtime.close()

    asyncio.run(register())
    done = clarion(db, "devices", "prune", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"expired": 1, "stale": 1}

    async def reachable() -> dict[str, list[str]]:
        runtime = open_runtime(Settings(db=db))
        found = await runtime.stores.devices.addresses(
            Channel.PUSH, [UserId(n) for n in ("fresh", "quiet", "gone")]
        )
        await runtime.close()
        return {user: [a.value for a in addresses] for user, addresses in found.items()}

    assert asyncio.run(reachable()) == {"fresh": ["token-fresh"], "quiet": ["token-quiet"]}
    refused = clarion(db, "devices", "prune", "--stale-days", "30", "--expire-days", "7")
    assert refused.returncode == 2
    assert "--stale-days" in refused.stderr


def test_fake_providers_store_their_config_and_stop_on_sigterm(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "providers.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clarion",
            "fake-providers",
            "--configure",
            "--db",
            str(db),
            "--write-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    assert "APNs (HTTP/2)" in "".join(lines)
    written = json.loads(config.read_text())
    stored = dict(sqlite3.connect(db).execute("SELECT name, doc FROM providers").fetchall())
    assert (
        set(stored) == set(written) == {"apns", "fcm", "webpush", "smtp", "sms_twilio", "webhook"}
    )


def test_version_is_printed_for_bug_reports() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "clarion", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"clarion {version('clarion')}")


def test_help_shows_the_defaults_it_describes() -> None:
    """A bracketed "[default: …]" in a help text is rich markup unless escaped: it vanished."""
    shown = CliRunner().invoke(cli.app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "[default: ./clarion.db]" in shown.output
    assert "[default: 1]" in shown.output  # --p0-workers


@pytest.mark.parametrize("group", [[], ["bench"]])
def test_command_lists_give_each_command_its_first_paragraph_unbroken(group: list[str]) -> None:
    """Typer's rich help kept the docstrings' line breaks in the command table: a line of
    the table ended mid-sentence and the next began at the left. On a screen wide enough,
    each command is now one line."""
    commands = typer.main.get_command(cli.app)
    for name in group:
        commands = commands.commands[name]  # type: ignore[attr-defined]
    shown = CliRunner().invoke(cli.app, [*group, "--help"], env={"COLUMNS": "1000"})
    assert shown.exit_code == 0, shown.output
    table = shown.output.partition("Commands")[2]
    rows = [line.strip("│ ") for line in table.splitlines()[1:] if line.startswith("│")]
    assert [row.split()[0] for row in rows] == list(commands.commands)  # type: ignore[attr-defined]
    if not group:
        serve = next(row for row in rows if row.startswith("serve"))
        assert serve.endswith("--broker names a Redis server and --store a PostgreSQL database).")
