import random

from clarion.broker.retry import backoff_s


def test_backoff_grows_exponentially_with_jitter_inside_half_to_full() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        delays = [backoff_s(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # actually jittered


def test_backoff_is_capped() -> None:
    assert backoff_s(30, cap_s=60.0, rng=random.Random(1)) <= 60.0
