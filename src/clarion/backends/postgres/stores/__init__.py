"""Every store on PostgreSQL (``--store postgresql://…``), for deployments over many
machines; the queues are then in Redis (``backends.redis.broker``) with ingest's outbox here."""

from clarion.backends.postgres.stores.aggregates import PostgresAggregateStore
from clarion.backends.postgres.stores.config import (
    PostgresProviderStore,
    PostgresProviderTokenStore,
    PostgresSecretStore,
    PostgresStatusHookStore,
    PostgresTemplateStore,
)
from clarion.backends.postgres.stores.deliveries import PostgresDeliveryStore
from clarion.backends.postgres.stores.devices import PostgresDeviceStore
from clarion.backends.postgres.stores.digests import PostgresDigestStore
from clarion.backends.postgres.stores.events import PostgresEventStore
from clarion.backends.postgres.stores.followers import PostgresFollowerStore
from clarion.backends.postgres.stores.frequency import PostgresFrequencyStore
from clarion.backends.postgres.stores.inbox import PostgresInboxStore
from clarion.backends.postgres.stores.keys import PostgresKeyStore
from clarion.backends.postgres.stores.killswitches import PostgresKillSwitchStore
from clarion.backends.postgres.stores.partitions import PostgresPartitionStore
from clarion.backends.postgres.stores.preferences import PostgresPreferenceStore
from clarion.backends.postgres.stores.registry import PostgresTypeStore
from clarion.backends.postgres.stores.senders import PostgresSenderGuardStore
from clarion.backends.postgres.stores.stats import PostgresStatsStore
from clarion.backends.postgres.stores.users import PostgresUserStore

__all__ = [
    "PostgresAggregateStore",
    "PostgresDeliveryStore",
    "PostgresDeviceStore",
    "PostgresDigestStore",
    "PostgresEventStore",
    "PostgresFollowerStore",
    "PostgresFrequencyStore",
    "PostgresInboxStore",
    "PostgresKeyStore",
    "PostgresKillSwitchStore",
    "PostgresPartitionStore",
    "PostgresPreferenceStore",
    "PostgresProviderStore",
    "PostgresProviderTokenStore",
    "PostgresSecretStore",
    "PostgresSenderGuardStore",
    "PostgresStatsStore",
    "PostgresStatusHookStore",
    "PostgresTemplateStore",
    "PostgresTypeStore",
    "PostgresUserStore",
]
