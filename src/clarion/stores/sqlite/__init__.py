"""Every store on the shared SQLite file (the embedded backend)."""

from clarion.stores.sqlite.aggregates import SqliteAggregateStore
from clarion.stores.sqlite.deliveries import SqliteDeliveryStore
from clarion.stores.sqlite.digests import SqliteDigestStore
from clarion.stores.sqlite.events import SqliteEventStore
from clarion.stores.sqlite.followers import SqliteFollowerStore
from clarion.stores.sqlite.frequency import SqliteFrequencyStore
from clarion.stores.sqlite.inbox import SqliteInboxStore
from clarion.stores.sqlite.keys import SqliteKeyStore
from clarion.stores.sqlite.killswitches import SqliteKillSwitchStore
from clarion.stores.sqlite.preferences import SqlitePreferenceStore
from clarion.stores.sqlite.registry import SqliteTypeStore
from clarion.stores.sqlite.stats import SqliteStatsStore
from clarion.stores.sqlite.users import SqliteUserStore

__all__ = [
    "SqliteAggregateStore",
    "SqliteDeliveryStore",
    "SqliteDigestStore",
    "SqliteEventStore",
    "SqliteFollowerStore",
    "SqliteFrequencyStore",
    "SqliteInboxStore",
    "SqliteKeyStore",
    "SqliteKillSwitchStore",
    "SqlitePreferenceStore",
    "SqliteStatsStore",
    "SqliteTypeStore",
    "SqliteUserStore",
]
