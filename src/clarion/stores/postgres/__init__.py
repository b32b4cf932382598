"""Every store on PostgreSQL (``--store postgresql://…``), for deployments over many
machines; the queues are then in Redis (``broker.redis``) with ingest's outbox here."""

from clarion.stores.postgres.aggregates import PostgresAggregateStore
from clarion.stores.postgres.config import (
    PostgresProviderStore,
    PostgresProviderTokenStore,
    PostgresSecretStore,
    PostgresStatusHookStore,
    PostgresTemplateStore,
)
from clarion.stores.postgres.deliveries import PostgresDeliveryStore
from clarion.stores.postgres.devices import PostgresDeviceStore
from clarion.stores.postgres.digests import PostgresDigestStore
from clarion.stores.postgres.events import PostgresEventStore
from clarion.stores.postgres.followers import PostgresFollowerStore
from clarion.stores.postgres.frequency import PostgresFrequencyStore
from clarion.stores.postgres.inbox import PostgresInboxStore
from clarion.stores.postgres.keys import PostgresKeyStore
from clarion.stores.postgres.killswitches import PostgresKillSwitchStore
from clarion.stores.postgres.partitions import PostgresPartitionStore
from clarion.stores.postgres.preferences import PostgresPreferenceStore
from clarion.stores.postgres.registry import PostgresTypeStore
from clarion.stores.postgres.senders import PostgresSenderGuardStore
from clarion.stores.postgres.stats import PostgresStatsStore
from clarion.stores.postgres.users import PostgresUserStore

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
