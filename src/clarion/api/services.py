"""What the API's handlers share for the life of the app: the runtime, caches, the writer."""

from __future__ import annotations

from typing import Any

from clarion.api.limiter import ClientLimiter
from clarion.cache import TTLCache
from clarion.errors import ForbiddenError, RateLimitedError, UnauthenticatedError
from clarion.ingest.validation import Limits
from clarion.ingest.writer import IngestWriter
from clarion.keys import hash_key
from clarion.models import Priority, SenderKey, TypeSpec
from clarion.resilience.urgency import LaneGate
from clarion.runtime import Runtime, load_monitor, urgent_lane

KEY_CACHE_S = 5.0
"""A revoked key stops working everywhere within this long."""
BLOCKED_CACHE_S = 1.0
"""A blocked sender is refused everywhere within this long."""
SHED_RETRY_S = 5.0
UNSUBSCRIBES_PER_S = 2.0
"""Per client address, with a burst of five seconds' worth (a person clicks a few links)."""
TYPE_CACHE_S = 1.0
"""A changed type applies to new events within this long."""


class ApiServices:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.limits = Limits(
            max_payload_bytes=settings.max_payload_bytes,
            max_direct_recipients=settings.max_direct_recipients,
            idempotency_window_s=settings.idempotency_window_s,
        )
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
        key = await self._keys.get(hash_key(secret))
        if key is None or key.revoked_at is not None:
            raise UnauthenticatedError("unknown or revoked API key")
        return key

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

    def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
