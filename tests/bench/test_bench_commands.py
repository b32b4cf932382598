"""The benchmarks run and keep their --json contract (the numbers are theirs to report)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def bench(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "clarion", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
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
    assert result["recipients"] == result["delivered"] == 3000


def test_bench_ingest_json() -> None:
    result = bench("ingest", "--seconds", "1", "--concurrency", "4")
    assert result["accepted_events"] == result["stored_events"]
    assert result["errors"] == 0
    batch = bench("ingest", "--seconds", "1", "--concurrency", "2", "--batch", "100")
    assert batch["accepted_events"] == batch["stored_events"]


def test_bench_evaluate_json() -> None:
    result = bench("evaluate", "--batch", "1000", "--others", "200")
    assert {"batch_size", "cpu_ms"} <= result.keys()
    assert result["batch_size"] == 1000
