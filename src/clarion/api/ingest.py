"""The two ingest endpoints (and ``POST /v1/state``), served ahead of FastAPI.

Producers call ``POST /v1/notifications`` thousands of times a second. Through FastAPI's
routing and dependency injection each call cost about 300 µs of CPU before any of our code
ran; answered by this plain ASGI handler it costs about 120 µs in all (measured in-process on
this project's reference machine). Everything else a request goes through is shared with
the rest of the API: the same key check, the same validation (``ingest.validation``), the
same group-commit writer and the same error bodies (``api.errors``). ``api.openapi``
documents both endpoints alongside the FastAPI ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from clarion import metrics
from clarion.api.errors import clarion_response, error_body, problems_from_pydantic, status_of
from clarion.api.routes.state import STATE_BATCH_PATH, put_state_batch
from clarion.api.schemas import BatchIn, EventIn
from clarion.api.services import ApiServices
from clarion.errors import ClarionError, FieldProblem, InputError, RateLimitedError
from clarion.ingest.prepare import Lookups, prepare_event
from clarion.ingest.validation import top_field
from clarion.models import Event, Priority, SenderKey
from clarion.stores.records import Accepted, IngestRequest, RateLimited
from clarion.tracing import valid_traceparent

log = logging.getLogger(__name__)

SEND_PATH = "/v1/notifications"
BATCH_PATH = "/v1/notifications/batch"
MAX_BODY_BYTES = 16 * 1024 * 1024
URGENT_LINGER_S = 0.015
"""How long accepting a P0 event keeps bulk work waiting: a P0 worker claims it within
milliseconds and holds the lane itself from then on (``resilience.urgency``). Longer only
starves bulk work: at 50 ms, with bulk commits giving way too, one OTP every 50 ms held the
lane nearly all the time and a 1M-recipient campaign took 8.3 s instead of 1.7 s."""

RAW_SEND = "clarion.raw_send"
"""Where the server's own ``send`` waits in every request's scope, for a response that
writes many small bodies past the middleware (``routes.stream.EventStream``)."""

_EVENT = TypeAdapter(EventIn)
_BATCH = TypeAdapter(BatchIn)
_VALID_EVENTS = TypeAdapter(list[EventIn])

Answer = tuple[int, dict[str, Any], dict[str, str]]
Handler = Callable[[ApiServices, SenderKey, bytes, str | None], Awaitable[Answer]]


class IngestFront:
    """ASGI app: answers the ingest POSTs itself and hands every other request to ``api``."""

    def __init__(self, api: Any) -> None:
        self.api = api  # the FastAPI app; its lifespan builds the shared ApiServices
        self._routes: dict[str, Handler] = {
            SEND_PATH: send_one,
            BATCH_PATH: send_batch,
            STATE_BATCH_PATH: put_state_batch,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self._routes.get(scope["path"])
            if handler is not None:
                await self._serve(handler, scope, receive, send)
                return
        scope[RAW_SEND] = send
        inner: ASGIApp = self.api
        await inner(scope, receive, send)

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            services: ApiServices = self.api.state.services
            key = await services.authenticate(_bearer(scope))
            body = await _read_body(receive)
            trace = valid_traceparent(_header(scope, b"traceparent"))
            status, payload, headers = await handler(services, key, body, trace)
        except ClarionError as exc:
            if scope["path"] != STATE_BATCH_PATH:  # refused events, counted for ingest
                metrics.refused([status_of(exc)[1]])
            response = clarion_response(exc)
            status, raw, headers = (
                response.status_code,
                bytes(response.body),
                {k: v for k, v in response.headers.items() if k.lower() != "content-length"},
            )
            await _respond(send, status, raw, headers)
            return
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            await _respond(send, 500, orjson.dumps(error_body("internal", "internal error")), {})
            return
        await _respond(send, status, orjson.dumps(payload), headers)


def _bearer(scope: Scope) -> str | None:
    text = _header(scope, b"authorization")
    if text is None:
        return None
    scheme, _, secret = text.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            text: str = value.decode("latin-1")
            return text
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InputError.single("body", f"over {MAX_BODY_BYTES // 1_048_576} MiB")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    raw_headers += [
        (k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() != "content-type"
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _parse(adapter: TypeAdapter[Any], body: bytes) -> Any:
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise InputError(problems_from_pydantic(exc.errors())) from None


# ── the two endpoints ────────────────────────────────────────────────────────────────


def _event(body: bytes) -> tuple[EventIn, list[FieldProblem]]:
    """The event, or as much of it as has the right shape plus what is wrong with the rest
    (so the meaning of the good part is checked too, and one 400 lists everything)."""
    try:
        return _EVENT.validate_json(body), []
    except ValidationError as exc:
        shape = problems_from_pydantic(exc.errors())
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InputError(shape) from None
        return _salvaged(raw, shape), shape


def _salvaged(raw: Any, shape: list[FieldProblem]) -> EventIn:
    """The fields of ``raw`` the schema had no complaint about (``type`` a placeholder if
    it was one of the bad ones); raises the shape problems if nothing can be salvaged."""
    bad = {top_field(p.field) for p in shape}
    if not isinstance(raw, dict) or "body" in bad:
        raise InputError(shape)
    kept = {k: v for k, v in raw.items() if k in EventIn.model_fields and k not in bad}
    kept.setdefault("type", "unknown")
    try:
        return EventIn.model_validate(kept)
    except ValidationError:
        raise InputError(shape) from None


async def send_one(svc: ApiServices, key: SenderKey, body: bytes, trace: str | None) -> Answer:
    await svc.check_sender(key)
    event = await _prepare(svc, key, *_event(body), trace=trace)
    (accepted,) = await _submit(svc, key, [event])
    answer = {"event_id": accepted.event_id, "duplicate": accepted.duplicate}
    return (200 if accepted.duplicate else 202), answer, {}


async def send_batch(svc: ApiServices, key: SenderKey, body: bytes, trace: str | None) -> Answer:
    """``trace``: the request's trace context, kept with every event of the batch."""
    await svc.check_sender(key)
    batch: BatchIn = _parse(_BATCH, body)
    limit = svc.runtime.settings.max_batch_events
    if len(batch.events) > limit:
        raise InputError.single(
            "events", f"{len(batch.events)} events is over the limit of {limit}"
        )
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, Event]] = []
    for index, parsed in enumerate(_each_event(batch.events)):
        try:
            if isinstance(parsed, ValidationError):
                shape = problems_from_pydantic(parsed.errors())
                salvaged = _salvaged(batch.events[index], shape)
                event = await _prepare(svc, key, salvaged, shape, trace=trace)
            else:
                event = await _prepare(svc, key, parsed, trace=trace)
        except ClarionError as exc:
            metrics.refused([status_of(exc)[1]])
            results.append(_refused(exc))
        else:
            pending.append((index, event))
            results.append({})
    accepted = await _submit(svc, key, [e for _, e in pending]) if pending else []
    for (index, _), outcome in zip(pending, accepted, strict=True):
        results[index] = {
            "status": 200 if outcome.duplicate else 202,
            "event_id": outcome.event_id,
            "duplicate": outcome.duplicate,
        }
    duplicates = sum(1 for a in accepted if a.duplicate)
    answer = {
        "accepted": len(accepted) - duplicates,
        "duplicates": duplicates,
        "rejected": len(results) - len(accepted),
        "results": results,
    }
    return 200, answer, {}


