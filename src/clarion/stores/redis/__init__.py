"""Hot shared state kept in Redis when the queues are there (``--broker``)."""

from clarion.stores.redis.health import RedisProviderHealthStore

__all__ = ["RedisProviderHealthStore"]
