"""The breaker and the send buckets, as pure functions of one provider's record."""

from __future__ import annotations

from clarion.resilience.breaker import (
    Admission,
    BreakerSettings,
    BreakerState,
    Health,
    admit,
    report,
)

S = BreakerSettings(
    window_s=30, error_rate=0.3, min_requests=10, first_probe_s=30, probe_every_s=30, half_open_s=10
)
"""A fixed 30-s probe; ``test_probes_come_soon_after_opening_and_back_off`` grows it."""


def _admit(
    h: Health, want: int, now: float, rate: float | None = None, *, retry: bool = False
) -> tuple[Health, Admission]:
    return admit(h, want, retry=retry, now=now, rate_per_s=rate, settings=S)


def _report(h: Health, sent: int, failed: int, now: float, *, throttled: bool = False) -> Health:
    return report(h, sent=sent, failed=failed, throttled=throttled, now=now, settings=S)


def test_it_opens_on_the_error_rate_only_with_enough_requests() -> None:
    h = _report(Health(), sent=5, failed=5, now=0)
    assert h.state is BreakerState.CLOSED  # five requests say too little
    h = _report(h, sent=5, failed=0, now=1)
    assert h.state is BreakerState.OPEN  # 5 of 10 failed: 50% ≥ 30%
    assert (h.changed_at, h.probe_at) == (1, 31)


def test_a_healthy_rate_keeps_it_closed_and_the_window_slides() -> None:
    h = _report(Health(), sent=100, failed=20, now=0)
    assert h.state is BreakerState.CLOSED
    h = _report(h, sent=10, failed=10, now=31)  # most of the last window still counts
    assert h.state is BreakerState.CLOSED
    assert round(h.error_rate(31, 30), 3) == round(29.33 / 106.67, 3)
    h = _report(h, sent=10, failed=10, now=59)  # by now it has slid almost out
    assert h.state is BreakerState.OPEN


def test_a_run_of_failures_opens_it_whatever_the_history() -> None:
    h = _report(Health(), sent=5000, failed=0, now=0)
    h = _report(h, sent=30, failed=30, now=1)
    h = _report(h, sent=10, failed=2, now=1)  # a mostly good answer ends the run
    h = _report(h, sent=30, failed=30, now=1)
    assert h.state is BreakerState.CLOSED
    h = _report(h, sent=40, failed=20, now=2)  # 50 in a run, though only 2% of the window
    assert h.state is BreakerState.OPEN


def test_open_admits_nothing_until_one_probe_then_half_open_then_closed() -> None:
    h = _report(Health(), sent=10, failed=10, now=0)
    h, a = _admit(h, 50, now=10)
    assert (a.granted, a.wait_s, a.state) == (0, 20, BreakerState.OPEN)
    h, a = _admit(h, 50, now=30)
    assert (a.granted, a.probing) == (1, True)
    h, again = _admit(h, 50, now=30.5)
    assert again.granted == 0  # one probe per interval, whichever worker got it
    h = _report(h, sent=1, failed=0, now=31)
    assert h.state is BreakerState.HALF_OPEN
    h, a = _admit(h, 50, now=32)
    assert a.granted == 10  # a fifth of the batch while half-open
    h = _report(h, sent=10, failed=0, now=42)
    assert h.state is BreakerState.CLOSED
    assert _admit(h, 50, now=43)[1].granted == 50


def test_a_failed_probe_keeps_it_open_and_a_relapse_reopens() -> None:
    h = _report(Health(), sent=10, failed=10, now=0)
    h, _ = _admit(h, 5, now=30)
    h = _report(h, sent=1, failed=1, now=30)
    assert h.state is BreakerState.OPEN
    assert h.probe_at == 60
    h, _ = _admit(h, 5, now=60)
    h = _report(h, sent=1, failed=0, now=60)
    assert h.state is BreakerState.HALF_OPEN
    h = _report(h, sent=4, failed=3, now=62)
    assert h.state is BreakerState.OPEN


def test_probes_come_soon_after_opening_and_back_off_to_the_longest_wait() -> None:
    growing = BreakerSettings(min_requests=10, first_probe_s=2, probe_every_s=30)
    h = report(Health(), sent=10, failed=10, throttled=False, now=0, settings=growing)
    assert (h.state, h.probe_at) == (BreakerState.OPEN, 2)
    probes = []
    now = 0.0
    for _ in range(6):  # every probe fails: 2, then 4, 8, 16, 30, 30 s apart
        now = h.probe_at
        h, a = admit(h, 5, retry=False, now=now, rate_per_s=None, settings=growing)
        assert (a.granted, a.probing) == (1, True)
        h = report(h, sent=1, failed=1, throttled=False, now=now, settings=growing)
        probes.append(now)
    assert probes == [2, 6, 14, 30, 60, 90]
    h = report(h, sent=0, failed=0, throttled=False, now=now, settings=growing)
    h, a = admit(h, 5, retry=False, now=h.probe_at, rate_per_s=None, settings=growing)
    h = report(h, sent=1, failed=0, throttled=False, now=now + 30, settings=growing)
    assert h.state is BreakerState.HALF_OPEN
    h = report(h, sent=10, failed=9, throttled=False, now=now + 31, settings=growing)
    assert (h.state, h.probe_at - (now + 31)) == (BreakerState.OPEN, 2)  # soon again


def test_the_bucket_grants_part_and_says_when_to_come_back() -> None:
    h, a = _admit(Health(), 25, now=0, rate=10)
    assert (a.granted, round(a.wait_s, 3)) == (10, 0.1)  # a second's worth of burst
    h, a = _admit(h, 25, now=0.5, rate=10)
    assert a.granted == 5  # half a second refilled five
    h, a = _admit(h, 25, now=10, rate=10)
    assert a.granted == 10  # never more than the burst, however long it waited


def test_retries_get_only_their_share_of_the_rate() -> None:
    h, a = _admit(Health(), 25, now=0, rate=10, retry=True)
    assert a.granted == 5  # half of the rate
    h, fresh = _admit(h, 25, now=0, rate=10)
    assert fresh.granted == 5  # the tokens retries could not use are still there


def test_a_429_halves_the_rate_for_a_while() -> None:
    h = _report(Health(), sent=1, failed=0, now=0, throttled=True)
    assert h.state is BreakerState.CLOSED  # being asked to slow down is not an outage
    assert _admit(h, 100, now=1, rate=10)[1].granted == 5
    assert _admit(h, 100, now=31, rate=10)[1].granted == 10
    assert _admit(h, 100, now=1)[1].granted == 50  # no configured rate: half of each batch


def test_the_record_survives_a_round_trip_through_json() -> None:
    h = _report(Health(), sent=10, failed=10, now=5)
    assert Health.from_json(h.to_json()) == h
