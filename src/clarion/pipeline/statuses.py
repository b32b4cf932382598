"""Status webhooks for senders: delivered, failed, bounced and unsubscribed, as they happen.

A sender registers ``POST /v1/webhooks {url, events}``. Delivery stages hand their final
outcomes to the :class:`StatusOutbox`, which makes one message per hook per claim (a batch
of records, not one call per recipient: a fan-out to a million people must not become a
million webhook calls). The :class:`StatusStage` posts each, signed with the hook's secrets
(Standard Webhooks); 5xx and timeouts are retried by the runner with backoff, a 410 disables
the hook.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson

from clarion.broker import Message, Outbound
from clarion.channels import signing
from clarion.channels.ssrf import check_target, http_session
from clarion.clock import Clock
from clarion.models import Outcome, Priority
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import DeliveryBatch, MessageError
from clarion.stores.base import StatusHookStore
from clarion.stores.records import BatchResult, StatusHook
from clarion.topics import STATUS, topic

EVENTS = frozenset({"delivered", "failed", "bounced", "unsubscribed"})
REFRESH_S = 5.0


class HookUnavailableError(RuntimeError):
    """A hook answered 5xx / timed out: the runner retries the message later."""


class StatusOutbox:
    def __init__(
        self,
        hooks: StatusHookStore,
        *,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hooks = hooks
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, list[StatusHook]]] = {}

    async def hooks(self, sender: str) -> list[StatusHook]:
        hit = self._cache.get(sender)
        if hit is not None and self._monotonic() - hit[0] < self._refresh_s:
            return hit[1]
        found = [h for h in await self._hooks.list(sender) if h.disabled_at is None]
        self._cache[sender] = (self._monotonic(), found)
        return found

    async def for_results(
        self, batches: Sequence[DeliveryBatch], results: Sequence[BatchResult], now: float
    ) -> list[Outbound]:
        outbound = []
        for batch, result in zip(batches, results, strict=True):
            hooks = await self.hooks(batch.header.sender)
            if not hooks:
                continue
            records = _records(batch, result, now)
            for hook in hooks:
                wanted = [r for r in records if r["type"] in hook.events]
                if wanted:
                    msg_id = f"st_{hook.id}_{batch.header.seq}_{batch.batch_key}"
                    outbound.append(status_message(hook.id, msg_id, wanted, batch.header.priority))
        return outbound


def status_message(
    hook_id: str, msg_id: str, records: list[dict[str, Any]], priority: Priority
) -> Outbound:
    body = orjson.dumps({"hook": hook_id, "id": msg_id, "records": records})
    return Outbound(topic(STATUS, priority), body)


def _records(batch: DeliveryBatch, result: BatchResult, now: float) -> list[dict[str, Any]]:
    base = {
        "event_id": batch.header.event_id,
        "type_": batch.header.type,
        "channel": batch.channel.value,
        "at": now,
    }
    records: list[dict[str, Any]] = []
    for outcome in result.outcomes:
        retrying = (outcome.reason or "").startswith("retrying")
        if outcome.outcome is Outcome.DELIVERED:
            kind = "delivered"
        elif outcome.outcome is Outcome.FAILED and not retrying:
            kind = "failed"
        else:
            continue
        records.append(base | {"type": kind, "user_id": outcome.user_id, "reason": outcome.reason})
    for invalidation in result.invalidated:
        if invalidation.ref == "email":
            records.append(
                base
                | {
                    "type": "bounced",
                    "user_id": invalidation.user_id,
                    "reason": invalidation.reason,
                }
            )
    for record in records:
        record["notification_type"] = record.pop("type_")
    return records


class StatusStage:
    name = STATUS
    claim_limit = 1
    """One status batch per claim: when an endpoint fails, only its own batch is retried,
    never a neighbour that was already delivered (a message already carries a whole
    delivery batch's records)."""

    def __init__(self, hooks: StatusHookStore, clock: Clock, *, allow_private: bool) -> None:
        self._hooks = hooks
        self._clock = clock
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def decode(self, message: Message) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = orjson.loads(message.body)
            if not {"hook", "id", "records"} <= doc.keys():
                raise MessageError("not a status message")
            return doc
        except orjson.JSONDecodeError as exc:
            raise MessageError(f"not a status message: {exc}") from exc

    async def handle(self, items: Sequence[dict[str, Any]]) -> StageResult:
        hooks = {h.id: h for h in await self._hooks.list(None)}
        failures = []
        for item in items:
            hook = hooks.get(item["hook"])
            if hook is None or hook.disabled_at is not None:
                continue  # deleted or disabled since: nothing to deliver to
            status = await self._post(hook, item)
            if status == 410:
                await self._hooks.disable(hook.id, self._clock.now())
            elif status is None or status >= 500 or status == 429:
                failures.append(f"{hook.url} answered {status or 'nothing'}")
        if failures:
            raise HookUnavailableError("; ".join(failures))
        return StageResult(items=len(items))

    async def _post(self, hook: StatusHook, item: dict[str, Any]) -> int | None:
        if self._session is None:
            self._session = http_session(allow_private=self._allow_private)
        try:
            check_target(hook.url, allow_private=self._allow_private)
        except ValueError:
            return 410  # no longer an acceptable target: retire the hook
        body = orjson.dumps({"type": "delivery.status", "id": item["id"], "data": item["records"]})
        headers = signing.headers(item["id"], int(time.time()), body, hook.secrets)
        try:
            async with self._session.post(hook.url, data=body, headers=headers) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def on_dead_letter(
        self, item: dict[str, Any] | None, message: Message, error: str
    ) -> None:
        """Undelivered status batches stay in the dead-letter queue for replay."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
