"""Build everything a process needs from Settings, once: clock, broker, stores.

There are no process globals: the API gets the runtime through its lifespan, the CLI and the
workers build one and close it when done.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from secrets import token_hex

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from clarion.backends.postgres import PostgresDatabase
from clarion.backends.postgres import stores as pg
from clarion.backends.postgres.outbox import PostgresOutbox
from clarion.backends.postgres.stores.audiences import PostgresAudienceStore
from clarion.backends.postgres.stores.campaigns import PostgresCampaignStore
from clarion.backends.postgres.stores.live import (
    PostgresStateStore,
    PostgresStreamStore,
    PostgresTicketStore,
)
from clarion.backends.postgres.stores.schedules import PostgresScheduleStore
from clarion.backends.redis.broker import RedisBroker
from clarion.backends.redis.stores import (
    AnnouncedKillSwitchStore,
    CachedPreferenceStore,
    RedisAggregateStore,
    RedisFrequencyStore,
    RedisFrontedDeliveryStore,
    RedisIngestGuard,
    RedisProviderHealthStore,
)
from clarion.backends.sqlite import SqliteDatabase, WriteGate
from clarion.backends.sqlite.broker import SqliteBroker
from clarion.backends.sqlite.stores import (
    SqliteAggregateStore,
    SqliteDeliveryStore,
    SqliteDigestStore,
    SqliteEventStore,
    SqliteFollowerStore,
    SqliteFrequencyStore,
    SqliteInboxStore,
    SqliteKeyStore,
    SqliteKillSwitchStore,
    SqlitePreferenceStore,
    SqliteStatsStore,
    SqliteTypeStore,
    SqliteUserStore,
)
from clarion.backends.sqlite.stores.audiences import SqliteAudienceStore
from clarion.backends.sqlite.stores.campaigns import SqliteCampaignStore
from clarion.backends.sqlite.stores.config import (
    SqliteProviderStore,
    SqliteProviderTokenStore,
    SqliteSecretStore,
    SqliteStatusHookStore,
    SqliteTemplateStore,
)
from clarion.backends.sqlite.stores.devices import SqliteDeviceStore
from clarion.backends.sqlite.stores.health import SqliteProviderHealthStore
from clarion.backends.sqlite.stores.live import (
    SqliteStateStore,
    SqliteStreamStore,
    SqliteTicketStore,
)
from clarion.backends.sqlite.stores.partitions import SqlitePartitionStore
from clarion.backends.sqlite.stores.schedules import SqliteScheduleStore
from clarion.backends.sqlite.stores.senders import SqliteSenderGuardStore
from clarion.broker import Broker
from clarion.broker.outbox import OutboxRelay
from clarion.clock import Clock, SystemClock
from clarion.config import Settings
from clarion.errors import ConfigError
from clarion.keyring import SigningKeys, new_key_spec
from clarion.live.feed import Feed, RedisFeed, SqliteFeed
from clarion.live.hub import Hub
from clarion.resilience.load import LoadMonitor
from clarion.resilience.urgency import UrgentLane
from clarion.stores.base import (
    AggregateStore,
    AudienceStore,
    CampaignStore,
    DeliveryStore,
    DeviceStore,
    DigestStore,
    EventStore,
    FollowerStore,
    FrequencyStore,
    InboxStore,
    KeyStore,
    KillSwitchStore,
    PartitionStore,
    PreferenceStore,
    ProviderHealthStore,
    ProviderStore,
    ProviderTokenStore,
    ScheduleStore,
    SecretStore,
    SenderGuardStore,
    StateStore,
    StatsStore,
    StatusHookStore,
    StreamStore,
    TemplateStore,
    TicketStore,
    TypeStore,
    UserStore,
)


@dataclass(frozen=True, slots=True)
class Stores:
    keys: KeyStore
    types: TypeStore
    users: UserStore
    followers: FollowerStore
    partitions: PartitionStore
    preferences: PreferenceStore
    events: EventStore
    deliveries: DeliveryStore
    aggregates: AggregateStore
    digests: DigestStore
    streams: StreamStore
    states: StateStore
    tickets: TicketStore
    schedules: ScheduleStore
    audiences: AudienceStore
    campaigns: CampaignStore
    inbox: InboxStore
    stats: StatsStore
    frequency: FrequencyStore
    kill_switches: KillSwitchStore
    devices: DeviceStore
    templates: TemplateStore
    providers: ProviderStore
    provider_tokens: ProviderTokenStore
    status_hooks: StatusHookStore
    secrets: SecretStore
    provider_health: ProviderHealthStore
    senders: SenderGuardStore


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    broker: Broker
    stores: Stores
    _sqlite: SqliteDatabase | None
    _postgres: PostgresDatabase | None = None
    _redis_state: aioredis.Redis | None = None
    """The connection to the hot state in Redis, when the queues are there."""

    async def check(self) -> None:
        """Fail with a clear message now, rather than in every worker round, if the broker
        or the store cannot be reached."""
        if self._postgres is not None:
            await self._postgres.pool()  # a ConfigError that says what to check
        if isinstance(self.broker, OutboxRelay):
            try:
                await self.broker.ping()
                await self._claim_redis()
            except (OSError, RedisError) as exc:
                raise ConfigError(
                    f"cannot reach the broker at {self.settings.broker}: {str(exc).rstrip('.')}."
                    " Is Redis running there? (or leave --broker unset for the embedded queues)"
                ) from None

    async def _claim_redis(self) -> None:
        """Refuse a Redis database that holds another store's queues and hot state. Their
        entries name events by seq and key: read against a new or recreated store they would
        mark its batches recorded and its keys repeated, and lose its notifications."""
        assert self._redis_state is not None
        store_id = await self.stores.secrets.get_or_create("store_id", lambda: token_hex(8))
        if await self._redis_state.set(_REDIS_OWNER, store_id, nx=True):
            return
        owner = await self._redis_state.get(_REDIS_OWNER)
        if owner is not None and owner != store_id.encode():
            raise ConfigError(
                f"the Redis database at {self.settings.broker} holds the queues and state of"
                " another Clarion store. Point --broker at an empty database (redis://host:port/n"
                " with another n), or empty this one if that store is gone for good."
            )

    async def upkeep(self) -> list[str]:
        """The stores' periodic chores (PostgreSQL: the delivery log's next partitions)."""
        return await self._postgres.upkeep() if self._postgres is not None else []

    def store_version(self) -> int | None:
        """A number that changes whenever another process commits to the store (SQLite's
        ``data_version``, microseconds to read); None where no such cheap probe exists."""
        return self._sqlite.data_version() if self._sqlite is not None else None

    def gate_writes(self, gate: WriteGate) -> None:
        """Let ``gate`` order this process's write transactions against other processes',
        P0 work first (``Runner`` in a worker, ``LaneGate`` in the API). Only SQLite needs
        it: there every process shares one write lock, PostgreSQL locks rows."""
        if self._sqlite is not None:
            self._sqlite.gate = gate

    async def close(self) -> None:
        await self.broker.close()
        if isinstance(self.stores.events, RedisIngestGuard):
            await self.stores.events.settle()
        if self._redis_state is not None:
            await self._redis_state.aclose()
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            await self._postgres.close()


_REDIS_OWNER = "clarion:store"
"""Which store's queues and hot state a Redis database holds (``Runtime.check``)."""

