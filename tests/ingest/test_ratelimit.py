import math

from clarion.ingest.ratelimit import Bucket, take


def test_take_grants_a_full_bucket_to_a_new_sender() -> None:
    bucket, wait = take(None, rate_per_s=10, burst_s=1, need=10, now=100.0)
    assert wait == 0
    assert bucket == Bucket(0.0, 100.0)


def test_take_refuses_without_spending_and_says_how_long_to_wait() -> None:
    bucket, wait = take(Bucket(2.0, 100.0), rate_per_s=10, burst_s=1, need=5, now=100.0)
    assert wait == 0.3  # 3 missing tokens at 10/s
    assert bucket.tokens == 2.0


def test_take_refills_with_time_up_to_capacity() -> None:
    bucket, wait = take(Bucket(0.0, 100.0), rate_per_s=10, burst_s=1, need=10, now=105.0)
    assert wait == 0
    assert bucket.tokens == 0.0  # refilled to the cap of 10, not 50, then spent


def test_take_says_never_when_the_request_exceeds_the_burst() -> None:
    _, wait = take(None, rate_per_s=10, burst_s=1, need=11, now=0.0)
    assert math.isinf(wait)
