"""One-click unsubscribe (RFC 8058): GET shows what will be turned off and changes nothing
(mail scanners follow links); POST turns it off. No API key: the signed token is the
authority, and it only ever speaks for the one person and the one type or channel it names.
Requests are rate-limited per client address."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from clarion.api.deps import Services
from clarion.api.routes.preferences import update_preferences
from clarion.api.services import ApiServices
from clarion.errors import ClarionError
from clarion.models import Priority
from clarion.pipeline.statuses import status_message
from clarion.runtime import signing_keys
from clarion.types import JSONObject
from clarion.unsubscribe import UnsubscribeScope, read_token

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A plain page (no script; the page headers' Content-Security-Policy applies)."""
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        "<link rel='stylesheet' href='/ui/static/clarion.css'></head>"
        f"<body><main class='narrow'>{body}</main></body></html>",
        status,
    )


async def _scope(request: Request, svc: ApiServices, token: str) -> UnsubscribeScope | None:
    """What a genuine token names (None if it is not one), after the per-client limit."""
    svc.unsubscribe_limiter.check(request.client.host if request.client else "?", "unsubscribe")
    try:
        return read_token(token, await signing_keys(svc.runtime))
    except ClarionError:
        return None


_NOT_VALID = ("Link not valid", "<p>This unsubscribe link is not valid.</p>", 400)


@router.get("/{token}", response_class=HTMLResponse, summary="What this link turns off")
async def confirm(token: str, request: Request, svc: Services) -> HTMLResponse:
    scope = await _scope(request, svc, token)
    if scope is None:
        return _page(*_NOT_VALID)
    what = html.escape(scope.describe())
    return _page(
        "Unsubscribe",
        f"<h1>Unsubscribe</h1><p>Stop receiving {what}?</p>"
        f"<form method='post'><button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/{token}", response_class=HTMLResponse, summary="Turn it off (one click)")
async def apply(token: str, request: Request, svc: Services) -> HTMLResponse:
    scope = await _scope(request, svc, token)
    if scope is None:
        return _page(*_NOT_VALID)
    if scope.type is not None:
        spec = await svc.runtime.stores.types.get(scope.type)
        if spec is not None and spec.mandatory:
            return _page(
                "Cannot unsubscribe",
                "<p>These are account and security notices; they cannot be turned off.</p>",
                409,
            )
    await _turn_off(svc, scope)
    return _page(
        "Unsubscribed",
        f"<h1>Done</h1><p>You will no longer receive {html.escape(scope.describe())}.</p>",
    )


async def _turn_off(svc: ApiServices, scope: UnsubscribeScope) -> None:

    async def switch_off(doc: JSONObject) -> JSONObject:
        if scope.type is not None:
            doc.setdefault("types", {}).setdefault(scope.type, {})["enabled"] = False
        else:
            assert scope.channel is not None
            doc.setdefault("channels", {}).setdefault(scope.channel.value, {})["enabled"] = False
        return doc

    await update_preferences(svc, scope.user_id, switch_off, "unsubscribe link")
    now = svc.runtime.clock.now()
    if scope.sender is not None:
        for hook in await svc.runtime.stores.status_hooks.list(scope.sender):
            if "unsubscribed" in hook.events and hook.disabled_at is None:
                record = {
                    "type": "unsubscribed",
                    "user_id": scope.user_id,
                    "at": now,
                    "notification_type": scope.type,
                    "channel": scope.channel.value if scope.channel else None,
                }
                msg_id = f"st_{hook.id}_unsub_{scope.user_id}_{int(now)}"
                message = status_message(hook.id, msg_id, [record], Priority.P1)
                await svc.runtime.broker.publish([message])
