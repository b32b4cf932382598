"""Providers (admin): credentials, endpoints and roles; secrets are never shown again.

Also the provider callbacks that come back without an API key, authenticated by the
provider's own signature: SMS delivery receipts.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from pydantic import ValidationError

from clarion import channels
from clarion.api.channel_schemas import ProviderHealthOut, ProviderList, ProviderOut
from clarion.api.deps import Admin, Services
from clarion.api.errors import problems_from_pydantic
from clarion.api.format import iso
from clarion.api.schemas import ErrorOut
from clarion.api.services import ApiServices
from clarion.channels import sms_twilio
from clarion.channels.config import keep_secrets, shown, stored
from clarion.errors import ForbiddenError, InputError, NotFoundError
from clarion.resilience.breaker import BreakerState, Health
from clarion.validation import check_name

router = APIRouter(prefix="/v1/providers", tags=["providers"])
_MAX_CALLBACK_BYTES = 64 * 1024
_RECEIPT_WAITS, _RECEIPT_WAIT_S = 20, 0.1


def _out(name: str, doc: dict[str, Any], health: Health | None, svc: ApiServices) -> ProviderOut:
    config = channels.parse(name, doc)
    kind = config.kind or name
    return ProviderOut(
        name=name,
        kind=kind,
        channel=channels.channel_of(kind),
        config=shown(config),
        health=health_out(
            health or Health(), svc.runtime.clock.now(), svc.runtime.settings.breaker_window_s
        ),
    )


def health_out(health: Health, now: float, window_s: float) -> ProviderHealthOut:
    return ProviderHealthOut(
        state=health.state.value,
        since=iso(health.changed_at) if health.changed_at else None,
        window_sent=health.sent,
        window_failed=health.failed,
        error_rate=round(health.error_rate(now, window_s), 4),
        next_probe_at=iso(health.probe_at) if health.state is BreakerState.OPEN else None,
        throttled_until=iso(health.throttled_until) if health.throttled_until else None,
    )


@router.put(
    "/{name}",
    response_model=ProviderOut,
    responses={400: {"model": ErrorOut}},
    summary="Configure a provider (admin); omit a secret to keep the stored one",
)
async def put_provider(name: str, request: Request, _: Admin, svc: Services) -> ProviderOut:
    check_name("provider", name)
    try:
        doc = await request.json()
    except ValueError:
        raise InputError.single("body", "not valid JSON") from None
    if not isinstance(doc, dict):
        raise InputError.single("body", "a provider configuration is a JSON object")
    current = await svc.runtime.stores.providers.get(name)
    doc = keep_secrets(doc, current, channels.secret_fields(name, doc))
    try:
        config = channels.parse(name, doc)
    except ValidationError as exc:
        raise InputError(problems_from_pydantic(exc.errors())) from None
    await svc.runtime.stores.providers.put(name, stored(config), svc.runtime.clock.now())
    health = await svc.runtime.stores.provider_health.all()
    return _out(name, stored(config), health.get(name), svc)


@router.get(
    "",
    response_model=ProviderList,
    summary="Configured providers (secrets masked) and their circuit breakers",
)
async def list_providers(_: Admin, svc: Services) -> ProviderList:
    docs = await svc.runtime.stores.providers.all()
    health = await svc.runtime.stores.provider_health.all()
    return ProviderList(
        items=[_out(name, doc, health.get(name), svc) for name, doc in docs.items()]
    )


@router.get("/{name}", response_model=ProviderOut, responses={404: {"model": ErrorOut}})
async def get_provider(name: str, _: Admin, svc: Services) -> ProviderOut:
    doc = await svc.runtime.stores.providers.get(name)
    if doc is None:
        raise NotFoundError(f"no provider {name!r}")
    return _out(name, doc, (await svc.runtime.stores.provider_health.all()).get(name), svc)


@router.delete("/{name}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete_provider(name: str, _: Admin, svc: Services) -> None:
    if not await svc.runtime.stores.providers.delete(name):
        raise NotFoundError(f"no provider {name!r}")


@router.post(
    "/{name}/status",
    status_code=204,
    responses={403: {"model": ErrorOut}},
    summary="SMS delivery receipts (signed by the provider, no API key)",
)
async def sms_status(name: str, request: Request, svc: Services) -> None:
    doc = await svc.runtime.stores.providers.get(name)
    if doc is None or channels.kind_of(name, doc) != "sms_twilio":
        raise NotFoundError(f"no SMS provider {name!r}")
    config = channels.parse(name, doc)
    assert isinstance(config, sms_twilio.Config)
    body = await request.body()
    if len(body) > _MAX_CALLBACK_BYTES:
        raise InputError.single("body", f"a status callback is under {_MAX_CALLBACK_BYTES} bytes")
    # Twilio posts application/x-www-form-urlencoded; blank values are signed too.
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    url = f"{svc.runtime.settings.public_url.rstrip('/')}{request.url.path}"
    signature = request.headers.get("x-twilio-signature", "")
    if not sms_twilio.callback_is_genuine(
        config.auth_token.get_secret_value(), url, form, signature
    ):
        raise ForbiddenError("the status callback signature does not match")
    await _record_receipt(svc, form)


async def _record_receipt(svc: ApiServices, form: dict[str, str]) -> None:
    sid = form.get("MessageSid")
    status = form.get("MessageStatus", "")
    if not sid or status not in ("delivered", "undelivered", "failed", "sent"):
        return
    outcome = "delivered" if status in ("delivered", "sent") else "failed"
    reason = f"carrier: {status}" + (f" ({form['ErrorCode']})" if form.get("ErrorCode") else "")
    # A receipt can overtake the worker's commit of the send it is about: wait for it a
    # little (the worker records within moments), rather than drop the carrier's word.
    for _ in range(_RECEIPT_WAITS):
        now = svc.runtime.clock.now()
        if await svc.runtime.stores.deliveries.receipt(sid, outcome, reason, now):
            return
        await asyncio.sleep(_RECEIPT_WAIT_S)
