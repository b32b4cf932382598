"""Templates: one variant per channel and per locale, versioned, rendered in a sandbox.
Broken syntax is refused when the template is stored, naming the variant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clarion.api.channel_schemas import PreviewIn, PreviewOut, TemplateIn, TemplateOut
from clarion.api.deps import Admin, Caller, Services
from clarion.api.format import iso
from clarion.api.schemas import ErrorOut
from clarion.api.services import ApiServices
from clarion.errors import FieldProblem, InputError, NotFoundError
from clarion.templates.render import RenderError, compile_errors, render
from clarion.validation import check_name

router = APIRouter(prefix="/v1/templates", tags=["templates"])


@router.put(
    "/{template_id}",
    response_model=TemplateOut,
    responses={400: {"model": ErrorOut}},
    summary="Store a new version of a template (admin)",
)
async def put_template(
    template_id: str, body: TemplateIn, key: Admin, svc: Services
) -> TemplateOut:
    check_name("template", template_id)
    doc = body.model_dump(mode="json", exclude_none=True)
    problems = compile_errors(doc)
    if problems:
        raise InputError(FieldProblem(field, reason) for field, reason in problems)
    await svc.runtime.stores.templates.put(
        template_id, doc, svc.runtime.clock.now(), f"{key.sender} (key {key.key_id})"
    )
    return await _out(svc, template_id, None)


@router.get("/{template_id}", response_model=TemplateOut, responses={404: {"model": ErrorOut}})
async def get_template(
    template_id: str,
    _: Caller,
    svc: Services,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> TemplateOut:
    return await _out(svc, template_id, version)


async def _out(svc: ApiServices, template_id: str, version: int | None) -> TemplateOut:
    store = svc.runtime.stores.templates
    found = await store.get(template_id, version)
    if found is None:
        raise NotFoundError(
            f"no template {template_id!r}" + (f" version {version}" if version else "")
        )
    return TemplateOut(
        id=template_id,
        version=found.version,
        versions=await store.versions(template_id),
        created_at=iso(found.created_at),
        created_by=found.created_by,
        default_locale=found.doc.get("default_locale", "en"),
        variants=found.doc["variants"],
    )


@router.post(
    "/{template_id}/preview",
    response_model=PreviewOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}},
    summary="Render one variant for given values and locale",
)
async def preview(template_id: str, body: PreviewIn, _: Caller, svc: Services) -> PreviewOut:
    found = await svc.runtime.stores.templates.get(template_id, body.version)
    if found is None:
        raise NotFoundError(f"no template {template_id!r}")
    try:
        fields = render(found.doc, body.channel, body.locale, body.params)
    except RenderError as exc:
        raise InputError.single("params", str(exc)) from None
    if not fields:
        raise InputError.single("channel", f"the template has no {body.channel.value} variant")
    return PreviewOut(
        template=template_id, version=found.version, channel=body.channel, fields=fields
    )
