"""Hot shared state kept in Redis when the queues are there (``--broker``): provider
health, the ingest dedup cache and sender buckets, frequency counters, aggregation
windows, recorded-batch markers, kill-switch announcements and the preference cache. The
stores stay the record of what happened; ``runtime.with_hot_state`` puts these in front of
them."""

from clarion.backends.redis.stores.aggregates import RedisAggregateStore
from clarion.backends.redis.stores.deliveries import RedisFrontedDeliveryStore
from clarion.backends.redis.stores.frequency import RedisFrequencyStore
from clarion.backends.redis.stores.health import RedisProviderHealthStore
from clarion.backends.redis.stores.ingest import RedisIngestGuard
from clarion.backends.redis.stores.killswitches import AnnouncedKillSwitchStore
from clarion.backends.redis.stores.preferences import CachedPreferenceStore

__all__ = [
    "AnnouncedKillSwitchStore",
    "CachedPreferenceStore",
    "RedisAggregateStore",
    "RedisFrequencyStore",
    "RedisFrontedDeliveryStore",
    "RedisIngestGuard",
    "RedisProviderHealthStore",
]
