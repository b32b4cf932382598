"""Preferences: read, replace (PUT), merge-patch (PATCH), and their audit history.

Every write is validated whole (a PATCH is merged first, then validated), refused with 409
when it would switch off a mandatory type, and logged with who made it. The stored version
goes up by one each time; evaluation reads it with the document, so the next notification
evaluated after a write returns uses the new settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from clarion.api.deps import Admin, Services
from clarion.api.errors import problems_from_pydantic
from clarion.api.format import iso
from clarion.api.openapi import schema_ref
from clarion.api.routes.users import user_id_of
from clarion.api.schemas import (
    ChangeOut,
    EffectiveTypeOut,
    ErrorOut,
    HistoryOut,
    PreferencesIn,
    PreferencesOut,
)
from clarion.api.services import ApiServices
from clarion.errors import ConflictError, InputError, StaleVersionError
from clarion.models import Priority, SenderKey, TypeSpec
from clarion.policy.preferences import Preferences
from clarion.stores.records import StoredPreferences
from clarion.types import JSONObject, UserId

router = APIRouter(prefix="/v1/users", tags=["preferences"])
_UPDATE_ATTEMPTS = 8

PATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": schema_ref("PreferencesIn")}},
    }
}


@router.get("/{user_id}/preferences", response_model=PreferencesOut)
async def get_preferences(user_id: str, _: Admin, svc: Services) -> PreferencesOut:
    uid = user_id_of(user_id)
    return await _out(svc, uid, await svc.runtime.stores.preferences.get(uid))


@router.put(
    "/{user_id}/preferences",
    response_model=PreferencesOut,
    responses={400: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    summary="Replace a user's preferences",
)
async def put_preferences(
    user_id: str, body: PreferencesIn, key: Admin, svc: Services
) -> PreferencesOut:
    return await _store(svc, user_id_of(user_id), body, key)


@router.patch(
    "/{user_id}/preferences",
    response_model=PreferencesOut,
    responses={400: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    openapi_extra=PATCH_BODY,
    summary="Change part of a user's preferences (JSON merge patch, RFC 7386)",
)
async def patch_preferences(
    user_id: str, request: Request, key: Admin, svc: Services
) -> PreferencesOut:
    uid = user_id_of(user_id)
    try:
        patch = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InputError.single("body", f"not valid JSON ({exc})") from None
    if not isinstance(patch, dict):
        raise InputError.single("body", "a merge patch is a JSON object")

    async def apply(doc: JSONObject) -> JSONObject:
        try:
            body = PreferencesIn.model_validate(merge_patch(doc, patch))
        except ValidationError as exc:
            raise InputError(problems_from_pydantic(exc.errors())) from None
        return await _checked(svc, body)

    stored = await update_preferences(svc, uid, apply, actor=f"{key.sender} (key {key.key_id})")
    return await _out(svc, uid, stored)


async def update_preferences(
    svc: ApiServices,
    user_id: UserId,
    change: Callable[[JSONObject], Awaitable[JSONObject]],
    actor: str,
) -> StoredPreferences:
    """Read, change, write back — again from the top when another writer got in between,
    so two concurrent partial changes both land instead of one erasing the other."""
    store = svc.runtime.stores.preferences
    for _ in range(_UPDATE_ATTEMPTS):
        current = await store.get(user_id)
        doc = await change(current.doc if current else {})
        try:
            return await store.put(
                user_id,
                doc,
                svc.runtime.clock.now(),
                actor,
                expected_version=current.version if current else 0,
            )
        except StaleVersionError:
            continue
    raise ConflictError("these preferences are being changed by others right now; try again")


@router.get("/{user_id}/preferences/history", response_model=HistoryOut)
async def preference_history(
    user_id: str,
    _: Admin,
    svc: Services,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HistoryOut:
    entries = await svc.runtime.stores.preferences.history(user_id_of(user_id), limit=limit)
    return HistoryOut(
        items=[
            ChangeOut(at=iso(e.at), actor=e.actor, before=e.before, after=e.after) for e in entries
        ]
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


async def _store(
    svc: ApiServices, user_id: UserId, body: PreferencesIn, key: SenderKey
) -> PreferencesOut:
    stored = await svc.runtime.stores.preferences.put(
        user_id,
        await _checked(svc, body),
        svc.runtime.clock.now(),
        actor=f"{key.sender} (key {key.key_id})",
    )
    return await _out(svc, user_id, stored)


async def _checked(svc: ApiServices, body: PreferencesIn) -> JSONObject:
    """The document to store; refused (409) if it would switch off a mandatory type."""
    doc: JSONObject = body.model_dump(mode="json", exclude_none=True)
    for name, setting in doc.get("types", {}).items():
        if setting.get("enabled") is False:
            spec = await svc.runtime.stores.types.get(name)
            if spec is not None and spec.mandatory:
                raise ConflictError(
                    f"type {name!r} is mandatory (security and account notices) and cannot"
                    " be disabled"
                )
    return doc


def category_of(spec: TypeSpec) -> str:
    """How a preference page groups types: what cannot be turned off, activity that
    concerns the person, and news and offers."""
    if spec.mandatory or spec.priority is Priority.P0:
        return "Account and security"
    return "Activity" if spec.priority is Priority.P1 else "News and offers"


async def _out(
    svc: ApiServices, user_id: UserId, stored: StoredPreferences | None
) -> PreferencesOut:
    doc = PreferencesIn.model_validate(stored.doc if stored else {})
    prefs = Preferences.from_doc(stored.doc if stored else {})
    effective = {
        spec.name: EffectiveTypeOut(
            enabled=spec.mandatory
            or prefs.type_enabled(spec.name, default=spec.enabled_by_default),
            channels=list(prefs.channels_for(spec.name, spec.channels) or spec.channels),
            mandatory=spec.mandatory,
            available=list(spec.channels),
            description=spec.description,
            category=category_of(spec),
        )
        for spec in await svc.runtime.stores.types.list()
    }
    return PreferencesOut(
        user_id=user_id,
        version=stored.version if stored else 0,
        enabled=doc.enabled,
        types=doc.types,
        channels=doc.channels,
        quiet_hours=doc.quiet_hours,
        frequency_caps=doc.frequency_caps,
        effective_types=effective,
    )