# Outbox messages are never given up on: they wait until Redis takes them.
_OUTBOX_ATTEMPTS = 1_000_000


def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    durable_commits: bool = False,
    urgent: bool = False,
) -> Runtime:
    """Open the stores in ``settings.db`` (or ``settings.store``) and the queues there or in
    ``settings.broker``.

    ``durable_commits`` makes every SQLite commit fsync (``synchronous=FULL``): the API and
    the CLI use it so that a 202 or a printed key really is on disk; workers do not need it
    (see ``clarion.backends.sqlite.database``). PostgreSQL commits are always durable. ``urgent``
    marks a process on the P0 path (the API, P0-reserved workers): on SQLite it leaves WAL
    checkpoints to the others.
    """
    clock = clock or SystemClock()
    if settings.store is not None:
        assert settings.broker is not None  # Settings.validated refuses anything else
        pg = PostgresDatabase(settings.store, now=clock.now)
        outbox = PostgresOutbox(pg, clock, lease_s=settings.lease_s)
        broker = OutboxRelay(
            outbox, _redis(settings, clock), max_stream_len=settings.max_stream_len
        )
        state = hot_state_client(settings.broker)
        stores = with_hot_state(postgres_stores(pg, RedisProviderHealthStore(state)), state)
        return Runtime(settings, clock, broker, stores, None, pg, state)
    db = SqliteDatabase(
        settings.db, synchronous="FULL" if durable_commits else "NORMAL", checkpoints=not urgent
    )
    if settings.broker is None:
        queues = SqliteBroker(
            db, clock, lease_s=settings.lease_s, max_attempts=settings.max_attempts
        )
        stores = sqlite_stores(db, SqliteProviderHealthStore(db))
        return Runtime(settings, clock, queues, stores, db)
    relay = OutboxRelay(
        SqliteBroker(db, clock, lease_s=settings.lease_s, max_attempts=_OUTBOX_ATTEMPTS),
        _redis(settings, clock),
        max_stream_len=settings.max_stream_len,
    )
    state = hot_state_client(settings.broker)
    stores = with_hot_state(sqlite_stores(db, RedisProviderHealthStore(state)), state)
    return Runtime(settings, clock, relay, stores, db, None, state)


