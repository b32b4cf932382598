"""Campaigns: one message to an audience, expanded by the schedulers (``campaigns``).

``POST /v1/campaigns`` ``{name, type, audience, payload | template, start_at, local_time,
throttle_per_s, ttl_seconds, rollout_percent, draft}``; the audience is one of
``{"followers_of": id}``, ``{"audience": id}``, ``{"segment": {...}}`` or ``{"all": true}``.
``POST …/{id}/approve | pause | resume | cancel`` move it; ``PATCH`` raises
``rollout_percent``; ``GET …/{id}`` shows its progress.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from clarion.api.deps import Admin, Caller, Services
from clarion.api.format import iso
from clarion.api.routes.audiences import owned
from clarion.api.schemas import ErrorOut, NameField, Strict
from clarion.api.services import ApiServices
from clarion.campaigns import segments
from clarion.campaigns.expansion import campaign_event_id
from clarion.campaigns.model import Campaign, CampaignState
from clarion.errors import ConflictError, FieldProblem, InputError, NotFoundError
from clarion.ids import new_id
from clarion.models import Priority, SenderKey
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.types import UserId

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class CampaignIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    type: NameField = Field(description="A registered type (not P0): its channels and TTL.")
    audience: dict[str, Any] = Field(
        description='One of {"followers_of": id}, {"audience": id}, {"segment": {...}},'
        ' {"all": true}.'
    )
    payload: dict[str, Any] | None = None
    template: NameField | None = None
    start_at: AwareDatetime | None = Field(None, description="RFC 3339; absent: now.")
    local_time: str | None = Field(
        None, description="HH:MM: each person gets it at that hour of their own zone."
    )
    throttle_per_s: float | None = Field(None, gt=0, le=1_000_000)
    ttl_seconds: int | None = Field(None, ge=1, le=30 * 86_400)
    rollout_percent: int = Field(100, ge=1, le=100)
    draft: bool = Field(False, description="Keep it as a draft until POST …/schedule.")


class RolloutIn(Strict):
    rollout_percent: int = Field(ge=1, le=100, description="Only ever raised.")


class CampaignOut(BaseModel):
    id: str
    name: str
    type: str
    state: CampaignState
    audience: dict[str, Any]
    start_at: str
    local_time: str | None
    throttle_per_s: float | None
    rollout_percent: int
    event_id: str | None
    targeted: int = Field(description="People of the audience in the rollout, so far.")
    enqueued: int = Field(description="Of those, handed to evaluation.")
    delivered: int
    suppressed: int
    suppressed_by: dict[str, int] = Field(
        description="``suppressed`` by reason (disabled_type, quiet_hours_dropped, freq_cap,"
        " no_channel, …)."
    )
    held: int
    failed: int
    pending: int = Field(description="Enqueued and not decided yet.")
    rate_per_s: float = Field(description="Deliveries per second since it started.")


class CampaignList(BaseModel):
    items: list[CampaignOut]


@router.post("", response_model=CampaignOut, status_code=201, responses={400: {"model": ErrorOut}})
async def create(body: CampaignIn, key: Caller, svc: Services) -> CampaignOut:
    problems = await _problems(body, key, svc)
    if problems:
        raise InputError(problems)
    now = svc.runtime.clock.now()
    size = await _size(svc, body.audience)
    state = CampaignState.SCHEDULED
    if body.draft:
        state = CampaignState.DRAFT
    elif size > svc.runtime.settings.campaign_approval_over:
        state = CampaignState.AWAITING_APPROVAL
    doc = body.model_dump(mode="json", exclude={"start_at", "rollout_percent", "draft"})
    if body.template is not None:
        doc["template_version"] = await svc.template_version(body.template, None)
    campaign = Campaign(
        new_id("cmp"),
        key.sender,
        doc,
        state,
        body.start_at.timestamp() if body.start_at else now,
        body.rollout_percent,
        now,
        now,
    )
    await svc.runtime.stores.campaigns.create(campaign)
    return await _out(svc, campaign)


async def _problems(body: CampaignIn, key: SenderKey, svc: ApiServices) -> list[FieldProblem]:
    found = []
    spec = await svc.types.get(body.type)
    if spec is None:
        found.append(FieldProblem("type", f"unknown type {body.type!r}"))
    elif spec.priority is Priority.P0 or spec.mandatory:
        found.append(
            FieldProblem("type", "campaigns are marketing (P2): not a P0 or mandatory type")
        )
    elif not key.may_send(body.type):
        found.append(FieldProblem("type", f"this key may not send {body.type!r}"))
    if body.payload is None and body.template is None:
        found.append(FieldProblem("payload", "give a payload (title, body) or a template"))
    if body.template is not None and await svc.template_version(body.template, None) is None:
        found.append(FieldProblem("template", f"no template {body.template!r}"))
    if body.local_time is not None and not _CLOCK.match(body.local_time):
        found.append(FieldProblem("local_time", "HH:MM, e.g. 09:00"))
    found += await _audience_problems(body.audience, key, svc)
    return found


async def _audience_problems(
    audience: dict[str, Any], key: SenderKey, svc: ApiServices
) -> list[FieldProblem]:
    kinds = [k for k in ("followers_of", "audience", "segment", "all") if k in audience]
    if len(kinds) != 1 or len(audience) != 1:
        return [FieldProblem("audience", 'one of "followers_of", "audience", "segment", "all"')]
    kind, value = kinds[0], audience[kinds[0]]
    if kind == "all" and value is not True:
        return [FieldProblem("audience.all", "true")]
    if kind in ("followers_of", "audience") and not isinstance(value, str):
        return [FieldProblem(f"audience.{kind}", "an id")]
    if kind == "audience":
        try:
            await owned(svc, key, value)
        except NotFoundError:
            return [FieldProblem("audience.audience", f"no audience {value!r}")]
    if kind == "segment":
        try:
            segments.parse(value, "audience.segment")
        except InputError as exc:
            return list(exc.problems)
    return []


async def _size(svc: ApiServices, audience: dict[str, Any]) -> int:
    stores = svc.runtime.stores
    if "followers_of" in audience:
        return await stores.followers.count(UserId(audience["followers_of"]))
    if "audience" in audience:
        found = await stores.audiences.get(audience["audience"])
        return 0 if found is None else found.size
    conditions = segments.parse(audience["segment"]) if "segment" in audience else None
    return await stores.users.count_matching(conditions)


async def _out(svc: ApiServices, c: Campaign) -> CampaignOut:
    status = None
    event_id = None
    if c.seq is not None:
        event_id = campaign_event_id(c.id)
        status = await svc.runtime.stores.events.status(event_id)
    delivered = status.delivered if status else 0
    suppressed = status.suppressed if status else 0
    held = status.held if status else 0
    failed = status.failed if status else 0
    running_s = max(svc.runtime.clock.now() - c.start_at, 1.0)
    return CampaignOut(
        id=c.id,
        name=c.name,
        type=c.type,
        state=c.state,
        audience=c.audience,
        start_at=iso(c.start_at),
        local_time=c.local_time,
        throttle_per_s=c.throttle_per_s,
        rollout_percent=c.rollout_percent,
        event_id=event_id,
        targeted=c.targeted,
        enqueued=c.targeted,
        delivered=delivered,
        suppressed=suppressed,
        suppressed_by=status.suppressed_by if status else {},
        held=held,
        failed=failed,
        pending=max(c.targeted - delivered - suppressed - held - failed, 0),
        rate_per_s=round(delivered / running_s, 1) if c.seq is not None else 0.0,
    )


async def _owned(svc: ApiServices, key: SenderKey, campaign_id: str) -> Campaign:
    found = await svc.runtime.stores.campaigns.get(campaign_id)
    if found is None or not (key.admin or found.sender == key.sender):
        raise NotFoundError(f"no campaign {campaign_id!r}")
    return found


@router.get("", response_model=CampaignList)
async def listed(key: Caller, svc: Services) -> CampaignList:
    found = await svc.runtime.stores.campaigns.listed(None if key.admin else key.sender)
    return CampaignList(items=[await _out(svc, c) for c in found])


@router.get("/{campaign_id}", response_model=CampaignOut, responses={404: {"model": ErrorOut}})
async def one(campaign_id: str, key: Caller, svc: Services) -> CampaignOut:
    return await _out(svc, await _owned(svc, key, campaign_id))


@router.patch(
    "/{campaign_id}",
    response_model=CampaignOut,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    summary="Raise rollout_percent (the people added are new; no one gets it twice)",
)
async def patch(campaign_id: str, body: RolloutIn, key: Caller, svc: Services) -> CampaignOut:
    campaign = await _owned(svc, key, campaign_id)
    if body.rollout_percent < campaign.rollout_percent:
        raise ConflictError("a rollout only grows: who got it cannot un-get it")
    moved = await svc.runtime.stores.campaigns.raise_rollout(
        campaign_id, body.rollout_percent, svc.runtime.clock.now()
    )
    assert moved is not None
    return await _out(svc, moved)


async def _act(svc: ApiServices, key: SenderKey, campaign_id: str, action: str) -> CampaignOut:
    before = await _owned(svc, key, campaign_id)
    now = svc.runtime.clock.now()
    after = await svc.runtime.stores.campaigns.move(campaign_id, action, now)
    assert after is not None
    if after.state == before.state:
        raise ConflictError(f"cannot {action} a campaign that is {before.state.value}")
    if action == "cancel":  # what is already queued stops too, within a second
        switch = KillSwitch(
            new_id("ks"), KillKind.CAMPAIGN, campaign_id, "cancelled", now, key.sender
        )
        await svc.runtime.stores.kill_switches.create(switch)
    return await _out(svc, after)


@router.post(
    "/{campaign_id}/approve",
    response_model=CampaignOut,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def approve(campaign_id: str, key: Admin, svc: Services) -> CampaignOut:
    return await _act(svc, key, campaign_id, "approve")


def _action(action: str) -> Any:
    async def act(campaign_id: str, key: Caller, svc: Services) -> CampaignOut:
        return await _act(svc, key, campaign_id, action)

    return act


for _name in ("schedule", "pause", "resume", "cancel"):
    router.post(
        f"/{{campaign_id}}/{_name}",
        response_model=CampaignOut,
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
        summary=f"{_name.capitalize()} the campaign",
        name=f"campaign_{_name}",
    )(_action(_name))
