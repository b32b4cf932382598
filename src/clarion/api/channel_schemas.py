"""Request and response bodies for what reaches people outside the inbox: devices,
templates, providers and status webhooks (these also generate ``/openapi.json``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from clarion.api.schemas import Strict
from clarion.models import Channel, DeviceState, Platform

# ── devices ──────────────────────────────────────────────────────────────────────────

B64URL = r"^[A-Za-z0-9_-]+=*$"


class PushKeysIn(Strict):
    p256dh: Annotated[str, StringConstraints(pattern=B64URL, min_length=40, max_length=200)]
    auth: Annotated[str, StringConstraints(pattern=B64URL, min_length=16, max_length=64)]


class SubscriptionIn(Strict):
    endpoint: Annotated[str, StringConstraints(max_length=2048)]
    keys: PushKeysIn


class DeviceIn(Strict):
    platform: Platform
    device_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = (
        Field(None, description="Your id for the device; default: derived from the token.")
    )
    token: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:.-]{8,4096}$")] | None = Field(
        None, description="APNs (hex) or FCM registration token: ios and android."
    )
    subscription: SubscriptionIn | None = Field(None, description="PushSubscription: web.")
    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        None, description="HTTPS endpoint: webhook."
    )
    secret: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="webhook: whsec_… to sign with; default: generated, shown once."
    )
    app_version: Annotated[str, StringConstraints(max_length=40)] | None = None


class DeviceOut(BaseModel):
    device_id: str
    platform: Platform
    token: str = Field(description="Masked: the start and end only.")
    state: DeviceState
    app_version: str | None
    registered_at: str
    last_seen: str
    invalid_reason: str | None = None
    secret: str | None = Field(None, description="webhook: the signing secret, once.")
    replaced: list[str] = Field(default_factory=list, description="Devices dropped (limit).")


class DeviceList(BaseModel):
    items: list[DeviceOut]


# ── templates ────────────────────────────────────────────────────────────────────────

TemplateText = Annotated[str, StringConstraints(max_length=20_000)]


class PushVariant(Strict):
    title: Annotated[str, StringConstraints(max_length=500)] = ""
    body: TemplateText = ""


class EmailVariant(Strict):
    subject: Annotated[str, StringConstraints(max_length=500)]
    text: TemplateText
    html: TemplateText = ""


class SmsVariant(Strict):
    text: TemplateText


class LocaleVariants(Strict):
    push: PushVariant | None = None
    email: EmailVariant | None = None
    sms: SmsVariant | None = None
    in_app: PushVariant | None = None
    webhook: PushVariant | None = None
    digest: EmailVariant | None = Field(
        None,
        description="The digest email (the digest template's): given items (title, body,"
        " type, count, actors, at), count and period.",
    )


LocaleName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]


class TemplateIn(Strict):
    default_locale: LocaleName = "en"
    variants: dict[LocaleName, LocaleVariants] = Field(min_length=1)


class TemplateOut(BaseModel):
    id: str
    version: int
    versions: list[int]
    created_at: str
    created_by: str
    default_locale: str
    variants: dict[str, LocaleVariants]


class PreviewIn(Strict):
    channel: Channel
    locale: LocaleName | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    version: int | None = None


class PreviewOut(BaseModel):
    template: str
    version: int
    channel: Channel
    fields: dict[str, str]


# ── providers and status webhooks ────────────────────────────────────────────────────


class ProviderOut(BaseModel):
    name: str
    kind: str
    channel: Channel
    config: dict[str, Any] = Field(description="Secrets show as **********.")
    health: ProviderHealthOut


class ProviderList(BaseModel):
    items: list[ProviderOut]


class StatusHookIn(Strict):
    url: Annotated[str, StringConstraints(max_length=2048)]
    events: list[Literal["delivered", "failed", "bounced", "unsubscribed"]] = Field(min_length=1)
    secret: Annotated[str, StringConstraints(max_length=200)] | None = None


class StatusHookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: str
    disabled: bool
    secret: str | None = Field(None, description="Shown once, when the hook is created.")


class StatusHookList(BaseModel):
    items: list[StatusHookOut]


class ProviderHealthOut(BaseModel):
    state: Literal["closed", "open", "half_open"]
    since: str | None = Field(description="When the breaker last changed state.")
    window_sent: int
    window_failed: int
    error_rate: float
    next_probe_at: str | None = Field(description="While open: when one probe send goes.")
    throttled_until: str | None = Field(description="After a 429: the rate is halved until.")
