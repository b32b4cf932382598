"""Every reason the trail records has words in ``clarion why``'s sentences."""

from __future__ import annotations

import pytest

from clarion.policy.decide import Reason
from clarion.stores.records import DeliveryRecord
from clarion.trail import About, because, explain
from clarion.types import EventId, UserId

ABOUT = About("evt_1", "like", "bob", 1_780_000_000.0)


@pytest.mark.parametrize("reason", [r.value for r in Reason if r is not Reason.NO_CHANNEL])
def test_every_decision_reason_has_words(reason: str) -> None:
    said = because(reason)
    assert said != reason
    assert "_" not in said


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("no_channel: no active push device", "no way to reach them (no active push device)"),
        ("superseded", "a newer one with the same collapse key replaced it"),
        ("aggregated: window 3, summary at 1780000060", "counted into a grouped notification"),
        ("digest: over frequency cap", "went into their digest (over frequency cap)"),
        ("acknowledged on its stream", "already acknowledged it live"),
        ("expired", "expired"),
    ],
)
def test_trail_reasons_in_words(reason: str, words: str) -> None:
    assert words in because(reason)


def _row(
    channel: str, outcome: str, reason: str | None, at: float, attempt: int = 1
) -> DeliveryRecord:
    return DeliveryRecord(EventId("evt_1"), UserId("ann"), channel, attempt, outcome, reason, at)


def test_a_sentence_follows_the_rows_in_order() -> None:
    rows = [
        _row("push", "failed", "retrying: 503 ServiceUnavailable", ABOUT.created_at + 1),
        _row("push", "delivered", None, ABOUT.created_at + 5, attempt=2),
        _row("email", "held", "digest", ABOUT.created_at + 1),
        _row("sms", "suppressed", "no_channel: no phone number", ABOUT.created_at + 1),
    ]
    said = explain(ABOUT, rows, "UTC")
    assert said.startswith("evt_1: like from bob at 2026-05-28 20:26 UTC — ")
    assert "push failed (attempt 1): retrying: 503 ServiceUnavailable" in said
    assert "sent by push" in said
    assert "SMS skipped: there was no way to reach them (no phone number)" in said
    assert said.endswith("held (email) by their digest, not sent yet")
    assert explain(ABOUT, [], "Not/AZone").endswith(
        "nothing recorded for them yet (still on its way)"
    )
