"""Every store on the shared SQLite file (the embedded backend)."""

from clarion.backends.sqlite.stores.aggregates import SqliteAggregateStore
from clarion.backends.sqlite.stores.deliveries import SqliteDeliveryStore
from clarion.backends.sqlite.stores.digests import SqliteDigestStore
from clarion.backends.sqlite.stores.events import SqliteEventStore
from clarion.backends.sqlite.stores.followers import SqliteFollowerStore
from clarion.backends.sqlite.stores.frequency import SqliteFrequencyStore
from clarion.backends.sqlite.stores.inbox import SqliteInboxStore
from clarion.backends.sqlite.stores.keys import SqliteKeyStore
from clarion.backends.sqlite.stores.killswitches import SqliteKillSwitchStore
from clarion.backends.sqlite.stores.preferences import SqlitePreferenceStore
from clarion.backends.sqlite.stores.registry import SqliteTypeStore
from clarion.backends.sqlite.stores.stats import SqliteStatsStore
from clarion.backends.sqlite.stores.users import SqliteUserStore

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
