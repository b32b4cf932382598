"""What travels on the queues between stages, and its wire form (JSON via orjson).

Every message carries an ``EventHeader``: the event facts each stage needs, resolved once at
ingest, so no stage has to look the event up again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from clarion.broker import Outbound
from clarion.models import (
    DEFAULT_BUDGETS,
    Channel,
    Event,
    FanOut,
    Overflow,
    Priority,
    RetryBudget,
    Routing,
)
from clarion.policy.aggregation import WindowSummary
from clarion.stores.records import FirstSteps, PartitionRef
from clarion.topics import EVALUATE, FANOUT, topic
from clarion.tracing import trace_id_of
from clarion.types import EventId, Seq, UserId

_PRIORITIES = {p.value: p for p in Priority}
_CHANNELS = {c.value: c for c in Channel}
_ROUTINGS = {r.value: r for r in Routing}
_OVERFLOWS: dict[str | None, Overflow] = {o.value: o for o in Overflow}
_CHANNEL_SETS: dict[tuple[str, ...], tuple[Channel, ...]] = {}


def _channels(names: list[str]) -> tuple[Channel, ...]:
    key = tuple(names)
    found = _CHANNEL_SETS.get(key)
    if found is None:
        found = _CHANNEL_SETS[key] = tuple(_CHANNELS[n] for n in names)
    return found


class MessageError(ValueError):
    """A message body that cannot be decoded: it goes to the dead-letter queue at once."""


# Hashed by value (``header_doc``) but not frozen: decoded for every batch of every claim
# (see ``models.Event``). Nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class EventHeader:
    seq: Seq
    event_id: EventId
    type: str
    priority: Priority
    sender: str
    actor: str | None
    object: str | None
    channels: tuple[Channel, ...]
    created_at: float
    expires_at: float
    mandatory: bool
    default_enabled: bool = True
    campaign: str | None = None
    routing: Routing = Routing.FIRST
    retry: RetryBudget | None = None
    aggregate_s: int = 0
    """The type's aggregation window (``pipeline.aggregate``); 0: never aggregated."""
    overflow: Overflow | None = None
    collapse_key: str | None = None
    """Latest wins per (recipient, collapse key) (``pipeline.collapse``)."""
    traceparent: str | None = None
    """The producer's W3C trace context: every log line about the event names its trace."""

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.traceparent)

    @property
    def budget(self) -> RetryBudget:
        """The type's retry budget, else the event's priority's."""
        return self.retry or DEFAULT_BUDGETS[self.priority]

    @classmethod
    def of(cls, event: Event, seq: Seq) -> EventHeader:
        return cls(
            seq=seq,
            event_id=event.event_id,
            type=event.type,
            priority=event.priority,
            sender=event.sender,
            actor=event.actor,
            object=event.object,
            channels=event.channels,
            created_at=event.created_at,
            expires_at=event.expires_at,
            mandatory=event.mandatory,
            default_enabled=event.default_enabled,
            campaign=event.campaign,
            routing=event.routing,
            retry=event.retry,
            aggregate_s=event.aggregate_s,
            overflow=event.overflow,
            collapse_key=event.collapse_key,
            traceparent=event.traceparent,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "type": self.type,
            "priority": self.priority.value,
            "sender": self.sender,
            "actor": self.actor,
            "object": self.object,
            "channels": [c.value for c in self.channels],
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "mandatory": self.mandatory,
            "default_enabled": self.default_enabled,
            "campaign": self.campaign,
            "routing": self.routing.value,
            "retry": None if self.retry is None else [self.retry.retries, self.retry.within_s],
            "aggregate_s": self.aggregate_s,
            "overflow": None if self.overflow is None else self.overflow.value,
            "collapse_key": self.collapse_key,
            "traceparent": self.traceparent,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EventHeader:
        # Decoded once per batch, and a packed message holds hundreds of batches: enum
        # members come from lookup tables (calling Channel(c) costs ten times as much).
        return cls(
            Seq(int(doc["seq"])),
            EventId(doc["event_id"]),
            str(doc["type"]),
            _PRIORITIES[doc["priority"]],
            str(doc["sender"]),
            doc["actor"],
            doc["object"],
            _channels(doc["channels"]),
            float(doc["created_at"]),
            float(doc["expires_at"]),
            bool(doc["mandatory"]),
            bool(doc.get("default_enabled", True)),
            doc.get("campaign"),
            _ROUTINGS[doc.get("routing", "first")],
            None if not doc.get("retry") else RetryBudget(*doc["retry"]),
            int(doc.get("aggregate_s") or 0),
            _OVERFLOWS.get(doc.get("overflow")),
            doc.get("collapse_key"),
            doc.get("traceparent"),
        )


@functools.lru_cache(maxsize=1024)
def header_doc(header: EventHeader) -> dict[str, Any]:
    """A header's JSON, made once per event: a claim's held and routed batches all repeat
    their event's header. Shared, so only ever read (orjson serialises it)."""
    return header.to_json()


@dataclass(frozen=True, slots=True)
class FanoutTask:
    """Resolve (part of) an event's recipients, starting at batch ``batch_no``.

    A follower fan-out is done in turns: each turn produces a bounded number of batches and
    hands the rest to a continuation task carrying the keyset ``cursor``.
    """

    header: EventHeader
    fan_out: FanOut
    batch_no: int = 0
    cursor: UserId | None = None
    recipients: tuple[UserId, ...] = ()
    generation: int | None = None
    """Set: this fan-out hands out the actor's precomputed partitions of that generation
    (``pipeline.partitions``), batch ``n`` being partition ``n``."""

    def encode(self, *, delay_s: float = 0.0) -> Outbound:
        doc = {
            "header": header_doc(self.header),
            "fan_out": self.fan_out.value,
            "batch_no": self.batch_no,
            "cursor": self.cursor,
            "recipients": list(self.recipients),
            "generation": self.generation,
        }
        return Outbound(topic(FANOUT, self.header.priority), orjson.dumps(doc), delay_s)

    @classmethod
    def decode(cls, body: bytes) -> FanoutTask:
        try:
            doc = orjson.loads(body)
            return cls(
                header=EventHeader.from_json(doc["header"]),
                fan_out=FanOut(doc["fan_out"]),
                batch_no=int(doc["batch_no"]),
                cursor=doc["cursor"],
                recipients=tuple(UserId(u) for u in doc["recipients"]),
                generation=doc.get("generation"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"not a fan-out task: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RecipientBatch:
    """Up to ``batch_size`` recipients of one event, identified by a deterministic key."""

    header: EventHeader
    batch_key: str
    recipients: list[UserId]
    part: PartitionRef | None = None
    """Set: the recipients are this precomputed partition's members, read by evaluation."""
    summary_of: int | None = None
    """Set: the summary of this aggregation window of the recipient's key is due
    (``pipeline.aggregate``); the header is the event that scheduled it."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "header": header_doc(self.header),
            "batch_key": self.batch_key,
            "recipients": self.recipients,
        }
        if self.part is not None:
            p = self.part
            doc["part"] = [p.creator, p.generation, p.part_no, p.after, p.upto]
        if self.summary_of is not None:
            doc["summary_of"] = self.summary_of
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RecipientBatch:
        part = doc.get("part")
        return cls(
            header=EventHeader.from_json(doc["header"]),
            batch_key=str(doc["batch_key"]),
            recipients=doc["recipients"],
            part=None if part is None else PartitionRef(*part),
            summary_of=doc.get("summary_of"),
        )


def encode_batches(batches: list[RecipientBatch], *, delay_s: float = 0.0) -> Outbound:
    """One evaluate message carrying one or more batches (all of the same priority).

    A fan-out batch travels alone; ingest packs many small direct events (OTPs, likes) into
    one message, so a worker claims, records and acks hundreds of them as one unit.
    """
    doc = {"batches": [b.to_json() for b in batches]}
    return Outbound(topic(EVALUATE, batches[0].header.priority), orjson.dumps(doc), delay_s)


def decode_batches(body: bytes) -> list[RecipientBatch]:
    try:
        return [RecipientBatch.from_json(d) for d in orjson.loads(body)["batches"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"not a recipient batch message: {exc}") from exc


def plan_first_steps(accepted: Sequence[tuple[Event, Seq]], *, batch_size: int) -> FirstSteps:
    """Direct events whose recipients fit in one batch skip the fan-out stage: their batch
    goes straight to evaluation (the P0 fast path), packed with other such events of the same
    priority up to ``batch_size`` recipients per message. Everything else starts fan-out."""
    outbound: list[Outbound] = []
    progress: list[tuple[int, int]] = []
    packs: dict[Priority, list[RecipientBatch]] = {}
    sizes: dict[Priority, int] = {}
    for event, seq in accepted:
        header = EventHeader.of(event, seq)
        recipients = event.direct_recipients
        wait = 0.0 if event.send_at is None else max(event.send_at - event.created_at, 0.0)
        # Scheduled events start at fan-out too, where a cancellation is seen in time.
        if event.fan_out is not FanOut.DIRECT or len(recipients) > batch_size or wait:
            task = FanoutTask(header, event.fan_out, recipients=recipients)
            outbound.append(task.encode(delay_s=wait))
            progress.append((0, 0))
            continue
        pack = packs.setdefault(event.priority, [])
        if pack and sizes[event.priority] + len(recipients) > batch_size:
            outbound.append(encode_batches(pack))
            pack = packs[event.priority] = []
            sizes[event.priority] = 0
        pack.append(RecipientBatch(header, "0", list(recipients)))
        sizes[event.priority] = sizes.get(event.priority, 0) + len(recipients)
        progress.append((1, len(recipients)))
    outbound.extend(encode_batches(pack) for pack in packs.values() if pack)
    return FirstSteps(outbound, progress)


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    """Recipients of one event on one channel. A retry carries ``only``: per recipient, the
    addresses still to do (a push that reached two phones of three retries the third)."""

    header: EventHeader
    channel: Channel
    batch_key: str
    recipients: list[UserId]
    attempt: int = 1
    only: dict[str, list[str]] | None = None
    counted: list[UserId] = field(default_factory=list)
    """Recipients this event already counted as delivered on an earlier attempt."""
    fallbacks: dict[UserId, tuple[Channel, ...]] = field(default_factory=dict)
    """Per recipient, the channels to try next, in order, if this one cannot deliver."""
    first_at: float | None = None
    """When the first attempt was made: the retry budget's window starts there."""
    deferrals: int = 0
    """Times the batch was put back unsent (a provider's rate limit): not attempts."""
    summary: WindowSummary | None = None
    """Set: this is an aggregation window's summary ("Bob, Carol and 47 others…")."""
    digest_due: float | None = None
    """Set: send the recipient's digest due at this time (``pipeline.digests``)."""
    claims: int = 1
    """Which claim of its queue message this is (not encoded: the broker counts). Past the
    first, a worker that held it died or failed mid-send, and may have sent some of it."""

    def encode(self, *, delay_s: float = 0.0) -> Outbound:
        doc = {
            "header": header_doc(self.header),
            "channel": self.channel.value,
            "batch_key": self.batch_key,
            "recipients": self.recipients,
            "attempt": self.attempt,
            "only": self.only,
            "counted": self.counted,
            "first_at": self.first_at,
            "deferrals": self.deferrals,
            "fallbacks": _group_chains(self.fallbacks),
            "summary": None if self.summary is None else self.summary.to_json(),
            "digest_due": self.digest_due,
        }
        return Outbound(topic(self.channel.value, self.header.priority), orjson.dumps(doc), delay_s)

    @classmethod
    def decode(cls, body: bytes) -> DeliveryBatch:
        try:
            doc = orjson.loads(body)
            return cls(
                header=EventHeader.from_json(doc["header"]),
                channel=_CHANNELS[doc["channel"]],
                batch_key=str(doc["batch_key"]),
                recipients=doc["recipients"],
                attempt=int(doc["attempt"]),
                only=doc.get("only"),
                counted=doc.get("counted") or [],
                fallbacks=_ungroup_chains(doc.get("fallbacks") or {}),
                first_at=doc.get("first_at"),
                deferrals=int(doc.get("deferrals") or 0),
                summary=None if not doc.get("summary") else WindowSummary.from_json(doc["summary"]),
                digest_due=doc.get("digest_due"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"not a delivery batch: {exc}") from exc


def _group_chains(chains: dict[UserId, tuple[Channel, ...]]) -> dict[str, list[UserId]]:
    """``{"email,sms": [users…]}``: most people of a batch share a chain, so it is written
    once instead of once per person."""
    grouped: dict[str, list[UserId]] = {}
    for user, chain in chains.items():
        if chain:
            grouped.setdefault(",".join(chain), []).append(user)
    return grouped


def _ungroup_chains(grouped: dict[str, list[str]]) -> dict[UserId, tuple[Channel, ...]]:
    return {
        UserId(user): _channels(chain.split(","))
        for chain, users in grouped.items()
        for user in users
    }


def message_id(event_id: EventId, user: UserId, address_ref: str) -> str:
    """The same for every attempt at one (event, person, address): receivers dedup on it."""
    return f"{event_id}.{user}.{address_ref}"


def senders_of(item: object) -> set[str]:
    """Who sent the event(s) a decoded pipeline message carries (for the sender guard)."""
    if isinstance(item, FanoutTask | DeliveryBatch):
        return {item.header.sender}
    if isinstance(item, list):
        return {b.header.sender for b in item if isinstance(b, RecipientBatch)}
    return set()


@dataclass(frozen=True, slots=True)
class Summary:
    """What a queued or dead message is about, for people looking at it."""

    event_ids: list[str]
    senders: list[str]
    recipients: int
    batch_keys: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)

    def log_fields(self) -> dict[str, Any]:
        """For a log line about the message: one value each, or the list when several."""
        fields: dict[str, Any] = {}
        for name, values in (
            ("event_id", self.event_ids),
            ("batch_key", self.batch_keys),
            ("trace_id", self.trace_ids),
        ):
            if values:
                fields[name] = values[0] if len(values) == 1 else values
        return fields


def summarize(topic_name: str, body: bytes) -> Summary | None:
    """The events, senders and recipient count a message carries; None if it is not one
    of the pipeline's (or cannot be read)."""
    stage = topic_name.partition(".")[0]
    try:
        if stage == FANOUT:
            task = FanoutTask.decode(body)
            return _summary([task.header], [], len(task.recipients))
        if stage == EVALUATE:
            batches = decode_batches(body)
            recipients = sum(len(b.recipients) for b in batches)
            return _summary([b.header for b in batches], [b.batch_key for b in batches], recipients)
        delivery = DeliveryBatch.decode(body)
    except MessageError:
        return None
    return _summary([delivery.header], [delivery.batch_key], len(delivery.recipients))


def _summary(headers: list[EventHeader], batch_keys: list[str], recipients: int) -> Summary:
    return Summary(
        sorted({h.event_id for h in headers}),
        sorted({h.sender for h in headers}),
        recipients,
        batch_keys,
        sorted({t for h in headers if (t := h.trace_id)}),
    )
