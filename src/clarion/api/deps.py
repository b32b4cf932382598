"""FastAPI dependencies: the shared services and the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clarion.api.services import ApiServices
from clarion.models import SenderKey

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
    secret = credentials.credentials if credentials is not None else None
    return await (await services(request)).authenticate(secret)


async def admin(key: Annotated[SenderKey, Depends(caller)]) -> SenderKey:
    return ApiServices.require_admin(key)


Services = Annotated[ApiServices, Depends(services)]
Caller = Annotated[SenderKey, Depends(caller)]
Admin = Annotated[SenderKey, Depends(admin)]
