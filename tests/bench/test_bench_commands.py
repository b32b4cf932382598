"""The benchmarks run and keep their --json contract (the numbers are theirs to report)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from clarion import cli
from tests.services import empty_postgres

pytestmark = pytest.mark.slow


def bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "clarion", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_bench_fanout_json() -> None:
    result = bench("fanout", "--followers", "3000", "--batch-size", "500")
    required = {
        "recipients",
        "seconds_to_first",
        "seconds_total",
        "recipients_per_s",
        "peak_rss_mb",
        "raw_insert_rows_per_s",
    }
    assert required <= result.keys()
    assert (result["population"], result["recipients"]) == ("realistic", 3000)
    # Everyone was decided: in their inbox, opted out (a fifth), or held (quiet hours, caps).
    assert result["delivered"] + result["suppressed"] + result["held"] == 3000
    assert 400 <= result["suppressed"] <= 800
    assert result["held"] >= 150
    assert result["defaults_recipients_per_s"] > 0  # the easy path, run first for comparison
    assert {"api", "worker-1", "worker-2"} <= result["cpu_s"].keys()
    assert sum(result["cpu_s"].values()) > 0


def test_bench_fanout_on_redis_reports_scaling_and_raw_rates(redis_url: str) -> None:
    result = bench(
        "fanout",
        "--followers",
        "2000",
        "--batch-size",
        "250",
        "--broker",
        redis_url,
        "--workers",
        "1,2",
        "--partitions",
        "--population",
        "defaults",
    )
    assert result["recipients"] == result["delivered"] == 2000
    assert result["broker"] == "redis"
    assert result["workers"] == 2
    assert result["scaling"]["workers"] == [1, 2]
    assert len(result["scaling"]["recipients_per_s"]) == 2
    assert result["raw_redis_ops_per_s"] > 0
    assert result["partition_build_s"] is not None
    # The benchmark cleans up after itself: nothing of Clarion's is left in that Redis.
    with redis.Redis.from_url(redis_url) as client:
        assert not client.keys("clarion:*")


def test_bench_fanout_on_redis_and_postgres(redis_url: str, postgres_dsn: str) -> None:
    asyncio.run(empty_postgres(postgres_dsn))  # other tests share this server
    args = ("--followers", "1000", "--broker", redis_url, "--store", postgres_dsn)
    result = bench("fanout", *args, "--population", "realistic")
    assert result["delivered"] + result["suppressed"] + result["held"] == 1000
    assert (result["broker"], result["store"]) == ("redis", "postgresql")
    assert result["raw_pg_copy_rows_per_s"] > 0
    assert result["raw_redis_ops_per_s"] > 0
    again = bench("fanout", *args, "--population", "defaults")  # it emptied its database
    assert again["delivered"] == 1000


def test_bench_ingest_on_redis_and_postgres(redis_url: str, postgres_dsn: str) -> None:
    asyncio.run(empty_postgres(postgres_dsn))
    result = bench(
        "ingest", "--seconds", "1", "--concurrency", "4", "--broker", redis_url,
        "--store", postgres_dsn,
    )  # fmt: skip
    assert (result["broker"], result["store"]) == ("redis", "postgresql")
    assert result["accepted_events"] == result["stored_events"] > 0
    assert result["errors"] == 0


def test_bench_fanout_refuses_a_store_it_cannot_use(redis_url: str) -> None:
    for extra, said in (
        ((), "needs --broker"),
        (("--broker", redis_url), "cannot reach the store"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "clarion", "bench", "fanout", "--followers", "100",
             "--store", "postgresql://postgres@127.0.0.1:1/postgres", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode in (1, 2)
        assert said in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("fanout", "--workers", "two"), "workers"),
        (("fanout", "--followers", "0"), "--followers"),
        (("ingest", "--batch", "-5"), "--batch"),
        (("ingest", "--seconds", "0"), "seconds"),
        (("evaluate", "--others", "x"), "others"),
        (("evaluate", "--others", "0"), "others"),
        (("push", "--pushes", "0"), "--pushes"),
        (("email", "--messages", "0"), "--messages"),
        (("aggregate", "--concurrency", "0"), "--concurrency"),
    ],
)
def test_bench_refuses_sizes_it_cannot_measure(args: tuple[str, ...], named: str) -> None:
    """Zero or negative sizes are refused up front, naming the option: measured, they
    gave a table of zeros or a division by zero."""
    done = subprocess.run(
        [sys.executable, "-m", "clarion", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_ingest_json() -> None:
    result = bench("ingest", "--seconds", "1", "--concurrency", "4")
    assert result["accepted_events"] == result["stored_events"]
    assert result["errors"] == 0
    batch = bench("ingest", "--seconds", "1", "--concurrency", "2", "--batch", "100")
    assert batch["accepted_events"] == batch["stored_events"]


def test_bench_evaluate_json() -> None:
    result = bench("evaluate", "--batch", "1000", "--others", "200")
    assert {"batch_size", "cpu_ms", "cold_cpu_ms"} <= result.keys()
    assert result["cold_cpu_ms"] > 0
    assert result["batch_size"] == 1000


def test_bench_aggregate_json() -> None:
    result = bench("aggregate", "--events", "3000", "--window", "2")
    assert {"events", "events_per_s", "pushes"} <= result.keys()
    assert result["events"] == 3000
    assert 0 < result["pushes"] <= 2 * result["windows"]  # a first and one summary at most


def test_bench_stream_json() -> None:
    result = bench("stream", "--people", "200", "--rate", "400", "--seconds", "2")
    required = {"connections", "updates_per_s", "p50_ms", "p99_ms", "lost", "bytes_per_connection"}
    assert required <= result.keys()
    assert result["connections"] == 400
    assert result["api_processes"] == (os.cpu_count() or 1)  # one per core by default
    assert result["samples"] > 0
    assert result["storm_reconnect_s"] is not None
    assert (result["lost"], result["doubled"]) == (0, 0)  # the storm included
    assert result["cpu_cores"].keys() == {"api", "devices", "publisher"}
    assert result["cpu_cores"]["api"] > 0  # the API processes, not only their supervisor


def test_bench_campaign_json() -> None:
    result = bench(
        "campaign", "--people", "5000", "--throttle", "1000", "--throttle-seconds", "3"
    )  # fmt: skip
    required = {
        "upload_ids_per_s",
        "segment_users_per_s",
        "campaign_recipients_per_s",
        "throttle_error_pct",
    }
    assert required <= result.keys()
    assert result["campaign_recipients"] == 5000
    assert 0 < result["segment_matched"] < 5000
    assert result["throttle_error_pct"] < 20


def test_bench_push_json() -> None:
    result = bench("push", "--pushes", "400", "--workers", "2")
    assert {"sends_per_s", "raw_h2_requests_per_s", "workers"} <= result.keys()
    assert result["workers"] == 2
    assert result["received_by_lookalike"] == 400  # every push really reached the look-alike
    assert set(result["sends_per_s_by_workers"]) == {"1", "2"}


def test_bench_email_json() -> None:
    result = bench("email", "--messages", "50")
    assert result["messages"] == 50
    assert result["connections"] == 1


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("email", "--messages", "30"), "messages / s"),
        (("stream", "--people", "50", "--rate", "100", "--seconds", "1"), "live streams"),
        (("evaluate", "--batch", "300", "--others", "100"), "Evaluating one batch"),
        (("fanout", "--followers", "500", "--batch-size", "250"), "recipients / s"),
        (("ingest", "--seconds", "1", "--batch", "100"), "accepted events / s"),
        (("aggregate", "--events", "1000", "--window", "1"), "likes per push"),
        (("push", "--pushes", "200", "--workers", "1"), "pipeline sends / s"),
        (
            ("campaign", "--people", "2000", "--throttle", "500", "--throttle-seconds", "1"),
            "unthrottled campaign",
        ),
    ],
)
def test_bench_tables_for_people(args: tuple[str, ...], shown: str) -> None:
    # In this process (the command's own code is measured), as a person would run it.
    done = CliRunner().invoke(cli.app, ["bench", *args])
    assert done.exit_code == 0, done.output
    assert shown in done.stdout


def test_bench_isolation_json_under_a_200k_campaign() -> None:
    """The overload scenario end to end: every OTP arrives during a 200,000-recipient P2
    campaign, and the campaign gives way (the latency ratio is the benchmark's to report)."""
    result = bench("isolation", "--flood", "200000", "--otps", "30", "--rounds", "2")
    required = {
        "p0_p99_idle_ms",
        "p0_p99_flood_ms",
        "p0_p50_idle_ms",
        "p0_p50_flood_ms",
        "flood_recipients",
    }
    assert required <= result.keys()
    assert result["flood_recipients"] == 200_000
    assert result["rounds"] == 2
    assert result["otps_idle"] == 30
    assert result["otps_flood"] >= 2  # OTPs went out during each campaign
    assert 0 < result["p0_p50_idle_ms"] <= result["p0_p99_idle_ms"]


def test_bench_report_writes_the_report_and_its_plots(tmp_path: Path) -> None:
    out = tmp_path / "report"
    summary = bench("report", "--out", str(out), "--quick")
    assert summary["plots"] == {
        "fanout": "fanout.png",
        "isolation": "p0_latency.png",
        "stages": "stages.png",
    }
    for name in ("report.md", "report.json", "fanout.png", "p0_latency.png", "stages.png"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "report.json").read_text())
    assert [f["recipients"] for f in doc["fanout"]] == [500, 2_000]
    for f in doc["fanout"]:
        assert f["delivered"] + f["suppressed"] + f["held"] == f["recipients"]
    assert doc["ingest"]["batched"]["events_per_s"] > 0
    assert doc["evaluate"]["batch_size"] == 1_000
    assert doc["push"]["received_by_lookalike"] == 300
    assert doc["isolation"]["idle_ms"]
    assert doc["machine"]["cores"]
    assert "| 2,000 |" in (out / "report.md").read_text()
    assert (out / "fanout.png").read_bytes().startswith(b"\x89PNG")
