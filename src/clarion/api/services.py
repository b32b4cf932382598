"""What the API's handlers share for the life of the app: the runtime, caches, the writer."""

from __future__ import annotations

from clarion.cache import TTLCache
from clarion.errors import ForbiddenError, UnauthenticatedError
from clarion.ingest.validation import Limits
from clarion.ingest.writer import IngestWriter
from clarion.keys import hash_key
from clarion.models import SenderKey, TypeSpec
from clarion.runtime import Runtime

KEY_CACHE_S = 5.0
"""A revoked key stops working everywhere within this long."""
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
        self.writer = IngestWriter(
            runtime.stores.events, runtime.clock, batch_size=settings.batch_size
        )
        self._keys: TTLCache[str, SenderKey | None] = TTLCache(
            runtime.stores.keys.find, runtime.clock, ttl_s=KEY_CACHE_S
        )
        self.types: TTLCache[str, TypeSpec | None] = TTLCache(
            self._load_type, runtime.clock, ttl_s=TYPE_CACHE_S
        )

    async def _load_type(self, name: str) -> TypeSpec | None:
        spec = await self.runtime.stores.types.get(name)
        fallback = self.runtime.settings.default_type
        if spec is None and fallback is not None and fallback != name:
            spec = await self.runtime.stores.types.get(fallback)
        return spec

    async def authenticate(self, secret: str | None) -> SenderKey:
        if not secret:
            raise UnauthenticatedError("send your API key as 'Authorization: Bearer <key>'")
        key = await self._keys.get(hash_key(secret))
        if key is None or key.revoked_at is not None:
            raise UnauthenticatedError("unknown or revoked API key")
        return key

    @staticmethod
    def require_admin(key: SenderKey) -> SenderKey:
        if not key.admin:
            raise ForbiddenError("this needs an admin key (clarion keys create --admin)")
        return key

    def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
