"""The store seams: one protocol per kind of state, each a handful of methods.

Bulk by design: anything the pipeline touches per recipient takes and returns whole
batches (``page``, ``documents``, ``record_batches``), so a backend can do one round trip
per batch instead of one per user.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol, TypeVar

from clarion.broker import Outbound
from clarion.campaigns.model import Campaign
from clarion.campaigns.segments import Condition
from clarion.live.log import Entry, Head, Post, Replay
from clarion.live.state import Put, Stored
from clarion.models import Channel, Event, EventContent, EventStatus, SenderKey, TypeSpec
from clarion.policy.aggregation import AggregateKey, Joined, JoinRequest, WindowSummary
from clarion.policy.frequency import CapCheck, SlotRequest
from clarion.policy.killswitch import KillSwitch
from clarion.resilience.breaker import Health
from clarion.slo import Counts
from clarion.stores.records import (
    Address,
    Aggregate,
    Audience,
    AuditEntry,
    BatchResult,
    DeliveryRecord,
    Device,
    Digest,
    DigestItem,
    FanoutAdvance,
    FanoutPosition,
    InboxItem,
    InboxPage,
    IngestOutcome,
    IngestRequest,
    PartitionSet,
    PlanFirstSteps,
    Reach,
    Recorded,
    Schedule,
    StageStats,
    StatusHook,
    StoredPreferences,
    TemplateVersion,
    UserProfile,
)
from clarion.types import EventId, JSONObject, Seq, UserId

T = TypeVar("T")

# ── the seams ─────────────────────────────────────────────────────────────────────────


class KeyStore(Protocol):
    async def create(self, key: SenderKey, key_hash: str) -> None: ...
    async def find(self, key_hash: str) -> SenderKey | None: ...
    async def list(self) -> list[SenderKey]: ...
    async def revoke(self, key_id: str, at: float) -> bool: ...


class TypeStore(Protocol):
    async def put(self, spec: TypeSpec, at: float) -> None: ...
    async def get(self, name: str) -> TypeSpec | None: ...
    async def list(self) -> list[TypeSpec]: ...


class UserStore(Protocol):
    async def put(self, profile: UserProfile) -> None: ...
    async def get(self, user_id: UserId) -> UserProfile | None: ...

    async def locales(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        """Locales of those of ``user_ids`` that have one."""
        ...

    async def matching(
        self, conditions: Sequence[Condition] | None, after: str | None, limit: int
    ) -> list[UserId]:
        """People whose attributes meet every condition (None: everyone), in id order
        after ``after`` (a campaign's checkpoint)."""
        ...

    async def count_matching(self, conditions: Sequence[Condition] | None) -> int: ...

    async def timezones(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        """Profile time zones of those of ``user_ids`` that have one."""
        ...


class FollowerStore(Protocol):
    async def add(self, creator: UserId, followers: Sequence[UserId]) -> int:
        """Add followers (already-present ones are ignored); returns how many were new."""
        ...

    async def remove(self, creator: UserId, followers: Sequence[UserId]) -> int: ...
    async def count(self, creator: UserId) -> int: ...

    async def page(self, creator: UserId, *, after: UserId | None, limit: int) -> list[UserId]:
        """Followers in id order strictly after ``after``: keyset paging, never all in memory."""
        ...

    async def between(
        self, creator: UserId, *, after: UserId | None, upto: UserId | None
    ) -> list[UserId]:
        """Followers with ``after`` < id ≤ ``upto`` (``None``: no bound), in id order."""
        ...


class PartitionStore(Protocol):
    """Precomputed follower partitions of big accounts (``pipeline.partitions``)."""

    async def info(self, creator: UserId) -> PartitionSet | None:
        """The creator's built set, or None (never built)."""
        ...

    async def creators_over(self, threshold: int) -> list[tuple[UserId, int]]:
        """Creators with at least ``threshold`` followers, and how many, biggest first."""
        ...

    async def rebuild(self, creator: UserId, *, size: int, now: float) -> PartitionSet:
        """Partition the current followers afresh (a new generation)."""
        ...

    async def refresh(self, creator: UserId, *, now: float) -> tuple[PartitionSet, int]:
        """Apply the follows and unfollows logged since the last build or refresh inside the
        existing bounds; returns the set and how many changes were applied."""
        ...

    async def members(
        self, creator: UserId, generation: int, part_nos: Sequence[int]
    ) -> dict[int, list[UserId]]:
        """The members of those partitions; empty if ``generation`` is no longer current."""
        ...


class PreferenceStore(Protocol):
    async def get(self, user_id: UserId) -> StoredPreferences | None: ...

    async def put(
        self,
        user_id: UserId,
        doc: JSONObject,
        at: float,
        actor: str,
        *,
        expected_version: int | None = None,
    ) -> StoredPreferences:
        """Replace the document (version + 1) and log the change, in one transaction.
        With ``expected_version`` (0: no document yet) it is a compare-and-set for
        read-modify-write callers; a mismatch raises :class:`StaleVersionError`."""
        ...

    async def history(self, user_id: UserId, *, limit: int) -> list[AuditEntry]: ...

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        """Records for those of ``user_ids`` that have one; absent users use the defaults."""
        ...

    async def documents(self, user_ids: Sequence[UserId]) -> dict[str, list[UserId]]:
        """What evaluation reads: the documents of those of ``user_ids`` who have one, each
        with the people who have it (everyone else uses the defaults). Grouped because
        people who chose the same settings are decided together, and a fan-out's thousand
        records are a handful of documents: no Python object per person on the way."""
        ...


class EventStore(Protocol):
    async def accept(
        self, requests: Sequence[IngestRequest], plan: PlanFirstSteps, now: float
    ) -> list[IngestOutcome]:
        """Dedup, rate-limit, record and enqueue each request's events, all or nothing each."""
        ...

    async def status(self, event_id: EventId) -> EventStatus | None: ...

    async def cancel(self, event_id: EventId, sender: str | None, now: float) -> bool | None:
        """Call off an event that has not started (``sender``: only if it is theirs);
        None if there is no such event, False if it is already on its way."""
        ...

    async def traced(self, trace_id: str, *, limit: int) -> list[EventStatus]:
        """Events sent with this W3C trace id, newest first."""
        ...

    async def count(self) -> int: ...

    async def contents(self, seqs: Sequence[Seq]) -> dict[Seq, EventContent]:
        """Title, body, payload and template of each event (for rendering)."""
        ...

    async def positions(self, seqs: Sequence[Seq]) -> dict[Seq, FanoutPosition]: ...
    async def advance(self, advances: Sequence[FanoutAdvance], now: float) -> None: ...
    async def fail(self, seq: Seq, error: str, *, state: str = "failed") -> None:
        """End the event early: ``failed`` (given up on) or ``killed`` (a kill switch)."""
        ...


class DeliveryStore(Protocol):
    async def record_batches(
        self, results: Sequence[BatchResult], worker: str, now: float
    ) -> Recorded:
        """Write inbox entries, delivery-log rows and progress, and announce the entries on
        the streams of those listening; a batch key seen before is skipped whole."""
        ...

    async def recorded(self, keys: Sequence[tuple[Seq, str]]) -> set[tuple[Seq, str]]:
        """Which of these ``(seq, batch_key)`` batches were recorded already."""
        ...

    async def for_user(
        self, user_id: UserId, *, event_id: EventId | None, limit: int
    ) -> list[DeliveryRecord]:
        """A person's delivery trail (of one event, when given), the newest event first."""
        ...

    async def slo_counts(self, since: float, until: float) -> list[Counts]:
        """Per priority, the window's deliveries by whose they were (``clarion.slo``)."""
        ...

    async def receipt(self, provider_ref: str, outcome: str, reason: str, at: float) -> bool:
        """Log what a provider reported later about a message it took (SMS receipts)."""
        ...

    async def latest(
        self, keys: Sequence[tuple[UserId, str]]
    ) -> dict[tuple[UserId, str], tuple[Seq, float]]:
        """Per (recipient, collapse key), the newest notification recorded: its event's seq
        and creation time (only keys that have one)."""
        ...


class InboxStore(Protocol):
    async def page(self, user_id: UserId, *, before: Seq | None, limit: int) -> InboxPage: ...

    async def mark_read(self, user_id: UserId, seqs: Sequence[Seq] | None, at: float) -> int:
        """Mark the given entries (or all, with ``None``) read; returns how many changed."""
        ...

    async def count_for_event(self, event_id: EventId) -> int: ...

    async def items(self, user_id: UserId, seqs: Sequence[Seq]) -> list[InboxItem]:
        """Those of the person's entries (newest first); the others are left out."""
        ...

    async def aggregates(self, user_id: UserId, seqs: Sequence[Seq]) -> dict[Seq, Aggregate]:
        """What those of the person's entries that aggregate several notifications hold."""
        ...


class FrequencyStore(Protocol):
    """The places capped people hold in their rolling windows (``policy.frequency``)."""

    async def reserve(self, requests: Sequence[SlotRequest], now: float) -> list[CapCheck]:
        """Give each request a place at ``now`` if the person's caps have room, in order and
        atomically against every other worker (``frequency.allot``); answers in order.
        Raises :class:`CountsUnavailableError` when the places cannot be read."""
        ...

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        """Times of each person's places taken after ``since`` (only people who have any)."""
        ...


class AggregateStore(Protocol):
    """Aggregation windows per (recipient, type, object) (``policy.aggregation``), each
    change atomic against every other worker."""

    async def join(self, requests: Sequence[JoinRequest], now: float) -> list[Joined]:
        """Add each notification to its key's window, in order; a notification seen before
        gets its first answer again. Raises :class:`AggregatesUnavailableError` when the
        windows cannot be reached."""
        ...

    async def take(self, windows: Sequence[tuple[AggregateKey, int]]) -> list[WindowSummary | None]:
        """Each window's summary (once: taking it again returns the same), or None when
        nothing new came since the notification that went out."""
        ...


class DigestStore(Protocol):
    """People's daily and weekly digests (``policy.digest``), each change atomic."""

    async def add(self, items: Sequence[DigestItem], now: float) -> list[tuple[float, bool]]:
        """Put each item in its person's digest due at its ``due_at`` — or, if that one was
        taken for sending already, in a digest due ``now``. Per item: the due time it
        landed in, and whether it schedules that digest's send (the first item does, again
        on a redelivery)."""
        ...

    async def take(self, user_id: UserId, due_at: float) -> Digest | None:
        """The digest's items, given an id the first time (the same ones after); None if
        there is no such digest."""
        ...


class StreamStore(Protocol):
    """Each person's stream of messages for their devices (``live.log``)."""

    async def activate(self, user_id: UserId, now: float) -> Head:
        """Keep the person's stream written for the next day (a new epoch if it lapsed)."""
        ...

    async def append(self, posts: Sequence[Post], now: float) -> list[Entry]:
        """Append to the streams that are active (the others are skipped)."""
        ...

    async def replay(
        self, user_id: UserId, since: tuple[str, int] | None, *, limit: int = ...
    ) -> Replay:
        """What a device resuming from ``since`` (epoch, position) missed, or a reset."""
        ...

    async def heads(self, user_ids: Sequence[UserId]) -> dict[UserId, Head]: ...

    async def prune(self, now: float) -> int:
        """Drop what is both older than a day and more than ``KEEP`` behind its head."""
        ...


class StateStore(Protocol):
    """Keyed state per person, latest wins (``live.state``), and what devices acknowledged."""

    async def put(self, posts: Sequence[Post], now: float) -> list[Put]:
        """Store each state post newer than the stored version and append it to the
        person's stream, atomically."""
        ...

    async def snapshot(self, user_id: UserId) -> list[Stored]: ...

    async def ack(self, user_id: UserId, device_id: str, epoch: str, pos: int, now: float) -> None:
        """The device has everything up to ``epoch:pos`` (never moves back)."""
        ...

    async def acked(self, user_id: UserId) -> dict[str, tuple[str, int]]: ...


class TicketStore(Protocol):
    """Single-use stream tickets (``live.tokens``), stored by hash."""

    async def issue(self, ticket_hash: str, user_id: UserId, expires_at: float) -> None: ...

    async def redeem(self, ticket_hash: str, now: float) -> UserId | None:
        """The ticket's person, once; None if unknown, used or expired."""
        ...


class KillSwitchStore(Protocol):
    async def create(self, switch: KillSwitch) -> None: ...
    async def lift(self, switch_id: str, at: float, actor: str) -> KillSwitch | None: ...
    async def list(self, *, include_lifted: bool) -> list[KillSwitch]: ...


class DeviceStore(Protocol):
    async def register(self, device: Device, *, max_per_user: int) -> list[str]:
        """Add or refresh a device (a token moves to whoever registers it last); returns
        the ids of devices dropped to stay within ``max_per_user`` (least recently seen)."""
        ...

    async def remove(self, user_id: UserId, device_id: str) -> bool: ...
    async def of_user(self, user_id: UserId) -> list[Device]: ...

    async def addresses(
        self, channel: Channel, user_ids: Sequence[UserId]
    ) -> dict[UserId, list[Address]]:
        """Where ``channel`` reaches each person right now (active devices, a verified
        unbounced email, a verified phone); people it cannot reach are left out."""
        ...

    async def reachable(
        self, user_ids: Sequence[UserId], now: float, channels: Collection[Channel] = ...
    ) -> dict[UserId, Reach]:
        """Which of ``channels`` (default: push, webhook, email, sms and live) can reach
        each person, and why the others cannot. People none of them could reach (no
        device, no profile, no open stream) are left out: they are ``NOWHERE``."""
        ...

    async def prune(
        self, now: float, *, stale_after_s: float, expire_after_s: float
    ) -> tuple[int, int]:
        """Mark devices unseen for a while stale, and expire the long-gone; (stale, expired)."""
        ...


class TemplateStore(Protocol):
    async def put(self, template_id: str, doc: JSONObject, at: float, actor: str) -> int:
        """Store a new version; returns its number (1, 2, …)."""
        ...

    async def get(self, template_id: str, version: int | None = None) -> TemplateVersion | None: ...
    async def versions(self, template_id: str) -> list[int]: ...


class ProviderStore(Protocol):
    async def put(self, name: str, doc: JSONObject, at: float) -> None: ...
    async def get(self, name: str) -> JSONObject | None: ...
    async def all(self) -> dict[str, JSONObject]: ...
    async def delete(self, name: str) -> bool: ...


class ProviderTokenStore(Protocol):
    """A credential every worker shares (the APNs provider token)."""

    async def current(self, name: str) -> tuple[str, float] | None: ...

    async def replace(
        self, name: str, token: str, issued_at: float, *, expected: float | None
    ) -> bool:
        """Store ``token`` if the current one was issued at ``expected`` (compare-and-set)."""
        ...


class StatusHookStore(Protocol):
    async def create(self, hook: StatusHook) -> None: ...
    async def list(self, sender: str | None) -> list[StatusHook]: ...
    async def delete(self, hook_id: str, sender: str | None) -> bool: ...
    async def disable(self, hook_id: str, at: float) -> None: ...


class SecretStore(Protocol):
    async def get_or_create(self, name: str, make: Callable[[], str]) -> str: ...


class ProviderHealthStore(Protocol):
    """Each provider's breaker and send buckets (``resilience.breaker``), shared by workers."""

    async def update(self, provider: str, change: Callable[[Health], tuple[Health, T]]) -> T:
        """Apply ``change`` to the provider's record atomically (a fresh record if none);
        store what it returns first, return what it returns second."""
        ...

    async def all(self) -> dict[str, Health]: ...


class SenderGuardStore(Protocol):
    """Senders whose events keep dying in the pipeline: strikes, and the cut-off."""

    async def strike(
        self, sender: str, error: str, now: float, *, limit: int, window_s: float
    ) -> bool:
        """Count a dead-lettered event against ``sender``; block the sender (and return
        True) when this makes ``limit`` within ``window_s``."""
        ...

    async def blocked(self) -> dict[str, tuple[float, str]]:
        """Blocked senders: when, and why."""
        ...

    async def unblock(self, sender: str) -> bool: ...


class StatsStore(Protocol):
    async def record(self, worker: str, stats: Sequence[StageStats], now: float) -> None:
        """The worker's cumulative counters, and its heartbeat (it is alive at ``now``)."""
        ...

    async def all(self) -> list[StageStats]: ...

    async def beats(self) -> dict[str, float]:
        """Each worker's last heartbeat."""
        ...


class ScheduleStore(Protocol):
    async def create(self, schedule: Schedule) -> None: ...

    async def get(self, schedule_id: str) -> Schedule | None: ...

    async def listed(self, sender: str | None) -> list[Schedule]:
        """``sender``'s schedules (every one for None), oldest first."""
        ...

    async def delete(self, schedule_id: str, sender: str | None) -> bool: ...

    async def due(self, now: float, limit: int) -> list[Schedule]: ...

    async def advance(self, schedule_id: str, was: float, to: float, ran_at: float) -> bool:
        """Move the next run from ``was`` to ``to``, if nobody else did: the one scheduler
        that moves it is the one that ran it."""
        ...


class AudienceStore(Protocol):
    async def add_members(self, audience_id: str, user_ids: Sequence[UserId]) -> None:
        """Part of an upload (repeats within and across parts are kept once)."""
        ...

    async def publish(self, audience: Audience) -> Audience:
        """Make an uploaded audience visible, with its size counted; returns it."""
        ...

    async def discard(self, audience_id: str) -> None:
        """Drop an upload that failed half-way, or a published audience."""
        ...

    async def get(self, audience_id: str) -> Audience | None: ...

    async def listed(self, sender: str | None) -> list[Audience]: ...

    async def page(self, audience_id: str, after: str | None, limit: int) -> list[UserId]:
        """Members in id order after ``after`` (a campaign's expansion checkpoint)."""
        ...


class CampaignStore(Protocol):
    """Campaigns, and their expansion under a lease with a fencing token
    (``backends.sqlite.stores.campaigns`` says how each call is fenced)."""

    async def create(self, campaign: Campaign) -> None: ...

    async def get(self, campaign_id: str) -> Campaign | None: ...

    async def listed(self, sender: str | None) -> list[Campaign]: ...

    async def move(self, campaign_id: str, action: str, now: float) -> Campaign | None: ...

    async def raise_rollout(
        self, campaign_id: str, percent: int, now: float
    ) -> Campaign | None: ...

    async def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[Campaign]: ...

    async def begin(self, campaign: Campaign, event: Event, now: float) -> int | None: ...

    async def advance(
        self,
        campaign: Campaign,
        outbound: Sequence[Outbound],
        *,
        cursor: str | None,
        band: tuple[int, int],
        targeted: int,
        finished: bool,
        paced_until: float,
        lease_until: float,
        now: float,
    ) -> bool: ...
