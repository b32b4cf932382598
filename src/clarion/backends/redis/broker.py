"""The scale-out broker: one Redis stream per topic, one consumer group shared by all workers.

Same semantics as the embedded broker (``clarion.broker.base``), spread over machines:

* Workers are competing consumers in the group ``clarion``: ``XREADGROUP`` hands each entry
  to one of them, and the group's pending-entries list remembers who holds what and how
  many times it was delivered.
* A lease is a deadline in a sorted set; the first consumer to find a deadline passed takes
  the entry over with ``XCLAIM`` (which counts a delivery). That is how the batch of a
  SIGKILLed worker is finished by another, and the delivery count feeds the dead-letter
  policy: an entry handed out ``max_attempts`` times goes to the topic's dead-letter stream.
* Acked entries are deleted, so a stream holds exactly the work still to do. Streams are
  never trimmed with ``MAXLEN`` (that would drop unacked work); their length is bounded by
  the pipeline's backpressure instead (fan-out pauses, ingest sheds under load).
* Every state change is one Lua script (``redis_scripts``), atomic on the server.

Durability is Redis's: run it with ``appendonly yes`` (``appendfsync everysec`` survives any
Redis process crash; ``always`` also survives power loss).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.backends.redis.scripts import ACK, BURY, CLAIM, NACK, RENEW
from clarion.broker.base import DeadLetter, Message, Outbound, Record, settle_in_order
from clarion.clock import Clock

_GROUP = "clarion"
_TOPICS = "clarion:topics"
_NEWS = "clarion:news"


def _key(topic: str, part: str) -> str:
    return f"clarion:{{{topic}}}:{part}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dead(topic: str, entry_id: Any, raw: Any) -> DeadLetter:
    """A dead-letter stream entry (redis-py types its replies loosely)."""
    return DeadLetter(
        id=f"{topic}:{_text(entry_id)}",
        topic=topic,
        body=raw[b"b"],
        attempts=int(raw[b"a"]),
        error=raw[b"r"].decode(),
        enqueued_at=float(raw[b"e"]),
        failed_at=float(raw[b"f"]),
    )


class RedisBroker:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        lease_s: float = 30.0,
        max_attempts: int = 5,
    ) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._clock = clock
        self.lease_s = lease_s
        self._max_attempts = max_attempts
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("claim", CLAIM),
                ("renew", RENEW),
                ("ack", ACK),
                ("nack", NACK),
                ("bury", BURY),
            )
        }
        self._pubsub: Any = None

    @property
    def clock(self) -> Clock:
        return self._clock

    async def publish(self, messages: Sequence[Outbound]) -> None:
        if not messages:
            return
        now = self._clock.now()
        pipe = self._redis.pipeline(transaction=False)
        for m in messages:
            if m.dead_letter is not None:
                pipe.xadd(
                    _key(m.topic, "dead"),
                    {"t": m.topic, "b": m.body, "a": 0, "e": now, "r": m.dead_letter, "f": now},
                )
            elif m.delay_s > 0:
                member = f"{uuid.uuid4().hex}|0|{now!r}"
                pipe.hset(_key(m.topic, "bodies"), member, m.body)
                pipe.zadd(_key(m.topic, "delayed"), {member: now + m.delay_s})
            else:
                pipe.xadd(_key(m.topic, "stream"), {"b": m.body, "a": 0, "e": now})
        pipe.sadd(_TOPICS, *{m.topic for m in messages})
        pipe.publish(_NEWS, b"")
        await pipe.execute()

    async def consume(self, topic: str, *, limit: int) -> list[Message]:
        now = self._clock.now()
        flat = await self._scripts["claim"](
            keys=[_key(topic, p) for p in ("stream", "leases", "delayed", "bodies", "dead")],
            args=[
                _GROUP,
                self._consumer,
                limit,
                repr(now),
                repr(now + self.lease_s),
                self._max_attempts,
                topic,
                f"handed out {self._max_attempts} times without an ack (did its worker die?)",
            ],
        )
        return [
            Message(
                id=_text(flat[i]),
                topic=topic,
                body=flat[i + 1],
                attempts=int(flat[i + 2]),
                enqueued_at=float(flat[i + 3]),
                lease=f"{self._consumer}:{int(flat[i + 4])}",
            )
            for i in range(0, len(flat), 5)
        ]

    async def renew(self, messages: Sequence[Message]) -> None:
        until = repr(self._clock.now() + self.lease_s)
        for topic, held in _by_topic(messages):
            await self._scripts["renew"](
                keys=[_key(topic, "stream"), _key(topic, "leases")],
                args=[_GROUP, until, *_id_lease_pairs(held)],
            )

    async def ack(self, messages: Sequence[Message]) -> None:
        for topic, held in _by_topic(messages):
            await self._scripts["ack"](
                keys=[_key(topic, "stream"), _key(topic, "leases")],
                args=[_GROUP, *_id_lease_pairs(held)],
            )

    async def nack(self, message: Message, *, delay_s: float) -> None:
        t = message.topic
        await self._scripts["nack"](
            keys=[_key(t, p) for p in ("stream", "leases", "delayed", "bodies")],
            args=[
                _GROUP,
                message.id,
                message.lease,
                message.body,
                message.attempts,
                repr(message.enqueued_at),
                repr(self._clock.now() + delay_s),
            ],
        )

    async def dead_letter(self, message: Message, *, error: str) -> None:
        t = message.topic
        await self._scripts["bury"](
            keys=[_key(t, "stream"), _key(t, "leases"), _key(t, "dead")],
            args=[
                _GROUP,
                message.id,
                message.lease,
                t,
                message.body,
                message.attempts,
                repr(message.enqueued_at),
                error,
                repr(self._clock.now()),
            ],
        )

    async def _topics(self) -> list[str]:
        return sorted(_text(t) for t in await self._redis.smembers(_TOPICS))

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        topics = await self._topics()
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.xrevrange(_key(topic, "dead"), count=limit)
        found = [
            _dead(topic, entry_id, raw)
            for topic, entries in zip(topics, await pipe.execute(), strict=True)
            for entry_id, raw in entries
        ]
        # Newest first across topics: by failure time, then by stream id (milliseconds).
        found.sort(key=lambda d: (d.failed_at, _stream_order(d.id)), reverse=True)
        return found[:limit]

    async def dead_letter_by_id(self, dead_id: str) -> DeadLetter | None:
        topic, _, entry_id = dead_id.rpartition(":")
        if not topic or not _valid_stream_id(entry_id):
            return None
        entries = await self._redis.xrange(_key(topic, "dead"), entry_id, entry_id)
        return _dead(topic, entries[0][0], entries[0][1]) if entries else None

    async def replay(self, dead_id: str) -> bool:
        found = await self.dead_letter_by_id(dead_id)
        if found is None:
            return False
        # Publish first: a crash in between leaves a copy in both (harmless, dedup), never none.
        await self.publish([Outbound(found.topic, found.body)])
        await self._redis.xdel(_key(found.topic, "dead"), dead_id.rpartition(":")[2])
        return True

    async def purge(self, dead_id: str | None = None) -> int:
        if dead_id is not None:
            found = await self.dead_letter_by_id(dead_id)
            if found is None:
                return 0
            return int(
                await self._redis.xdel(_key(found.topic, "dead"), dead_id.rpartition(":")[2])
            )
        gone = 0
        for topic in await self._topics():
            key = _key(topic, "dead")
            gone += int(await self._redis.xlen(key))
            await self._redis.delete(key)
        return gone

    async def settle(
        self, messages: Sequence[Message], outbound: Sequence[Outbound], records: Sequence[Record]
    ) -> None:
        await settle_in_order(self, messages, outbound, records)

    async def running_low(self, topic: str, below: int) -> bool:
        return await self.depth(topic) < below

    async def depth(self, topic: str) -> int:
        return (await self._depths([topic]))[topic]

    async def depths(self) -> dict[str, int]:
        found = await self._depths(await self._topics())
        return {topic: n for topic, n in found.items() if n}

    async def _depths(self, topics: Sequence[str]) -> dict[str, int]:
        now = self._clock.now()
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.xlen(_key(topic, "stream"))  # ready and in flight
            pipe.zcount(_key(topic, "delayed"), "-inf", now)  # delayed, and due
        counts = await pipe.execute()
        return {t: int(counts[2 * i]) + int(counts[2 * i + 1]) for i, t in enumerate(topics)}

    async def held(self) -> dict[str, int]:
        topics = await self._topics()
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.zcount(_key(topic, "delayed"), f"({self._clock.now()!r}", "+inf")
        counts = await pipe.execute()
        return {t: int(n) for t, n in zip(topics, counts, strict=True) if n}

    async def oldest(self, now: float) -> dict[str, float]:
        """The stream's first entry (ready or in flight), and delayed ones already due."""
        topics = await self._topics()
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.xrange(_key(topic, "stream"), count=1)
            pipe.zrangebyscore(_key(topic, "delayed"), "-inf", now, start=0, num=1)
        answers = await pipe.execute()
        found: dict[str, float] = {}
        for i, topic in enumerate(topics):
            first, due = answers[2 * i], answers[2 * i + 1]
            times = [float(first[0][1][b"e"])] if first else []
            times += [float(_text(due[0]).rpartition("|")[2])] if due else []
            if times:
                found[topic] = min(times)
        return found

    async def dead_letter_count(self) -> int:
        topics = await self._topics()
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.xlen(_key(topic, "dead"))
        return sum(int(n) for n in await pipe.execute())

    async def wait(self, timeout_s: float) -> None:
        await self.news(timeout_s)

    async def news(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for any publish; True if one came (or had come)."""
        try:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(_NEWS)
            came = False
            while await self._pubsub.get_message(timeout=0.0) is not None:
                came = True  # announced while we were busy: look again right away
            if came or timeout_s <= 0:
                return came
            return await self._pubsub.get_message(timeout=timeout_s) is not None
        except (RedisError, OSError):
            # Redis went away: subscribe afresh next time; until then, plain polling.
            pubsub, self._pubsub = self._pubsub, None
            if pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            return True

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        await self._redis.aclose()


def _by_topic(messages: Iterable[Message]) -> list[tuple[str, list[Message]]]:
    grouped: dict[str, list[Message]] = {}
    for m in messages:
        grouped.setdefault(m.topic, []).append(m)
    return list(grouped.items())


def _id_lease_pairs(messages: Iterable[Message]) -> list[str]:
    return [part for m in messages for part in (m.id, m.lease)]


def _valid_stream_id(entry_id: str) -> bool:
    ms, dash, seq = entry_id.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit()


def _stream_order(dead_id: str) -> tuple[int, int]:
    ms, _, seq = dead_id.rpartition(":")[2].partition("-")
    return int(ms), int(seq)
