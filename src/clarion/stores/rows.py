"""Rows → records, shared by the backends: both select the same columns in the same order,
so a stored row reads back the same whichever database held it."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from clarion.live.log import Entry, Kind, Post
from clarion.models import (
    Channel,
    DeviceState,
    EventState,
    EventStatus,
    Outcome,
    Platform,
    Priority,
    SenderKey,
)
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.stores.records import (
    NOWHERE,
    Address,
    Aggregate,
    AuditEntry,
    BatchResult,
    Device,
    InboxItem,
    Reach,
    StatusHook,
)
from clarion.types import EventId, Seq, UserId

KEY_COLUMNS = "key_id, sender, types, rate_per_s, admin, created_at, revoked_at"
DEVICE_COLUMNS = (
    "user_id, device_id, platform, token, meta, app_version, state, registered_at, last_seen,"
    " invalidated_at, reason"
)
SWITCH_COLUMNS = "id, kind, value, reason, created_at, created_by, lifted_at, lifted_by"


def status_columns(json_object_of: str) -> str:
    """An ``EventStatus`` row from ``events``; ``json_object_of`` is the backend's name for
    the aggregate that makes a JSON object of (key, value) rows, for the suppressions."""
    return (
        "event_id, type, priority, state, recipients, batches_total, batches_done, delivered,"
        " suppressed, held, failed, created_at, first_delivery_at, completed_at, sender, error,"
        f" substr(traceparent, 4, 32), actor, (SELECT {json_object_of}(s.reason, s.people)"
        " FROM suppressions s WHERE s.seq = events.seq)"
    )


HOOK_COLUMNS = "id, sender, url, events, secrets, created_at, disabled_at"
INBOX_COLUMNS = (
    "i.seq, e.event_id, e.type, e.actor, e.object, e.title, e.body, e.created_at,"
    " i.read_at IS NOT NULL, e.template, e.template_version,"
    " CASE WHEN e.template IS NULL THEN '{}' ELSE e.payload END, i.aggregate"
)

SUPERSEDED_OUTCOME = (Channel.IN_APP.value, Outcome.SUPPRESSED, "superseded")
"""An in-app entry a newer one of its collapse key beat: channel, outcome, reason."""

DELIVERABLE = "('active', 'stale')"
PUSH_PLATFORMS = "('ios', 'android', 'web')"


OUTSIDE = (Channel.PUSH, Channel.WEBHOOK, Channel.EMAIL, Channel.SMS, Channel.LIVE)
"""The channels ``Reach`` answers for, in ``reach_query`` column order."""


def reach_query(wanted: Sequence[Channel], users_from: str, user: str, now: str) -> str:
    """Per channel of ``wanted`` (in ``OUTSIDE`` order), NULL if it reaches the person,
    else why not — for only the people one of them could reach: everyone else is
    ``NOWHERE`` (no device, no profile, no open stream), which most of a fan-out is.
    ``users_from`` yields the ids as column ``user``; ``now`` is the time's parameter."""
    device = f"SELECT 1 FROM devices d WHERE d.user_id = {user} AND d.state IN {DELIVERABLE}"
    stream = f"SELECT 1 FROM stream_heads h WHERE h.user_id = {user} AND h.active_until > {now}"
    push = f"EXISTS ({device} AND d.platform IN {PUSH_PLATFORMS})"
    webhook = f"EXISTS ({device} AND d.platform = 'webhook')"
    live = f"EXISTS ({stream})"
    columns = {
        Channel.PUSH: (f"CASE WHEN {push} THEN NULL ELSE 'no active push device' END", push),
        Channel.WEBHOOK: (
            f"CASE WHEN {webhook} THEN NULL ELSE 'no webhook endpoint registered' END",
            webhook,
        ),
        Channel.EMAIL: (
            """CASE WHEN u.email IS NULL THEN 'no email address'
               WHEN NOT u.email_verified THEN 'email address not verified'
               WHEN u.email_bounced_at IS NOT NULL THEN 'email address bounced' END""",
            "u.email IS NOT NULL",
        ),
        Channel.SMS: (
            """CASE WHEN u.phone IS NULL THEN 'no phone number'
               WHEN NOT u.phone_verified THEN 'phone number not verified' END""",
            "u.phone IS NOT NULL",
        ),
        Channel.LIVE: (f"CASE WHEN {live} THEN NULL ELSE 'no device listening' END", live),
    }
    chosen = [columns[c] for c in OUTSIDE if c in wanted]
    profile = any(c in wanted for c in (Channel.EMAIL, Channel.SMS))
    join = f" LEFT JOIN users u ON u.user_id = {user}" if profile else ""
    return (
        f"SELECT {user}, {', '.join(c for c, _ in chosen)} FROM {users_from}{join}"
        f" WHERE {' OR '.join(f'({w})' for _, w in chosen)}"
    )


