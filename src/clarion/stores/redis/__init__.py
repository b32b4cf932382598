"""Hot shared state kept in Redis when the queues are there (``--broker``): provider
health, the ingest dedup cache and sender buckets, frequency counters, aggregation
windows, recorded-batch markers, kill-switch announcements and the preference cache. The
stores stay the record of what happened; ``runtime.with_hot_state`` puts these in front of
them."""

from clarion.stores.redis.aggregates import RedisAggregateStore
from clarion.stores.redis.deliveries import RedisFrontedDeliveryStore
from clarion.stores.redis.frequency import RedisFrequencyStore
from clarion.stores.redis.health import RedisProviderHealthStore
from clarion.stores.redis.ingest import RedisIngestGuard
from clarion.stores.redis.killswitches import AnnouncedKillSwitchStore
from clarion.stores.redis.preferences import CachedPreferenceStore

__all__ = [
    "AnnouncedKillSwitchStore",
    "CachedPreferenceStore",
    "RedisAggregateStore",
    "RedisFrequencyStore",
    "RedisFrontedDeliveryStore",
    "RedisIngestGuard",
    "RedisProviderHealthStore",
]
