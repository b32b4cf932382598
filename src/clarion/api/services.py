"""What the API's handlers share for the life of the app: the runtime, caches, the writer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from clarion.api.limiter import ClientLimiter
from clarion.cache import TTLCache
from clarion.errors import ForbiddenError, RateLimitedError, UnauthenticatedError
from clarion.ingest.validation import Limits
from clarion.ingest.writer import IngestWriter
from clarion.keyring import SigningKeys
from clarion.keys import hash_key
from clarion.live import critical, tokens
from clarion.live.hub import Hub
from clarion.live.log import Entry, Head, Post
from clarion.live.render import Renderer
from clarion.live.state import Put
from clarion.models import Priority, SenderKey, TypeSpec
from clarion.resilience.urgency import LaneGate
from clarion.runtime import (
    Runtime,
    live_feed,
    load_monitor,
    signing_keys,
    urgent_lane,
    user_token_keys,
)
from clarion.stores.records import IngestRequest
from clarion.types import UserId
from clarion.web.sampler import Sampler

KEY_CACHE_S = 5.0
"""A revoked key stops working everywhere within this long."""
BLOCKED_CACHE_S = 1.0
"""A blocked sender is refused everywhere within this long."""
SHED_RETRY_S = 5.0
UNSUBSCRIBES_PER_S = 2.0
"""Per client address, with a burst of five seconds' worth (a person clicks a few links)."""
log = logging.getLogger(__name__)

ACTIVATE_EVERY_S = 3600.0
"""A person's stream stays active a day after activation: renewed hourly is plenty."""
TYPE_CACHE_S = 1.0
"""A changed type applies to new events within this long."""


