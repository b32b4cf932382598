"""From a well-formed request to an ``Event``: the rules that need the type and the sender.

Field shapes (types, lengths, unknown fields) are checked by the API schema first; this
module adds what needs context — the type registry, what this key may send, the payload
limit — and fills in what the type defaults (priority, channels, TTL, title and body).
Every problem is collected, so a caller sees all of them in one 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from clarion.config import Settings
from clarion.errors import FieldProblem, ForbiddenError, InputError
from clarion.ids import new_event_id
from clarion.ingest.idempotency import idempotency_key
from clarion.models import Event, FanOut, Priority, SenderKey, TypeSpec
from clarion.types import UserId

MAX_TTL_S = 30 * 86_400
MAX_AHEAD_S = 30 * 86_400
"""How far ahead ``send_at`` may be."""


@dataclass(slots=True)  # not frozen: made per event (see ``models.Event``)
class EventRequest:
    """The producer's event as the API schema parsed it (shapes already checked)."""

    type: str
    actor: str | None = None
    target: str | None = None
    recipients: tuple[str, ...] | None = None
    fan_out: FanOut = FanOut.DIRECT
    object: str | None = None
    payload: dict[str, Any] | None = None
    priority: Priority | None = None
    ttl_seconds: int | None = None
    idempotency_key: str | None = None
    campaign: str | None = None
    template: str | None = None
    template_version: int | None = None
    """Resolved before validation: the version this event will render with."""
    collapse_key: str | None = None
    traceparent: str | None = None
    """The request's W3C trace context (a valid one; not part of what makes a repeat)."""
    send_at: float | None = None
    """Nothing happens before this time (up to ``MAX_AHEAD_S``); in the past: now."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int
    max_direct_recipients: int
    idempotency_window_s: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_payload_bytes,
            settings.max_direct_recipients,
            settings.idempotency_window_s,
        )


def build_event(
    request: EventRequest,
    spec: TypeSpec | None,
    key: SenderKey,
    *,
    limits: Limits,
    now: float,
    earlier: Sequence[FieldProblem] = (),
) -> Event:
    """Validate ``request`` against its type and sender; raise with every problem found.

    ``earlier``: problems found before this (the schema's, a missing template's), to be
    answered together with these. A field they name was left out of ``request``, so it is
    not judged again here ("unknown type ''" after "type: required" would only confuse)."""
    if spec is not None and not key.may_send(spec.name):
        raise ForbiddenError(f"sender {key.sender!r} may not send events of type {spec.name!r}")
    judged = {top_field(p.field) for p in earlier}
    problems = [*earlier]
    problems += [p for p in _problems(request, spec, limits) if top_field(p.field) not in judged]
    if request.send_at is not None and request.send_at > now + MAX_AHEAD_S:
        problems.append(FieldProblem("send_at", "at most 30 days ahead"))
    if problems:
        raise InputError(problems)
    assert spec is not None  # an unknown type is one of the problems above
    recipients = tuple(dict.fromkeys(UserId(r) for r in request.recipients or ()))
    payload = request.payload or {}
    ttl = request.ttl_seconds or spec.ttl_seconds
    send_at = request.send_at if request.send_at is not None and request.send_at > now else None
    title, body = _content(request, spec, payload)
    return Event(
        event_id=new_event_id(),
        sender=key.sender,
        type=spec.name,
        priority=request.priority or spec.priority,
        fan_out=request.fan_out,
        channels=spec.channels,
        created_at=now,
        expires_at=(send_at or now) + ttl,  # its time to live starts when it is sent
        idempotency_key=idempotency_key(
            key.sender, explicit=request.idempotency_key, about=_as_sent(request)
        ),
        idempotency_expires_at=now + limits.idempotency_window_s,
        title=title,
        body=body,
        mandatory=spec.mandatory,
        default_enabled=spec.enabled_by_default,
        routing=spec.routing,
        retry=spec.retry,
        aggregate_s=spec.aggregate_s,
        overflow=spec.overflow,
        campaign=request.campaign,
        template=request.template,
        template_version=request.template_version,
        collapse_key=request.collapse_key,
        actor=request.actor,
        target=UserId(request.target) if request.target is not None else None,
        recipients=recipients,
        object=request.object,
        payload=payload,
        traceparent=request.traceparent,
        send_at=send_at,
    )


def _as_sent(request: EventRequest) -> dict[str, Any]:
    """What a computed idempotency key covers (``ingest.idempotency``)."""
    return {
        "type": request.type,
        "fan_out": request.fan_out.value,
        "actor": request.actor,
        "target": request.target,
        "recipients": None if request.recipients is None else sorted(request.recipients),
        "object": request.object,
        "payload": request.payload,
        "collapse_key": request.collapse_key,
        "campaign": request.campaign,
        "priority": None if request.priority is None else request.priority.value,
        "ttl_seconds": request.ttl_seconds,
        "template": request.template,
        "send_at": request.send_at,
    }


def top_field(path: str) -> str:
    """``recipients[3]`` → ``recipients``; ``payload.title`` → ``payload``."""
    return path.split(".", 1)[0].split("[", 1)[0]


def _problems(request: EventRequest, spec: TypeSpec | None, limits: Limits) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if spec is None:
        problems.append(
            FieldProblem(
                "type",
                f"unknown type {request.type!r}; register it first with"
                f" PUT /v1/types/{request.type}",
            )
        )
    elif request.priority is not None and request.priority.value < spec.priority.value:
        problems.append(
            FieldProblem(
                "priority",
                f"{request.priority} is more urgent than type {spec.name!r} ({spec.priority});"
                " an event may only lower its priority",
            )
        )
    audience = _audience_problem(request, limits)
    if audience is not None:
        problems.append(FieldProblem(*audience))
    if request.payload is not None:
        size = len(orjson.dumps(request.payload))
        if size > limits.max_payload_bytes:
            problems.append(
                FieldProblem(
                    "payload",
                    f"{size} bytes is over the {limits.max_payload_bytes}-byte limit",
                )
            )
    if request.ttl_seconds is not None and not 0 < request.ttl_seconds <= MAX_TTL_S:
        problems.append(FieldProblem("ttl_seconds", f"must be between 1 and {MAX_TTL_S}"))
    return problems


def _audience_problem(request: EventRequest, limits: Limits) -> tuple[str, str] | None:
    """Who the event is for must be said exactly one way; returns (field, reason) if not."""
    fan_out = request.fan_out
    if fan_out is FanOut.SEGMENT or fan_out is FanOut.BROADCAST:
        return "fan_out", f"{fan_out.value!r} is reserved for campaigns (not yet open)"
    if fan_out is FanOut.FOLLOWERS:
        if not request.actor:
            return "actor", "required when fan_out is 'followers' (whose followers?)"
        if request.target is not None or request.recipients is not None:
            return "target", "must be absent when fan_out is 'followers'"
        return None
    if request.target is None and request.recipients is None:
        return "target", "give target or recipients for a direct event"
    if request.target is not None and request.recipients is not None:
        return "recipients", "give target or recipients, not both"
    if request.recipients is not None:
        if not request.recipients:
            return "recipients", "must not be empty"
        if len(request.recipients) > limits.max_direct_recipients:
            return (
                "recipients",
                f"{len(request.recipients)} recipients is over the limit of"
                f" {limits.max_direct_recipients}; use a segment for larger audiences",
            )
    return None


def _content(request: EventRequest, spec: TypeSpec, payload: dict[str, Any]) -> tuple[str, str]:
    """Until templates exist: the payload's title and body, or a readable default per type."""
    title = payload.get("title")
    body = payload.get("body")
    if not isinstance(title, str) or not title:
        title = spec.description or spec.name.replace("_", " ").replace(".", " ").capitalize()
    if not isinstance(body, str) or not body:
        parts = [f"From {request.actor}" if request.actor else "", request.object or ""]
        body = " · ".join(p for p in parts if p) or title
    return title, body
