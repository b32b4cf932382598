"""FastAPI dependencies: the shared services and the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clarion.api.services import ApiServices
from clarion.errors import ForbiddenError, UnauthenticatedError
from clarion.models import SenderKey
from clarion.web import session

_bearer = HTTPBearer(auto_error=False, description="An API key from `clarion keys create`.")


async def services(request: Request) -> ApiServices:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool, and that
    # round trip per request cost more than everything else a request does.
    found: ApiServices = request.app.state.services
    return found


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SenderKey:
    """The API key in ``Authorization``, else the dashboard's session (``web.session``)."""
    svc = await services(request)
    if credentials is None and session.COOKIE in request.cookies:
        found = session.read(
            request.cookies[session.COOKIE], svc.runtime.clock.now(), await svc.session_keys()
        )
        if found is None:
            raise UnauthenticatedError("the dashboard session ended: sign in again")
        if not session.allows(found, request.method, request.headers.get(session.CSRF_HEADER)):
            raise ForbiddenError("missing or wrong X-CSRF-Token for this session")
        return await svc.key_by_hash(found.key_hash)
    secret = credentials.credentials if credentials is not None else None
    return await svc.authenticate(secret)


async def admin(key: Annotated[SenderKey, Depends(caller)]) -> SenderKey:
    return ApiServices.require_admin(key)


Services = Annotated[ApiServices, Depends(services)]
Caller = Annotated[SenderKey, Depends(caller)]
Admin = Annotated[SenderKey, Depends(admin)]