def _each_event(raw: list[Any]) -> list[EventIn | ValidationError]:
    """Every item parsed, or the reason it could not be: one pass over the whole list when
    all are valid (the common case), item by item only when something is wrong."""
    try:
        return list(_VALID_EVENTS.validate_python(raw))
    except ValidationError:
        pass
    parsed: list[EventIn | ValidationError] = []
    for item in raw:
        try:
            parsed.append(_EVENT.validate_python(item))
        except ValidationError as exc:
            parsed.append(exc)
    return parsed


def _refused(exc: ClarionError) -> dict[str, Any]:
    status, code = status_of(exc)
    problems = exc.problems if isinstance(exc, InputError) else ()
    return {
        "status": status,
        "error": code if problems else f"{code}: {exc}",
        "errors": [{"field": p.field, "reason": p.reason} for p in problems],
    }


async def _prepare(
    svc: ApiServices,
    key: SenderKey,
    body: EventIn,
    shape: Sequence[FieldProblem] = (),
    *,
    trace: str | None = None,
) -> Event:
    """``shape``: what the schema found wrong (the fields it names are left out of
    ``body``); answered in one 400 together with everything wrong with the rest."""
    lookups = Lookups(svc.types.get, svc.template_version)
    now = svc.runtime.clock.now()
    event = await prepare_event(lookups, key, body, svc.limits, now, shape, trace=trace)
    await svc.check_load(event.priority)
    return event


async def _submit(svc: ApiServices, key: SenderKey, events: list[Event]) -> list[Accepted]:
    burst_s = svc.runtime.settings.rate_burst_s
    if any(e.priority is Priority.P0 for e in events):
        # Bulk workers give way from now until a P0 worker has had time to claim it.
        svc.lane.hold_for(URGENT_LINGER_S)
    outcome = await svc.writer.submit(IngestRequest(key.sender, key.rate_per_s, burst_s, events))
    if isinstance(outcome, RateLimited):
        if math.isinf(outcome.retry_after_s):
            burst = max(1, int((key.rate_per_s or 0) * burst_s))
            raise InputError.single(
                "events", f"{len(events)} new events exceed this sender's burst of {burst}"
            )
        raise RateLimitedError(
            f"sender {key.sender!r} is over its rate of {key.rate_per_s:g} events/s",
            outcome.retry_after_s,
        )
    return outcome
