"""What travels on the queues between stages, and its wire form (JSON via orjson).

Every message carries an ``EventHeader``: the event facts each stage needs, resolved once at
ingest, so no stage has to look the event up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from clarion.broker import Outbound
from clarion.models import Channel, Event, FanOut, Priority
from clarion.topics import EVALUATE, FANOUT, topic
from clarion.types import EventId, Seq, UserId


class MessageError(ValueError):
    """A message body that cannot be decoded: it goes to the dead-letter queue at once."""


@dataclass(frozen=True, slots=True)
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
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EventHeader:
        return cls(
            seq=Seq(int(doc["seq"])),
            event_id=EventId(doc["event_id"]),
            type=str(doc["type"]),
            priority=Priority(doc["priority"]),
            sender=str(doc["sender"]),
            actor=doc["actor"],
            object=doc["object"],
            channels=tuple(Channel(c) for c in doc["channels"]),
            created_at=float(doc["created_at"]),
            expires_at=float(doc["expires_at"]),
            mandatory=bool(doc["mandatory"]),
        )


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

    def encode(self) -> Outbound:
        doc = {
            "header": self.header.to_json(),
            "fan_out": self.fan_out.value,
            "batch_no": self.batch_no,
            "cursor": self.cursor,
            "recipients": list(self.recipients),
        }
        return Outbound(topic(FANOUT, self.header.priority), orjson.dumps(doc))

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
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"not a fan-out task: {exc}") from exc

    @classmethod
    def first(cls, event: Event, seq: Seq) -> Outbound:
        """The task ingest enqueues for a freshly accepted event."""
        return cls(
            header=EventHeader.of(event, seq),
            fan_out=event.fan_out,
            recipients=event.direct_recipients,
        ).encode()


@dataclass(frozen=True, slots=True)
class RecipientBatch:
    """Up to ``batch_size`` recipients of one event, identified by a deterministic key."""

    header: EventHeader
    batch_key: str
    recipients: list[UserId]

    def encode(self, *, delay_s: float = 0.0) -> Outbound:
        doc = {
            "header": self.header.to_json(),
            "batch_key": self.batch_key,
            "recipients": self.recipients,
        }
        return Outbound(topic(EVALUATE, self.header.priority), orjson.dumps(doc), delay_s)

    @classmethod
    def decode(cls, body: bytes) -> RecipientBatch:
        try:
            doc = orjson.loads(body)
            return cls(
                header=EventHeader.from_json(doc["header"]),
                batch_key=str(doc["batch_key"]),
                recipients=doc["recipients"],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"not a recipient batch: {exc}") from exc
