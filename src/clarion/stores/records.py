"""The values that cross the store seams: what the pipeline, the API and the stores hand
each other. Plain frozen dataclasses; the protocols that take them are in ``stores.base``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import orjson

from clarion.broker.base import Outbound
from clarion.models import Channel, DeviceState, Event, Outcome, Platform
from clarion.types import EventId, JSONObject, Seq, UserId

if TYPE_CHECKING:
    from clarion.live.log import Entry


@dataclass(frozen=True, slots=True)
class UserProfile:
    user_id: UserId
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    updated_at: float = 0.0
    email_verified: bool = False
    phone_verified: bool = False
    email_bounced_at: float | None = None
    attributes: JSONObject = field(default_factory=dict)
    """What segments filter on: strings, numbers, booleans, lists of strings."""


@dataclass(frozen=True, slots=True)
class Device:
    user_id: UserId
    device_id: str
    platform: Platform
    token: str
    """The push token, the web-push endpoint, or the webhook URL."""
    meta: JSONObject = field(default_factory=dict)
    """Web push: {"keys": {"p256dh", "auth"}}; webhook: {"secrets": [...]}."""
    app_version: str | None = None
    state: DeviceState = DeviceState.ACTIVE
    registered_at: float = 0.0
    last_seen: float = 0.0
    invalidated_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    """Where one channel reaches one person: a device, or their email / phone."""

    ref: str
    """The device id, or "email" / "sms"."""
    provider: str
    """The provider kind that speaks to it (apns, fcm, webpush, smtp, sms_twilio, webhook)."""
    value: str
    meta: JSONObject = field(default_factory=dict)
    registered_at: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class Reach:
    """Which outside channels (push, email, sms, webhook, live) reach a person now, and why
    each of the others does not ("email address not verified"). Compared and hashed by
    identity: the stores hand out one instance per combination (``stores.rows.reach``)."""

    channels: frozenset[Channel]
    why_not: Mapping[Channel, str]


NOWHERE = Reach(
    frozenset(),
    {
        Channel.PUSH: "no active push device",
        Channel.WEBHOOK: "no webhook endpoint registered",
        Channel.EMAIL: "no email address",
        Channel.SMS: "no phone number",
        Channel.LIVE: "no device listening",
    },
)


@dataclass(frozen=True, slots=True)
class Invalidation:
    """Provider feedback: an address stopped working."""

    user_id: UserId
    ref: str
    reason: str
    since: float | None = None
    """A device registered after this moment is a new registration and is kept (APNs 410)."""


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    template_id: str
    version: int
    doc: JSONObject
    created_at: float
    created_by: str


@dataclass(frozen=True, slots=True)
class StatusHook:
    id: str
    sender: str
    url: str
    events: frozenset[str]
    secrets: tuple[str, ...]
    created_at: float
    disabled_at: float | None = None


class StoredPreferences(NamedTuple):
    """A tuple, not a dataclass: evaluation loads thousands per claim straight from rows
    (``_make``), and a frozen dataclass's ``__init__`` cost more than the read."""

    user_id: UserId
    raw: bytes | str
    """The document as stored (JSON); ``doc`` decodes it on demand, so a reader that
    already knows this version (a parsed-record cache) never pays for decoding."""
    version: int
    updated_at: float

    @property
    def doc(self) -> JSONObject:
        decoded: JSONObject = orjson.loads(self.raw)
        return decoded


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who made it, when, and the state before and after."""

    kind: str
    subject: str
    actor: str
    at: float
    before: JSONObject | None
    after: JSONObject | None


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """Events from one API call, accepted or refused together for rate limiting."""

    sender: str
    rate_per_s: float | None
    burst: float
    events: Sequence[Event]
    refused_wait: float | None = None
    """Set when a limiter in front of the store (``backends.redis.stores.ingest``) refused
    the request: the store refuses it with this wait too, unless every event repeats a
    stored key."""


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: EventId
    duplicate: bool = False
    """True when the idempotency key was seen inside its window: ``event_id`` is the original."""


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after_s: float
    """``inf`` when the request can never fit (larger than the sender's burst)."""


IngestOutcome = list[Accepted] | RateLimited


@dataclass(frozen=True, slots=True)
class FirstSteps:
    """What ingest enqueues for a group of freshly accepted events, written in the same
    transaction as the events (``pipeline.messages.plan_first_steps`` makes it)."""

    outbound: list[Outbound]
    progress: list[tuple[int, int]]
    """Per event, ``(batches, recipients)`` already produced; ``(0, 0)`` if fan-out will."""


PlanFirstSteps = Callable[[Sequence[tuple[Event, Seq]]], FirstSteps]


@dataclass(frozen=True, slots=True)
class FanoutAdvance:
    """Move an event's fan-out checkpoint from ``from_batch`` to ``to_batch`` (compare-and-set)."""

    seq: Seq
    from_batch: int
    to_batch: int
    recipients: int
    finished: bool


@dataclass(frozen=True, slots=True)
class FanoutPosition:
    next_batch: int
    finished: bool
    failed: bool


@dataclass(frozen=True, slots=True)
class PartitionSet:
    """A big account's followers, precomputed in fixed-size id-ordered partitions.

    Partition ``k`` holds the followers with ids above ``uppers[k-1]`` and up to
    ``uppers[k]`` (the last has no upper limit). The bounds are fixed when the set is built
    (each ``generation``); follows and unfollows are then applied inside them."""

    creator: UserId
    generation: int
    size: int
    followers: int
    built_at: float
    refreshed_at: float
    uppers: tuple[UserId | None, ...]
    counts: tuple[int, ...]

    @property
    def partitions(self) -> int:
        return len(self.uppers)

    def ref(self, part_no: int) -> PartitionRef:
        after = self.uppers[part_no - 1] if part_no else None
        return PartitionRef(self.creator, self.generation, part_no, after, self.uppers[part_no])


@dataclass(frozen=True, slots=True)
class PartitionRef:
    """One partition, as a fan-out hands it to evaluation: its number in its generation,
    and its id range (``after`` < id ≤ ``upto``) to read live if the generation is gone."""

    creator: UserId
    generation: int
    part_no: int
    after: UserId | None
    upto: UserId | None


ALL_CHANNELS = "all"
"""The channel of a decision about the person rather than one channel (a suppression)."""


class DeliveryOutcome(NamedTuple):
    """A tuple: evaluation makes one per person it holds or suppresses (a fast ``__init__``)."""

    user_id: UserId
    channel: str
    """A Channel value, or ``ALL_CHANNELS``."""
    outcome: Outcome
    reason: str | None = None
    attempt: int = 1
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class EntryUpdate:
    """An aggregate's inbox entry (``policy.aggregation``) brought up to date: created if
    missing, unread again, and never moved back to a smaller count."""

    user_id: UserId
    entry: Seq
    count: int
    actors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A notification collected into a person's digest due at ``due_at``."""

    user_id: UserId
    due_at: float
    seq: Seq
    """The event to list."""
    entry: Seq | None = None
    """For an aggregated notification, its key's inbox entry: the digest lists the key once."""
    reason: str = "digest"

    @property
    def item(self) -> Seq:
        return self.seq if self.entry is None else self.entry


@dataclass(frozen=True, slots=True)
class Digest:
    """A digest taken for sending: its id, and its items as ``(event seq, entry)``."""

    digest_id: str
    items: list[tuple[Seq, Seq | None]]


@dataclass(frozen=True, slots=True)
class Collapsing:
    """Latest wins per (recipient, ``key``): of two notifications, the one created later
    (then the later event) is the one that counts (``pipeline.collapse``)."""

    key: str
    created_at: float
    users: tuple[UserId, ...] = ()
    """Whom the notification goes out to (on any channel): it becomes their newest."""

    def beaten_by(self, seq: Seq, latest: tuple[Seq, float] | None) -> bool:
        """Whether ``latest`` (the newest recorded: its seq and creation time) is newer than
        this notification, event ``seq``."""
        return latest is not None and (latest[1], latest[0]) > (self.created_at, seq)


@dataclass(slots=True)
class BatchResult:
    """What evaluating one recipient batch decided; recorded atomically, at most once."""

    seq: Seq
    batch_key: str
    recipients: int
    inbox: list[UserId] = field(default_factory=list)
    """Users who get an in-app entry now (logged as in_app/delivered in bulk)."""
    live: list[UserId] = field(default_factory=list)
    """Users whose listening devices hear it now (logged and counted in ``outcomes``)."""
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    """Every other decision (suppressions with their reason, other channels)."""
    entries: list[EntryUpdate] = field(default_factory=list)
    """Aggregate inbox entries to bring up to date (in-app deliveries counted in
    ``delivered``)."""
    digest: list[DigestItem] = field(default_factory=list)
    """Collected into digests; the stage adds them (``DigestStore.add``) before recording."""
    collapse: Collapsing | None = None
    """Set: ``inbox`` entries replace the recipient's entry of the same key if they are
    newer, and are dropped as superseded if not (decided in the commit)."""
    unreachable: list[tuple[str, str, list[UserId]]] = field(default_factory=list)
    """Channels that cannot reach some recipients: ``(channel, reason, users)``, logged as
    suppressed in bulk (most people share a reason: "no active push device")."""
    suppressed: int = 0
    held: int = 0
    """Recipients put off until later (quiet hours, an hourly cap)."""
    released: int = 0
    """For a held batch coming back: how many recipients it takes off the held count."""
    completes_batch: bool = True
    """False for re-evaluations of held recipients, which do not count as a new batch."""
    delivered: int = 0
    """Channel deliveries (in-app entries are counted from ``inbox``)."""
    failed: int = 0
    invalidated: list[Invalidation] = field(default_factory=list)
    """Provider feedback applied in the same commit: dead tokens, bounced addresses."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_batches`` did: how many batches were new, and what it announced on
    people's streams (``live``), for whoever rings their devices' doorbell."""

    batches: int
    streamed: list[Entry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What an aggregate inbox entry holds: everything counted, the newest names."""

    count: int
    actors: tuple[str, ...]
    last_at: float


@dataclass(frozen=True, slots=True)
class InboxItem:
    seq: Seq
    event_id: EventId
    type: str
    actor: str | None
    object: str | None
    title: str
    body: str
    created_at: float
    read: bool
    template: str | None = None
    template_version: int | None = None
    payload: JSONObject = field(default_factory=dict)
    aggregate: Aggregate | None = None


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[InboxItem]
    next_before: Seq | None
    unread_count: int


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    event_id: EventId
    user_id: UserId
    channel: str
    attempt: int
    outcome: str
    reason: str | None
    at: float
    trace_id: str | None = None
    """The producer's trace the event came with (W3C ``traceparent``)."""


@dataclass(frozen=True, slots=True)
class StageStats:
    worker: str
    stage: str
    messages: int
    items: int
    busy_s: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring send: ``event`` (as ``POST /v1/notifications`` takes it) on ``cron``."""

    id: str
    sender: str
    cron: str
    timezone: str
    event: JSONObject
    next_run_at: float
    created_at: float
    last_run_at: float | None = None


@dataclass(frozen=True, slots=True)
class Audience:
    """An uploaded list of people a campaign can go to."""

    id: str
    sender: str
    name: str
    size: int
    created_at: float