_REACHES: dict[tuple[tuple[Channel, ...], tuple[str | None, ...]], Reach] = {}


def addresses(rows: Sequence[Sequence[Any]]) -> dict[UserId, list[Address]]:
    """Device rows ``(user_id, device_id, platform, token, meta, registered_at)``, on either
    database, as each person's addresses (a push platform named by its provider)."""
    found: dict[UserId, list[Address]] = {}
    for user, ref, kind, value, meta, registered in rows:
        provider = Platform(kind).provider if kind in Platform.__members__.values() else kind
        found.setdefault(UserId(user), []).append(
            Address(ref, provider, value, orjson.loads(meta), registered)
        )
    return found


def reach(wanted: tuple[Channel, ...], row: Sequence[Any]) -> Reach:
    """A ``reach_query`` row (after the user id), for the channels ``wanted`` (in
    ``OUTSIDE`` order). People share a handful of combinations, so each is built once;
    the channels not asked about read as not reaching, with ``NOWHERE``'s reason."""
    key = (wanted, tuple(row))
    found = _REACHES.get(key)
    if found is None:
        why_not = dict(NOWHERE.why_not)
        for channel, why in zip(wanted, key[1], strict=True):
            if why is None:
                del why_not[channel]
            else:
                why_not[channel] = why
        found = _REACHES[key] = Reach(frozenset(OUTSIDE) - why_not.keys(), why_not)
    return found


def key(row: Any) -> SenderKey:
    return SenderKey(
        key_id=row[0],
        sender=row[1],
        types=None if row[2] is None else frozenset(orjson.loads(row[2])),
        rate_per_s=row[3],
        admin=bool(row[4]),
        created_at=row[5],
        revoked_at=row[6],
    )


def device(row: Any) -> Device:
    return Device(
        UserId(row[0]),
        row[1],
        Platform(row[2]),
        row[3],
        orjson.loads(row[4]),
        row[5],
        DeviceState(row[6]),
        row[7],
        row[8],
        row[9],
        row[10],
    )


def switch(row: Any) -> KillSwitch:
    return KillSwitch(row[0], KillKind(row[1]), *row[2:])


def status(row: Any) -> EventStatus:
    return EventStatus(
        event_id=EventId(row[0]),
        type=row[1],
        priority=Priority(row[2]),
        state=EventState(row[3]),
        recipients=row[4],
        batches_total=row[5],
        batches_done=row[6],
        delivered=row[7],
        suppressed=row[8],
        held=row[9],
        failed=row[10],
        created_at=row[11],
        first_delivery_at=row[12],
        completed_at=row[13],
        sender=row[14],
        error=row[15],
        trace_id=row[16],
        actor=row[17],
        suppressed_by={} if row[18] is None else orjson.loads(row[18]),
    )


def cancel_sql(now: str, event_id: str) -> str:
    """Call off an event whose fan-out has not begun (a scheduled send before its time);
    one already on its way is left alone."""
    return (
        f"UPDATE events SET state = 'cancelled', completed_at = {now}, error = 'cancelled'"
        f" WHERE event_id = {event_id} AND state = 'accepted' AND fanout_next_batch = 0"
        " AND batches_total IS NULL"
    )


def hook(row: Any) -> StatusHook:
    return StatusHook(
        row[0],
        row[1],
        row[2],
        frozenset(orjson.loads(row[3])),
        tuple(orjson.loads(row[4])),
        row[5],
        row[6],
    )


def inbox_item(row: Any) -> InboxItem:
    return InboxItem(
        seq=Seq(row[0]),
        event_id=EventId(row[1]),
        type=row[2],
        actor=row[3],
        object=row[4],
        title=row[5],
        body=row[6],
        created_at=row[7],
        read=bool(row[8]),
        template=row[9],
        template_version=row[10],
        payload=orjson.loads(row[11]),
        aggregate=None if row[12] is None else aggregate_of(row[12]),
    )


def aggregate_of(raw: str | bytes) -> Aggregate:
    """An inbox entry's ``aggregate`` column: ``[count, [actors…], last_at]``."""
    count, actors, last_at = orjson.loads(raw)
    return Aggregate(int(count), tuple(actors), float(last_at))


def entry_rows(results: Sequence[BatchResult], now: float) -> list[tuple[UserId, Seq, str]]:
    """``(user, entry, [count, actors, now])`` per aggregate inbox entry the results bring
    up to date, the newest count of each (one statement may not touch a row twice)."""
    latest: dict[tuple[UserId, Seq], tuple[int, tuple[str, ...]]] = {}
    for result in results:
        for e in result.entries:
            held = latest.get((e.user_id, e.entry))
            if held is None or held[0] < e.count:
                latest[(e.user_id, e.entry)] = (e.count, e.actors)
    return [
        (user, entry, orjson.dumps([count, list(actors), now]).decode())
        for (user, entry), (count, actors) in latest.items()
    ]


