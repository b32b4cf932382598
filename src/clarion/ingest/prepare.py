"""An event as a producer sent it (``EventIn``) → a validated ``Event``: its type and
template looked up, then every rule of ``ingest.validation``. The API does this for every
request; the scheduler for every recurring send it fires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from clarion.api.schemas import EventIn
from clarion.errors import FieldProblem
from clarion.ingest.validation import EventRequest, Limits, build_event, top_field
from clarion.models import Event, SenderKey, TypeSpec


@dataclass(frozen=True, slots=True)
class Lookups:
    type_spec: Callable[[str], Awaitable[TypeSpec | None]]
    template_version: Callable[[str, int | None], Awaitable[int | None]]
    """The version an event renders with: the one asked for, else the newest; None if
    there is no such template."""


async def prepare_event(
    lookups: Lookups,
    key: SenderKey,
    body: EventIn,
    limits: Limits,
    now: float,
    shape: Sequence[FieldProblem] = (),
    *,
    trace: str | None = None,
    idempotency_key: str | None = None,
) -> Event:
    """``shape``: problems found before (the fields it names are left out of ``body``),
    answered together with these; ``idempotency_key`` overrides the body's."""
    problems = list(shape)
    judged = {top_field(p.field) for p in problems}
    spec = None if "type" in judged else await lookups.type_spec(body.type)
    template = body.template or (spec.template if spec else None)
    version = None
    if template is not None:
        version = await lookups.template_version(template, body.template_version)
        if version is None:
            wanted = f" version {body.template_version}" if body.template_version else ""
            problems.append(FieldProblem("template", f"no template {template!r}{wanted}"))
    request = EventRequest(
        type=body.type,
        actor=body.actor,
        target=body.target,
        recipients=None if body.recipients is None else tuple(body.recipients),
        fan_out=body.fan_out,
        object=body.object,
        payload=body.payload,
        priority=body.priority,
        ttl_seconds=body.ttl_seconds,
        idempotency_key=idempotency_key or body.idempotency_key,
        campaign=body.campaign,
        template=template,
        template_version=version,
        collapse_key=body.collapse_key,
        traceparent=trace,
        send_at=None if body.send_at is None else body.send_at.timestamp(),
    )
    return build_event(request, spec, key, limits=limits, now=now, earlier=problems)
