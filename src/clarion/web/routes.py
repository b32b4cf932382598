"""The pages (``/ui/…``) and what only they need: the dashboard's sign-in and overview,
the demo user's page. Everything else the pages do goes through the public API
(``/v1/me/…`` with a user token, the admin endpoints with the dashboard's session)."""

from __future__ import annotations

import html
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles

from clarion.api.deps import Admin, Services
from clarion.api.schemas import ErrorOut
from clarion.errors import ForbiddenError, NotFoundError, UnauthenticatedError
from clarion.keys import hash_key
from clarion.live import tokens
from clarion.models import Priority
from clarion.topics import STAGES, topic
from clarion.types import UserId
from clarion.web import session

router = APIRouter(prefix="/ui", tags=["pages"], include_in_schema=False)
STATIC = Path(str(resources.files("clarion.web") / "static"))
_PAGES = resources.files("clarion.web") / "pages"


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


def _page(name: str, **fields: str) -> HTMLResponse:
    text = (_PAGES / name).read_text()
    for field, value in fields.items():
        text = text.replace("{{" + field + "}}", html.escape(value, quote=True))
    return HTMLResponse(text, headers={"cache-control": "no-store"})


@router.get("/preferences", response_class=HTMLResponse)
async def preferences_page() -> HTMLResponse:
    """The preference centre; the product links here with the user token in the URL's
    fragment (``#token=…``), which never reaches a server or its logs."""
    return _page("preferences.html")


@router.get("/demo", response_class=HTMLResponse)
async def demo_page(svc: Services) -> HTMLResponse:
    """The inbox widget for the demo user (``clarion demo --ui``); absent otherwise."""
    user = svc.runtime.settings.demo_user
    if user is None:
        raise NotFoundError("no demo user: run `clarion demo --ui`")
    token = tokens.mint(UserId(user), await svc.token_keys(), svc.runtime.clock.now(), ttl_s=3600)
    return _page("demo.html", token=token, user=user)


@router.get("/ops", response_class=HTMLResponse)
async def ops_page() -> HTMLResponse:
    return _page("ops.html")


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=200, description="An admin API key.")


class SessionOut(BaseModel):
    signed_in: bool = True
    sender: str = ""
    csrf: str = Field("", description="Send back as X-CSRF-Token with every change.")


@router.post(
    "/ops/session",
    response_model=SessionOut,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
async def sign_in(body: SignIn, request: Request, svc: Services) -> JSONResponse:
    key = await svc.authenticate(body.key)
    if not key.admin:
        raise ForbiddenError("the dashboard needs an admin key (clarion keys create --admin)")
    cookie, made = session.issue(
        hash_key(body.key), svc.runtime.clock.now(), await svc.session_keys()
    )
    answer = JSONResponse(SessionOut(sender=key.sender, csrf=made.csrf).model_dump())
    answer.set_cookie(
        session.COOKIE,
        cookie,
        max_age=session.LIFETIME_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.get("/ops/session", response_model=SessionOut)
async def current_session(request: Request, svc: Services) -> SessionOut:
    """Whether this browser is signed in (and the session's CSRF secret if so)."""
    found = session.read(
        request.cookies.get(session.COOKIE), svc.runtime.clock.now(), await svc.session_keys()
    )
    if found is None:
        return SessionOut(signed_in=False)
    try:
        key = await svc.key_by_hash(found.key_hash)
    except UnauthenticatedError:
        return SessionOut(signed_in=False)  # the key was revoked since
    return SessionOut(sender=key.sender, csrf=found.csrf)


@router.delete("/ops/session", status_code=204)
async def sign_out(_: Admin) -> Response:
    answer = Response(status_code=204)
    answer.delete_cookie(session.COOKIE, path="/")
    return answer


@router.get("/ops/overview")
async def overview(_: Admin, svc: Services) -> dict[str, Any]:
    """Queues per stage and priority with their oldest age, breakers, the dead-letter
    count, and the last fifteen minutes' rates and P0 latency."""
    runtime = svc.runtime
    now = runtime.clock.now()
    depths = await runtime.broker.depths()
    oldest = await runtime.broker.oldest(now)
    queues = []
    for stage in STAGES:
        for p in Priority:
            name = topic(stage, p)
            age = round(now - oldest[name], 1) if name in oldest else None
            queues.append(
                {"stage": stage, "priority": p.value, "depth": depths.get(name, 0), "oldest_s": age}
            )
    health = await runtime.stores.provider_health.all()
    return {
        "at": time.time(),
        "queues": queues,
        "breakers": {name: h.state.value for name, h in sorted(health.items())},
        "dead_letters": await runtime.broker.dead_letter_count(),
        "series": svc.sampler.series(),
    }