def _redis(settings: Settings, clock: Clock) -> RedisBroker:
    assert settings.broker is not None
    return RedisBroker(
        settings.broker, clock, lease_s=settings.lease_s, max_attempts=settings.max_attempts
    )


def sqlite_stores(db: SqliteDatabase, provider_health: ProviderHealthStore) -> Stores:
    """Every store in the SQLite file except provider health, which lives with the queues
    (``backends.redis.stores.health`` once they are in Redis)."""
    return Stores(
        keys=SqliteKeyStore(db),
        types=SqliteTypeStore(db),
        users=SqliteUserStore(db),
        followers=SqliteFollowerStore(db),
        partitions=SqlitePartitionStore(db),
        preferences=SqlitePreferenceStore(db),
        events=SqliteEventStore(db),
        deliveries=SqliteDeliveryStore(db),
        aggregates=SqliteAggregateStore(db),
        digests=SqliteDigestStore(db),
        streams=SqliteStreamStore(db),
        states=SqliteStateStore(db),
        tickets=SqliteTicketStore(db),
        schedules=SqliteScheduleStore(db),
        audiences=SqliteAudienceStore(db),
        campaigns=SqliteCampaignStore(db),
        inbox=SqliteInboxStore(db),
        stats=SqliteStatsStore(db),
        frequency=SqliteFrequencyStore(db),
        kill_switches=SqliteKillSwitchStore(db),
        devices=SqliteDeviceStore(db),
        templates=SqliteTemplateStore(db),
        providers=SqliteProviderStore(db),
        provider_tokens=SqliteProviderTokenStore(db),
        status_hooks=SqliteStatusHookStore(db),
        secrets=SqliteSecretStore(db),
        provider_health=provider_health,
        senders=SqliteSenderGuardStore(db),
    )


