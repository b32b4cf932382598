"""Status webhooks: a sender hears about delivered, failed, bounced and unsubscribed."""

from __future__ import annotations

import secrets as random

from fastapi import APIRouter

from clarion.api.channel_schemas import StatusHookIn, StatusHookList, StatusHookOut
from clarion.api.deps import Caller, Services
from clarion.api.format import iso
from clarion.api.schemas import ErrorOut
from clarion.channels import signing
from clarion.channels.ssrf import PrivateTargetError, check_target
from clarion.errors import InputError, NotFoundError
from clarion.stores.records import StatusHook

router = APIRouter(prefix="/v1/webhooks", tags=["status webhooks"])


def _out(hook: StatusHook, secret: str | None = None) -> StatusHookOut:
    return StatusHookOut(
        id=hook.id,
        url=hook.url,
        events=sorted(hook.events),
        created_at=iso(hook.created_at),
        disabled=hook.disabled_at is not None,
        secret=secret,
    )


@router.post(
    "",
    status_code=201,
    response_model=StatusHookOut,
    responses={400: {"model": ErrorOut}},
    summary="Hear about your notifications' outcomes (the secret is shown once)",
)
async def create(body: StatusHookIn, key: Caller, svc: Services) -> StatusHookOut:
    try:
        check_target(body.url, allow_private=svc.runtime.settings.allow_private_targets)
    except PrivateTargetError as exc:
        raise InputError.single("url", f"refused: {exc}") from None
    secret = body.secret or signing.new_secret()
    if not signing.is_secret(secret):
        raise InputError.single("secret", "must be whsec_ followed by base64 (≥ 16 bytes)")
    hook = StatusHook(
        id=f"wh_{random.token_hex(6)}",
        sender=key.sender,
        url=body.url,
        events=frozenset(body.events),
        secrets=(secret,),
        created_at=svc.runtime.clock.now(),
    )
    await svc.runtime.stores.status_hooks.create(hook)
    return _out(hook, None if body.secret else secret)


@router.get("", response_model=StatusHookList, summary="Your status webhooks")
async def list_hooks(key: Caller, svc: Services) -> StatusHookList:
    hooks = await svc.runtime.stores.status_hooks.list(None if key.admin else key.sender)
    return StatusHookList(items=[_out(h) for h in hooks])


@router.delete("/{hook_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete(hook_id: str, key: Caller, svc: Services) -> None:
    sender = None if key.admin else key.sender
    if not await svc.runtime.stores.status_hooks.delete(hook_id, sender):
        raise NotFoundError(f"no webhook {hook_id!r}")
