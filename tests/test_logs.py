"""Log lines: JSON with the bound and per-line fields, readable console lines, and the last
guard that scrubs anything shaped like a secret."""

from __future__ import annotations

import json
import logging

from clarion import logs


def _record(message: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("clarion.test", logging.WARNING, __file__, 1, message, (), None)
    if fields:
        record.fields = fields
    return record


def test_json_lines_carry_bound_and_own_fields() -> None:
    with logs.bound(stage="evaluate", priority="P1"), logs.bound(worker="w1"):
        line = logs.JsonFormatter().format(_record("failed", event_id="evt_1"))
    doc = json.loads(line)
    assert doc["message"] == "failed"
    assert doc["level"] == "warning"
    assert (doc["stage"], doc["priority"], doc["worker"], doc["event_id"]) == (
        "evaluate", "P1", "w1", "evt_1",
    )  # fmt: skip
    outside = json.loads(logs.JsonFormatter().format(_record("later")))
    assert "stage" not in outside  # the binding ended with its block


def test_console_lines_end_with_their_fields() -> None:
    line = logs.ConsoleFormatter().format(_record("sent", batch_key="b/1"))
    assert line.endswith("sent  batch_key=b/1")


def test_secrets_are_scrubbed_from_every_line() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"
    key = "clk_0a1b2c3d4e5f_abcDEF-ghi_jkl"
    text = f"to ann.b+x@mail.example.org with {key}, {jwt}; Authorization: Bearer abc.def"
    scrubbed = logs.scrub(text)
    for secret in ("ann.b+x@mail.example.org", key, jwt, "abc.def"):
        assert secret not in scrubbed
    line = logs.JsonFormatter().format(_record("to %s"))
    assert logs.scrub("evt_01ab, trace 4bf92f3577b34da6") == "evt_01ab, trace 4bf92f3577b34da6"
    assert json.loads(line)["message"] == "to %s"