def postgres_stores(db: PostgresDatabase, provider_health: ProviderHealthStore) -> Stores:
    return Stores(
        keys=pg.PostgresKeyStore(db),
        types=pg.PostgresTypeStore(db),
        users=pg.PostgresUserStore(db),
        followers=pg.PostgresFollowerStore(db),
        partitions=pg.PostgresPartitionStore(db),
        preferences=pg.PostgresPreferenceStore(db),
        events=pg.PostgresEventStore(db),
        deliveries=pg.PostgresDeliveryStore(db),
        aggregates=pg.PostgresAggregateStore(db),
        digests=pg.PostgresDigestStore(db),
        streams=PostgresStreamStore(db),
        states=PostgresStateStore(db),
        tickets=PostgresTicketStore(db),
        schedules=PostgresScheduleStore(db),
        audiences=PostgresAudienceStore(db),
        campaigns=PostgresCampaignStore(db),
        inbox=pg.PostgresInboxStore(db),
        stats=pg.PostgresStatsStore(db),
        frequency=pg.PostgresFrequencyStore(db),
        kill_switches=pg.PostgresKillSwitchStore(db),
        devices=pg.PostgresDeviceStore(db),
        templates=pg.PostgresTemplateStore(db),
        providers=pg.PostgresProviderStore(db),
        provider_tokens=pg.PostgresProviderTokenStore(db),
        status_hooks=pg.PostgresStatusHookStore(db),
        secrets=pg.PostgresSecretStore(db),
        provider_health=provider_health,
        senders=pg.PostgresSenderGuardStore(db),
    )


def hot_state_client(url: str) -> aioredis.Redis:
    """A Redis connection that fails fast: every use of the hot state has a slower way
    round (the store) that beats waiting out redis-py's default backoff while Redis is down.
    One immediate retry still covers a pooled connection that a Redis restart closed."""
    return aioredis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 1), socket_connect_timeout=1.0, socket_timeout=5.0
    )


def with_hot_state(stores: Stores, client: aioredis.Redis) -> Stores:
    """Put Redis in front of the stores' hot paths (``backends.redis.stores``): what every API
    process or worker reads or bumps per request or batch, where one database row or lock
    would serialize them."""
    return replace(
        stores,
        events=RedisIngestGuard(stores.events, client),
        deliveries=RedisFrontedDeliveryStore(stores.deliveries, client),
        aggregates=RedisAggregateStore(client),
        frequency=RedisFrequencyStore(client),
        kill_switches=AnnouncedKillSwitchStore(stores.kill_switches, client),
        preferences=CachedPreferenceStore(stores.preferences, client),
    )


async def check_backends(settings: Settings) -> None:
    """Open and close a runtime: bad settings or an unreachable broker fail here, once."""
    runtime = open_runtime(settings)
    try:
        await runtime.check()
    finally:
        await runtime.close()


async def user_token_keys(runtime: Runtime) -> SigningKeys:
    """The keys of end-user tokens (``live.tokens``): from settings, else generated once."""
    spec = runtime.settings.user_token_keys or await runtime.stores.secrets.get_or_create(
        "user_token_keys", new_key_spec
    )
    return SigningKeys.parse(spec)


async def signing_keys(runtime: Runtime) -> SigningKeys:
    """The unsubscribe-link keys: from settings, else generated once and kept in the store."""
    spec = runtime.settings.signing_keys or await runtime.stores.secrets.get_or_create(
        "unsubscribe_keys", new_key_spec
    )
    return SigningKeys.parse(spec)


def urgent_lane(runtime: Runtime) -> UrgentLane:
    """This process's handle on the urgent lane (``resilience.urgency``)."""
    db = runtime.settings.db
    return UrgentLane(db.with_name(db.name + ".urgent"))


def load_monitor(runtime: Runtime) -> LoadMonitor:
    """This process's view of the load level (``resilience.load``)."""
    return LoadMonitor(
        runtime.broker.depths,
        runtime.clock.now,
        shed_p2=runtime.settings.load_shed_p2,
        shed_p1=runtime.settings.load_shed_p1,
    )


def live_feed(runtime: Runtime, hub: Hub) -> Feed:
    """How this API process hears of stream entries appended elsewhere (``live.feed``)."""
    if runtime._redis_state is not None:
        return RedisFeed(runtime._redis_state, runtime.stores.streams, hub)
    assert runtime._sqlite is not None
    streams = runtime.stores.streams
    assert isinstance(streams, SqliteStreamStore)
    return SqliteFeed(streams, runtime._sqlite, hub)
