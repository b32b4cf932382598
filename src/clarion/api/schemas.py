"""Request and response bodies of the HTTP API (these generate ``/openapi.json``).

Requests forbid unknown fields: a typo such as ``"recipents"`` is a 400 naming the field,
never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from clarion.models import Channel, EventState, FanOut, Priority, Routing
from clarion.validation import NAME_PATTERN, USER_ID_PATTERN, is_time_zone

UserIdField = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
NameField = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ── notifications ────────────────────────────────────────────────────────────────────


class EventIn(Strict):
    type: NameField = Field(description="A registered notification type.")
    actor: UserIdField | None = Field(None, description="Who caused the event.")
    target: UserIdField | None = Field(None, description="The one recipient of a direct event.")
    recipients: list[UserIdField] | None = Field(
        None, description="Recipients of a direct event (instead of target)."
    )
    fan_out: FanOut = Field(FanOut.DIRECT, description="direct, or followers of the actor.")
    object: ShortText | None = Field(None, description="What the event is about (post_123).")
    payload: dict[str, Any] | None = Field(
        None, description="Content for rendering; payload.title and payload.body are shown."
    )
    priority: Priority | None = Field(None, description="Defaults to the type's; may only lower.")
    ttl_seconds: int | None = Field(None, description="Drop instead of delivering after this.")
    idempotency_key: ShortText | None = Field(
        None, description="Repeats within the window return the original event id."
    )
    campaign: NameField | None = Field(
        None, description="Campaign id, so a kill switch can stop the whole campaign."
    )
    template: NameField | None = Field(None, description="A template; default: the type's.")
    template_version: int | None = Field(
        None, ge=1, description="Pin a version; default: the newest when the event is sent."
    )
    collapse_key: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="Newer pushes with the same key replace older ones on the device."
    )
    send_at: AwareDatetime | None = Field(
        None,
        description="RFC 3339 time to send it at, up to 30 days ahead (cancel before then"
        " with DELETE /v1/notifications/{event_id}); its TTL counts from then.",
    )


class BatchIn(Strict):
    events: list[Any] = Field(description="Up to 1,000 events, each answered on its own.")


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool = False


class FieldErrorOut(BaseModel):
    field: str
    reason: str


class ErrorOut(BaseModel):
    error: str
    message: str
    errors: list[FieldErrorOut] = []


class BatchItemOut(BaseModel):
    status: int
    event_id: str | None = None
    duplicate: bool = False
    error: str | None = None
    errors: list[FieldErrorOut] = []


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemOut]


class EventStatusOut(BaseModel):
    event_id: str
    type: str
    priority: Priority
    state: EventState
    recipients: int
    batches_total: int | None
    batches_done: int
    delivered: int = Field(description="Deliveries that reached a channel (per channel).")
    suppressed: int
    suppressed_by: dict[str, int] = Field(
        default_factory=dict,
        description="``suppressed`` by reason: disabled_type, master_off, quiet_hours_dropped,"
        " freq_cap, no_channel, expired, killed, superseded, aggregated, …",
    )
    held: int
    failed: int = Field(description="Deliveries a provider refused or that ran out of retries.")
    created_at: str
    first_delivery_at: str | None
    completed_at: str | None
    error: str | None = None
    trace_id: str | None = Field(None, description="The W3C trace id it was sent with.")


class EventStatusList(BaseModel):
    items: list[EventStatusOut]


# ── types ────────────────────────────────────────────────────────────────────────────


class RetryIn(Strict):
    retries: int = Field(ge=0, le=10, description="Attempts after the first.")
    within_seconds: int = Field(ge=1, le=86_400, description="All of them within this long.")


class AggregateIn(Strict):
    window_seconds: int = Field(
        ge=0,
        le=86_400,
        description="Events of one (recipient, type, object) within this window collapse:"
        " the first goes out at once, one summary at the end; 0: never aggregate.",
    )


class TypeIn(Strict):
    priority: Priority
    channels: list[Channel] = Field(default_factory=lambda: [Channel.IN_APP], min_length=1)
    ttl_seconds: int = Field(86_400, gt=0, le=30 * 86_400)
    mandatory: bool = Field(False, description="Users cannot switch it off (OTP, security).")
    default_enabled: bool | None = Field(
        None, description="For users who never chose; absent: on for P0/P1, off for P2."
    )
    description: Annotated[str, StringConstraints(max_length=200)] = ""
    template: NameField | None = Field(None, description="The template its events use.")
    routing: Routing = Field(
        Routing.FIRST,
        description="first: the first listed channel that reaches the person, the next ones"
        " as fallbacks; all: every one at once (dual-send, e.g. push + SMS for P0 codes).",
    )
    retry: RetryIn | None = Field(
        None,
        description="Retry budget; default P0 3 within 60 s, P1 2 within 120 s, P2 1 in 300 s.",
    )
    aggregate: AggregateIn | None = Field(
        None, description="Collapse floods: 5,000 likes on a photo become two pushes."
    )
    overflow: Literal["digest"] | None = Field(
        None,
        description="digest: what frequency caps would drop goes to the person's next email"
        " digest instead.",
    )


class TypeOut(BaseModel):
    name: str
    priority: Priority
    channels: list[Channel]
    ttl_seconds: int
    mandatory: bool
    default_enabled: bool | None
    description: str
    template: str | None
    routing: Routing
    retry: RetryIn = Field(description="The budget in force (the priority's when not set).")
    aggregate: AggregateIn | None = None
    overflow: Literal["digest"] | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="What will not work yet, e.g. a channel no configured provider serves.",
    )


class TypeList(BaseModel):
    items: list[TypeOut]


# ── users and followers ──────────────────────────────────────────────────────────────


AttributeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=200)]
    | bool
    | int
    | float
    | Annotated[list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=100)]
)


class UserIn(Strict):
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = Field(
        None, description="E.164, e.g. +14155550100"
    )
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="IANA zone, e.g. Europe/Paris"
    )
    locale: (
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None
    ) = None
    email_verified: bool = Field(False, description="Email is only sent to verified addresses.")
    phone_verified: bool = Field(False, description="SMS is only sent to verified numbers.")
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        max_length=100,
        description="What campaign segments filter on: strings, numbers, booleans, lists of"
        ' strings, e.g. {"plan": "premium", "country": "FR", "age_days": 40}.',
    )


class UserOut(BaseModel):
    user_id: str
    email: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    email_verified: bool
    phone_verified: bool
    email_bounced: bool
    attributes: dict[str, Any] = Field(default_factory=dict)


class FollowersIn(Strict):
    followers: list[UserIdField]


class FollowersChanged(BaseModel):
    added: int = 0
    removed: int = 0
    count: int


class FollowerCount(BaseModel):
    count: int


# ── preferences ──────────────────────────────────────────────────────────────────────

ClockTime = Annotated[
    str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
]  # 24-hour HH:MM


class TypePreferenceIn(Strict):
    enabled: bool | None = Field(None, description="None: the type's default.")
    channels: list[Channel] | None = Field(None, description="None: the type's channels.")


class ChannelPreferenceIn(Strict):
    enabled: bool = True
    digest: Literal["immediate", "daily", "weekly"] = Field(
        "immediate",
        description="email: one email per day or week listing what came (P0 and mandatory"
        " types still go at once).",
    )
    digest_at: ClockTime | None = Field(
        None, description="The local time the digest goes out; default 08:00."
    )
    digest_day: (
        Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None
    ) = Field(None, description="Weekly digests: the day; default monday.")


class QuietHoursIn(Strict):
    start: ClockTime
    end: ClockTime
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="IANA zone; absent: the user's profile zone, else UTC."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursIn:
        if self.start == self.end:
            raise ValueError("start and end are the same time; remove quiet_hours instead")
        return self


class FrequencyCapsIn(Strict):
    per_hour: int | None = Field(None, ge=1, le=1000)
    per_day: int | None = Field(None, ge=1, le=1000)


class PreferencesIn(Strict):
    enabled: bool = True
    types: dict[NameField, TypePreferenceIn] = Field(default_factory=dict)
    channels: dict[Channel, ChannelPreferenceIn] = Field(default_factory=dict)
    quiet_hours: QuietHoursIn | None = None
    frequency_caps: FrequencyCapsIn | None = None
    # Read-only fields of GET, accepted (and ignored) so a client can PUT back what it read.
    user_id: str | None = Field(None, exclude=True)
    version: int | None = Field(None, exclude=True)
    effective_types: dict[str, Any] | None = Field(None, exclude=True)


class EffectiveTypeOut(BaseModel):
    enabled: bool
    channels: list[Channel]
    mandatory: bool
    available: list[Channel] = Field(
        default_factory=list, description="The channels the type can use."
    )
    description: str = ""
    category: str = Field("", description="For grouping on a preference page.")


class PreferencesOut(BaseModel):
    user_id: str
    version: int
    enabled: bool
    types: dict[str, TypePreferenceIn]
    channels: dict[Channel, ChannelPreferenceIn]
    quiet_hours: QuietHoursIn | None
    frequency_caps: FrequencyCapsIn | None
    effective_types: dict[str, EffectiveTypeOut] = Field(
        description="Every registered type as it applies to this user, defaults included."
    )


class ChangeOut(BaseModel):
    at: str
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class HistoryOut(BaseModel):
    items: list[ChangeOut]


# ── kill switches ────────────────────────────────────────────────────────────────────


class KillSwitchIn(Strict):
    type: NameField | None = None
    channel: Channel | None = None
    sender: NameField | None = None
    campaign: NameField | None = None
    reason: Annotated[str, StringConstraints(max_length=500)] = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> KillSwitchIn:
        given = [f for f in ("type", "channel", "sender", "campaign") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("give exactly one of type, channel, sender, campaign")
        return self


class KillSwitchOut(BaseModel):
    id: str
    kind: str
    value: str
    reason: str
    created_at: str
    created_by: str
    lifted_at: str | None
    lifted_by: str | None


class KillSwitchList(BaseModel):
    items: list[KillSwitchOut]


# ── inbox and deliveries ─────────────────────────────────────────────────────────────


class InboxAggregateOut(BaseModel):
    count: int = Field(description="Notifications on this entry (5,000 likes: 5000).")
    actors: list[str] = Field(description="The newest names, newest first (at most three).")
    last_at: str


class InboxItemOut(BaseModel):
    id: str
    event_id: str
    type: str
    actor: str | None
    object: str | None
    title: str
    body: str
    created_at: str
    read: bool
    aggregate: InboxAggregateOut | None = Field(
        None, description="Set on an entry that aggregates several notifications."
    )


class InboxOut(BaseModel):
    items: list[InboxItemOut]
    next_cursor: str | None
    unread_count: int
    position: str | None = Field(
        None,
        description="On /v1/me/inbox: stream from here (``since``) after loading this page, "
        "and nothing published meanwhile is missed.",
    )


class ReadIn(Strict):
    ids: list[Annotated[str, StringConstraints(max_length=40)]] | None = None
    all: Literal[True] | None = None


class ReadOut(BaseModel):
    updated: int
    unread_count: int


class DeliveryOut(BaseModel):
    event_id: str
    channel: str
    attempt: int
    outcome: str
    reason: str | None
    at: str
    trace_id: str | None = Field(None, description="The W3C trace id its event was sent with.")


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
