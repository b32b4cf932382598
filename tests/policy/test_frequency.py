from clarion.policy.frequency import FrequencyCaps, check

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
