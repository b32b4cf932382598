"""Operators: the notification type registry."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.api.deps import Admin, Caller, Services
from clarion.api.schemas import AggregateIn, ErrorOut, RetryIn, TypeIn, TypeList, TypeOut
from clarion.api.services import ApiServices
from clarion.channels.providers import read_file, unserved
from clarion.errors import InputError, NotFoundError
from clarion.models import Overflow, Priority, RetryBudget, TypeSpec
from clarion.validation import check_name

router = APIRouter(prefix="/v1/types", tags=["types"])


async def _out(spec: TypeSpec, svc: ApiServices) -> TypeOut:
    warnings = await unserved(
        spec.channels, svc.runtime.stores.providers, read_file(svc.runtime.settings.providers_file)
    )
    return TypeOut(
        name=spec.name,
        priority=spec.priority,
        channels=list(spec.channels),
        ttl_seconds=spec.ttl_seconds,
        mandatory=spec.mandatory,
        default_enabled=spec.default_enabled,
        description=spec.description,
        template=spec.template,
        routing=spec.routing,
        retry=RetryIn(retries=spec.budget.retries, within_seconds=int(spec.budget.within_s)),
        aggregate=AggregateIn(window_seconds=spec.aggregate_s) if spec.aggregate_s else None,
        overflow=None if spec.overflow is None else spec.overflow.value,
        warnings=warnings,
    )


@router.put("/{type_name}", response_model=TypeOut, summary="Register or change a type (admin)")
async def put_type(type_name: str, body: TypeIn, _: Admin, svc: Services) -> TypeOut:
    check_name("type", type_name)
    window = body.aggregate.window_seconds if body.aggregate is not None else 0
    if window and (body.priority is Priority.P0 or body.mandatory):
        raise InputError.single(
            "aggregate",
            "transactional types (P0, mandatory) are never aggregated: every one must go out",
        )
    spec = TypeSpec(
        name=type_name,
        priority=body.priority,
        channels=tuple(dict.fromkeys(body.channels)),
        ttl_seconds=body.ttl_seconds,
        mandatory=body.mandatory,
        description=body.description,
        default_enabled=body.default_enabled,
        template=body.template,
        routing=body.routing,
        retry=None
        if body.retry is None
        else RetryBudget(body.retry.retries, float(body.retry.within_seconds)),
        aggregate_s=window,
        overflow=None if body.overflow is None else Overflow(body.overflow),
    )
    await svc.runtime.stores.types.put(spec, svc.runtime.clock.now())
    svc.types.forget(type_name)
    return await _out(spec, svc)


@router.get("/{type_name}", response_model=TypeOut, responses={404: {"model": ErrorOut}})
async def get_type(type_name: str, _: Caller, svc: Services) -> TypeOut:
    spec = await svc.runtime.stores.types.get(type_name)
    if spec is None:
        raise NotFoundError(f"no type {type_name!r}")
    return await _out(spec, svc)


@router.get("", response_model=TypeList)
async def list_types(_: Caller, svc: Services) -> TypeList:
    return TypeList(items=[await _out(s, svc) for s in await svc.runtime.stores.types.list()])