class ApiServices:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.limits = Limits.of(settings)
        self.lane = urgent_lane(runtime)
        runtime.gate_writes(LaneGate(self.lane))
        self.writer = IngestWriter(
            runtime.stores.events, runtime.clock, batch_size=settings.batch_size
        )
        self._keys: TTLCache[str, SenderKey | None] = TTLCache(
            runtime.stores.keys.find, runtime.clock, ttl_s=KEY_CACHE_S
        )
        self.types: TTLCache[str, TypeSpec | None] = TTLCache(
            self._load_type, runtime.clock, ttl_s=TYPE_CACHE_S
        )
        self._templates: TTLCache[tuple[str, int | None], int | None] = TTLCache(
            self._load_template_version, runtime.clock, ttl_s=TYPE_CACHE_S
        )
        self._template_docs: dict[tuple[str, int], dict[str, Any]] = {}
        self.load = load_monitor(runtime)
        self._blocked: TTLCache[str, dict[str, tuple[float, str]]] = TTLCache(
            lambda _: runtime.stores.senders.blocked(), runtime.clock, ttl_s=BLOCKED_CACHE_S
        )
        self.unsubscribe_limiter = ClientLimiter(
            runtime.clock, rate_per_s=UNSUBSCRIBES_PER_S, burst_s=5
        )
        self.hub = Hub(runtime.stores.streams, Renderer(self))
        self._feed = live_feed(runtime, self.hub)
        self._tasks: list[asyncio.Task[None]] = []
        self.sampler = Sampler(runtime.clock)
        """The dashboard's last fifteen minutes (``web.sampler``)."""
        self._stop = asyncio.Event()
        self._token_keys: SigningKeys | None = None
        self._session_keys: SigningKeys | None = None
        self._active: dict[UserId, tuple[float, Head]] = {}

    async def _load_type(self, name: str) -> TypeSpec | None:
        spec = await self.runtime.stores.types.get(name)
        fallback = self.runtime.settings.default_type
        if spec is None and fallback is not None and fallback != name:
            spec = await self.runtime.stores.types.get(fallback)
        return spec

    async def _load_template_version(self, key: tuple[str, int | None]) -> int | None:
        found = await self.runtime.stores.templates.get(*key)
        return None if found is None else found.version

    async def template_version(self, template: str, version: int | None) -> int | None:
        """The version an event will render with: the one asked for, else the newest."""
        return await self._templates.get((template, version))

    async def template_doc(self, template: str, version: int) -> dict[str, Any] | None:
        """A stored version (versions never change, so they are kept for good)."""
        key = (template, version)
        if key not in self._template_docs:
            found = await self.runtime.stores.templates.get(template, version)
            if found is None:
                return None
            self._template_docs[key] = found.doc
        return self._template_docs[key]

    async def authenticate(self, secret: str | None) -> SenderKey:
        if not secret:
            raise UnauthenticatedError("send your API key as 'Authorization: Bearer <key>'")
        return await self.key_by_hash(hash_key(secret))

    async def key_by_hash(self, key_hash: str) -> SenderKey:
        """The live key with this hash (a dashboard session holds the hash, not the key)."""
        key = await self._keys.get(key_hash)
        if key is None or key.revoked_at is not None:
            raise UnauthenticatedError("unknown or revoked API key")
        return key

    async def session_keys(self) -> SigningKeys:
        """What signs dashboard sessions: the deployment's signing keys."""
        if self._session_keys is None:
            self._session_keys = await signing_keys(self.runtime)
        return self._session_keys

    async def check_sender(self, key: SenderKey) -> None:
        """Refuse a sender the dead-letter guard has cut off (``resilience.senders``)."""
        blocked = (await self._blocked.get("")).get(key.sender)
        if blocked is not None:
            raise ForbiddenError(
                f"sender {key.sender!r} is blocked: {blocked[1]}. Fix the producer, then ask"
                f" an admin to unblock it (POST /v1/senders/{key.sender}/unblock)"
            )

    async def check_load(self, priority: Priority) -> None:
        """Backpressure: refuse what the load level sheds (never P0)."""
        load = await self.load.current()
        if load.refuses(priority):
            raise RateLimitedError(
                f"Clarion is shedding load ({load.level.value}, {load.backlog:,} batches"
                f" queued): {priority.value} events are refused for now; retry later",
                SHED_RETRY_S,
            )

    @staticmethod
    def require_admin(key: SenderKey) -> SenderKey:
        if not key.admin:
            raise ForbiddenError("this needs an admin key (clarion keys create --admin)")
        return key

    async def token_keys(self) -> SigningKeys:
        if self._token_keys is None:
            self._token_keys = await user_token_keys(self.runtime)
        return self._token_keys

    async def user_of(self, token: str) -> UserId:
        """The person a user token is for (``live.tokens``); an API key is refused here."""
        if not tokens.looks_like_token(token):
            raise UnauthenticatedError("this needs a user token, not an API key")
        return tokens.verify(token, await self.token_keys(), self.runtime.clock.now())

    async def activate(self, user: UserId) -> Head:
        """Keep the person's stream written (a device of theirs is here), at most once an
        hour per process; returns its head."""
        now = self.runtime.clock.now()
        known = self._active.get(user)
        if known is not None and now - known[0] < ACTIVATE_EVERY_S:
            return known[1]
        head = await self.runtime.stores.streams.activate(user, now)
        self._active[user] = (now, head)
        return head

    async def position(self, user: UserId) -> str:
        """Where the person's stream is now, as a message id: a device that loads a
        snapshot after asking this and then streams ``since`` it misses nothing."""
        head = await self.activate(user)
        fresh = (await self.runtime.stores.streams.heads([user])).get(user, head)
        return f"{fresh.epoch}:{fresh.pos}"

    async def publish(self, posts: Sequence[Post]) -> list[Entry]:
        """Append to people's streams, then hand the entries to this process's devices and
        announce them to the other processes'."""
        entries = await self.runtime.stores.streams.append(posts, self.runtime.clock.now())
        await self.delivered(entries)
        return entries

    async def put_states(self, posts: Sequence[Post]) -> list[Put]:
        """Store state (newer versions only) and tell the person's devices; a critical
        change also schedules its acknowledgement check (``live.critical``)."""
        now = self.runtime.clock.now()
        puts = await self.runtime.stores.states.put(posts, now)
        await self.delivered([p.entry for p in puts if p.entry is not None])
        window = self.runtime.settings.idempotency_window_s
        checks = [
            critical.refresh_event(post, put.entry, now, idempotency_window_s=window)
            for post, put in zip(posts, puts, strict=True)
            if post.critical and put.applied
        ]
        if checks:
            await self.writer.submit(IngestRequest("clarion", None, 1.0, checks))
        return puts

    async def delivered(self, entries: Sequence[Entry]) -> None:
        """Entries this process committed (a state put appends in its own transaction)."""
        if entries:
            await self._feed.announce(entries)
            await self.hub.deliver(entries)

    def start(self) -> None:
        self.writer.start()
        self._tasks = [
            asyncio.create_task(self._feed.run(self._stop), name="live-feed"),
            asyncio.create_task(self.hub.heartbeats(self._stop), name="heartbeats"),
            asyncio.create_task(self.sampler.run(self._stop), name="sampler"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        try:
            for task in self._tasks:
                await task
        except Exception:
            log.exception("the live feed failed")
        finally:
            await self.writer.stop()