def audit_entry(kind: str, subject: str, row: Any) -> AuditEntry:
    """From ``actor, at, before, after`` (JSON text or NULL)."""
    return AuditEntry(
        kind,
        subject,
        row[0],
        row[1],
        None if row[2] is None else orjson.loads(row[2]),
        None if row[3] is None else orjson.loads(row[3]),
    )


def suppression_rows(
    results: Sequence[BatchResult], kept: Sequence[list[UserId]]
) -> list[tuple[Seq, str, int]]:
    """``(seq, reason, people)`` for what these results suppressed, in (seq, reason) order
    (the order writers lock the counters in). Reasons are bounded labels (``no_channel``,
    not the channel's own why) and add up to the ``suppressed`` the event's progress counts:
    a suppression's log row names its reason; people no channel reaches have only per-channel
    rows (``no_channel``); entries the commit found superseded are ``superseded``."""
    counts: dict[tuple[Seq, str], int] = {}
    suppressed = Outcome.SUPPRESSED
    for result, users in zip(results, kept, strict=True):
        seq = result.seq
        # Counted by reason first (C), labelled once per reason: this runs in the commit.
        reasons = Counter(o.reason for o in result.outcomes if o.outcome is suppressed)
        for reason, n in reasons.items():
            key = (seq, label(reason))
            counts[key] = counts.get(key, 0) + n
        logged = reasons.total()
        for key, n in (
            ((seq, NO_CHANNEL), result.suppressed - logged),
            ((seq, SUPERSEDED_OUTCOME[2]), len(result.inbox) - len(users)),
        ):
            if n > 0:
                counts[key] = counts.get(key, 0) + n
    return [(seq, reason, n) for (seq, reason), n in sorted(counts.items())]


NO_CHANNEL = "no_channel"


def label(reason: str | None) -> str:
    """A bounded label for a reason: ``no_channel: email address not verified`` →
    ``no_channel``; ``aggregated: window 3, summary at …`` → ``aggregated``."""
    return (reason or "unknown").partition(":")[0].strip() or "unknown"


def kept(results: Sequence[BatchResult], dropped: set[tuple[int, UserId]]) -> list[list[UserId]]:
    """Each result's in-app entries but the ``(result index, user)`` that were dropped."""
    if not dropped:
        return [r.inbox for r in results]
    return [[u for u in r.inbox if (i, u) not in dropped] for i, r in enumerate(results)]


def digest_id(user_id: UserId, due_at: float) -> str:
    """The same for one person's digest due at one time, whoever takes it for sending."""
    digest = hashlib.sha256(f"{user_id}\x1f{due_at!r}".encode()).hexdigest()[:20]
    return f"dg_{digest}"


ENTRY_COLUMNS = "id, user_id, epoch, pos, kind, body, at, origin, critical"


_KINDS = {kind.value: kind for kind in Kind}


def entry_of(row: Any) -> Entry:
    """A stream_log row (``ENTRY_COLUMNS``), on either database: both give ints and floats
    as such. An API process reads one for every entry another process wrote (7,500 a
    second at seed 002's rate): 1.26 µs each with an enum call and conversions, 0.71 now."""
    return Entry(
        row[0], row[1], row[2], row[3], _KINDS[row[4]], orjson.loads(row[5]), row[6], row[7],
        bool(row[8]),
    )  # fmt: skip


def stream_candidates(fresh: Sequence[BatchResult], kept: Sequence[list[UserId]]) -> list[UserId]:
    """Everyone the recorded results put something in the inbox or on the stream of."""
    people = [u for users in kept for u in users]
    people += [e.user_id for r in fresh for e in r.entries]
    people += [u for r in fresh for u in r.live]
    return people


def stream_posts(
    fresh: Sequence[BatchResult], kept: Sequence[list[UserId]], active: set[UserId]
) -> list[Post]:
    """The inbox and live news of the recorded results, for the ``active`` among their
    people (a stream that lapsed since evaluation is not written: nobody listens)."""
    posts = []
    for result, users in zip(fresh, kept, strict=True):
        posts += [Post(u, Kind.INBOX, {"seq": result.seq}) for u in users if u in active]
        posts += [
            Post(e.user_id, Kind.INBOX, {"seq": e.entry})
            for e in result.entries
            if e.user_id in active
        ]
        posts += [Post(u, Kind.LIVE, {"seq": result.seq}) for u in result.live if u in active]
    return posts
