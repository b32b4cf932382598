from clarion.policy.frequency import FrequencyCaps, SlotRequest, allot, check
from clarion.types import Seq, UserId

NOW = 1_000_000.0
HOUR = 3600.0


def test_under_the_caps() -> None:
    caps = FrequencyCaps(per_hour=3, per_day=10)
    result = check(caps, [NOW - 10, NOW - 20], NOW)
    assert not (result.over_hour)
    assert not (result.over_day)


def test_the_hourly_cap_at_its_boundary() -> None:
    caps = FrequencyCaps(per_hour=3)
    stamps = [NOW - 3000, NOW - 2000, NOW - 1000]
    result = check(caps, stamps, NOW)
    assert result.over_hour
    assert result.hour_frees_at == NOW - 3000 + HOUR  # when the oldest turns an hour old
    assert not check(caps, stamps, NOW - 3000 + HOUR).over_hour


def test_notifications_older_than_the_window_do_not_count() -> None:
    caps = FrequencyCaps(per_hour=2, per_day=3)
    stamps = [NOW - HOUR - 1, NOW - 2 * HOUR, NOW - 5]
    result = check(caps, stamps, NOW)
    assert not result.over_hour
    assert result.over_day
    assert not check(caps, stamps, NOW + 86_400).over_day


def test_frees_at_accounts_for_every_extra_notification() -> None:
    caps = FrequencyCaps(per_hour=2)
    stamps = [NOW - 50, NOW - 40, NOW - 30, NOW - 20]  # 4 in the hour, cap 2
    # Three must age out before a 2nd fits: it frees when the third-oldest turns an hour.
    assert check(caps, stamps, NOW).hour_frees_at == NOW - 30 + HOUR


def test_allot_answers_in_order_and_gives_a_held_event_its_place_again() -> None:
    ann, bob = UserId("ann"), UserId("bob")
    caps = FrequencyCaps(per_hour=2)
    held = {ann: {Seq(7): NOW - 100}}
    requests = [SlotRequest(ann, Seq(s), caps) for s in (7, 8, 9)]
    requests += [SlotRequest(bob, Seq(9), caps), SlotRequest(ann, Seq(10), caps, force=True)]
    answers, new = allot(requests, held, NOW)
    assert [a.room for a in answers] == [True, True, False, True, True]
    assert answers[2].hour_frees_at == NOW - 100 + HOUR
    assert new == [(ann, Seq(8)), (bob, Seq(9)), (ann, Seq(10))]
    assert held == {ann: {Seq(7): NOW - 100}}  # what the store read is left alone
