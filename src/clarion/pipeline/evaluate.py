"""Evaluate recipient batches against kill switches, TTL and each person's preferences.

Per claim: one bulk read of the recipients' preference records, and only for the people who
have one, their profile zones (quiet hours without a zone). Everyone without a record
shares one verdict per batch — the fast path for most recipients, with no per-person Python
beyond a set difference. People with a record are decided one by one (``policy.decide``);
their parsed records are cached by ``(user, version)``, and since the version comes from
the store on every read, a change is seen by the next evaluation (read-your-writes).

Frequency caps are decided by reservation, not by reading counts: every notification of the
claim that would reach a capped person asks for a place in their windows, all in one call
and in claim order (``FrequencyStore.reserve``), and those refused are held or dropped. The
store makes each reservation atomic, so caps hold when many notifications for one person
arrive in one claim and when two workers decide for the same person at once.

Outcomes: in-app entries and log rows are recorded in one transaction per group of
batches; held recipients (quiet hours, an hourly cap) leave as a delayed batch with a
deterministic key, so a redelivered claim re-holds them under the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from clarion.broker import Message, Outbound
from clarion.clock import Clock
from clarion.errors import CountsUnavailableError
from clarion.models import Channel, Outcome, Priority, Routing
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import (
    DeliveryBatch,
    RecipientBatch,
    decode_batches,
    encode_batches,
)
from clarion.pipeline.partitions import PartitionReader
from clarion.pipeline.switches import KillSwitchCache
from clarion.policy.decide import Notice, Reason, Verdict, decide, suppressed
from clarion.policy.frequency import UNDER, CapCheck, SlotRequest
from clarion.policy.killswitch import KillSet
from clarion.policy.preferences import DEFAULT, Preferences
from clarion.stores.base import (
    DeliveryStore,
    DeviceStore,
    FrequencyStore,
    PreferenceStore,
    UserStore,
)
from clarion.stores.records import (
    ALL_CHANNELS,
    NOWHERE,
    BatchResult,
    DeliveryOutcome,
    Reach,
    StoredPreferences,
)
from clarion.topics import EVALUATE
from clarion.types import Seq, UserId

log = logging.getLogger(__name__)

_RECIPIENTS_PER_COMMIT = 4000
"""Bounds how long one commit holds the database's write lock (a few milliseconds)."""
_RECIPIENTS_PER_CLAIM = 2000
"""Claims are sized in recipients, not messages: two 1,000-recipient batches (so the next
batch is left for another worker), or 64 small packed messages (so they share one commit)."""
_MAX_CLAIM = 64
_PARSED_CACHE = 100_000


@dataclass(slots=True)
class Context:
    """Everything a batch's evaluation reads, loaded in bulk for the whole claim."""

    now: float
    kills: KillSet
    prefs: dict[UserId, Preferences] = field(default_factory=dict)
    zones: dict[UserId, str] = field(default_factory=dict)
    refused: dict[tuple[UserId, Seq], CapCheck] = field(default_factory=dict)
    """Notifications whose frequency-cap reservation was refused, and why."""
    reach: dict[UserId, Reach] = field(default_factory=dict)
    """Which of push, email, sms and webhook reach each person, and why the others do not
    (loaded only when a batch lists one of them)."""


class EvaluateStage:
    name = EVALUATE

    def __init__(
        self,
        preferences: PreferenceStore,
        deliveries: DeliveryStore,
        users: UserStore,
        devices: DeviceStore,
        frequency: FrequencyStore,
        switches: KillSwitchCache,
        clock: Clock,
        *,
        worker: str,
        partitions: PartitionReader | None = None,
    ) -> None:
        self._partitions = partitions
        self._preferences = preferences
        self._deliveries = deliveries
        self._users = users
        self._devices = devices
        self._frequency = frequency
        self._switches = switches
        self._clock = clock
        self._worker = worker
        self._parsed: dict[tuple[UserId, int], Preferences] = {}
        self.claim_limit = 1
        """Messages to take next time, adapted to the size of the batches seen last."""

    def decode(self, message: Message) -> list[RecipientBatch]:
        return decode_batches(message.body)

    async def handle(self, messages: Sequence[list[RecipientBatch]]) -> StageResult:
        items = [batch for batches in messages for batch in batches]
        done = await self._deliveries.recorded([(b.header.seq, b.batch_key) for b in items])
        items = [b for b in items if (b.header.seq, b.batch_key) not in done]
        if not items:
            return StageResult()
        if self._partitions is not None:
            items = await self._partitions.fill(items)
        per_message = sum(len(b.recipients) for b in items) / max(len(messages), 1)
        self.claim_limit = max(1, min(_MAX_CLAIM, int(_RECIPIENTS_PER_CLAIM / max(per_message, 1))))
        context = await self._context(items)
        await self._reserve(items, context)
        results: list[BatchResult] = []
        outbound: list[Outbound] = []
        for batch in items:
            result, held = evaluate_batch(batch, context)
            results.append(result)
            outbound += held

        async def record() -> None:
            for group in _commit_groups(results):
                await self._deliveries.record_batches(group, self._worker, self._clock.now())

        return StageResult(outbound, record, sum(len(b.recipients) for b in items))

    async def _context(self, items: list[RecipientBatch]) -> Context:
        context = Context(self._clock.now(), await self._switches.current())
        live = [u for b in items if _stopped(b, context) is None for u in b.recipients]
        if not live:
            return context
        if any(c is not Channel.IN_APP for b in items for c in b.header.channels):
            context.reach = await self._devices.reachable(live)
        records = await self._preferences.load_many(live)
        context.prefs = {user: self._parse(record) for user, record in records.items()}
        unzoned = [
            u for u, p in context.prefs.items() if p.quiet_hours and not p.quiet_hours.timezone
        ]
        if unzoned:
            context.zones = await self._users.timezones(unzoned)
        return context

    async def _reserve(self, items: list[RecipientBatch], context: Context) -> None:
        requests = slot_requests(items, context)
        if not requests:
            return
        try:
            answers = await self._frequency.reserve(requests, context.now)
        except CountsUnavailableError as exc:
            if any(b.header.priority is Priority.P2 for b in items):
                raise  # marketing waits for the counts (the claim is retried)
            log.warning("%s: P0/P1 go out uncapped meanwhile", exc)
            return
        context.refused = {
            (r.user_id, r.seq): answer
            for r, answer in zip(requests, answers, strict=True)
            if not answer.room
        }

    def _parse(self, record: StoredPreferences) -> Preferences:
        key = (record.user_id, record.version)
        parsed = self._parsed.get(key)
        if parsed is None:  # the document is only decoded for a version not seen before
            if len(self._parsed) >= _PARSED_CACHE:
                self._parsed.clear()
            parsed = self._parsed[key] = Preferences.from_doc(record.doc)
        return parsed

    async def on_dead_letter(
        self, item: list[RecipientBatch] | None, message: Message, error: str
    ) -> None:
        """The batches stay in the dead-letter queue for an operator to replay."""


def evaluate_batch(batch: RecipientBatch, context: Context) -> tuple[BatchResult, list[Outbound]]:
    """Decide every recipient of ``batch``: the in-app entries, the log rows, the held."""
    header = batch.header
    again = "~" in batch.batch_key  # a held batch coming back
    result = BatchResult(
        header.seq,
        batch.batch_key,
        len(batch.recipients),
        completes_batch=not again,
        released=len(batch.recipients) if again else 0,
    )
    stop = _stopped(batch, context)
    if stop is not None:
        _apply(result, batch.recipients, suppressed(stop), context, _Routes())
        return result, []
    routes = _Routes()
    notice = _notice(batch)
    holds: dict[tuple[Reason, float], list[UserId]] = {}
    special = context.prefs.keys() & set(batch.recipients) if context.prefs else set()
    common = [u for u in batch.recipients if u not in special] if special else batch.recipients
    if common:
        verdict = decide(DEFAULT, notice, now=context.now)
        _apply(result, common, verdict, context, routes, holds, routing=header.routing)
    plain_in_app = not context.kills.channels
    for user in special:
        verdict = decide(
            context.prefs[user],
            notice,
            now=context.now,
            cap=context.refused.get((user, header.seq), UNDER),
            profile_zone=context.zones.get(user),
        )
        if plain_in_app and verdict.channels == (Channel.IN_APP,) and verdict.deliver:
            result.inbox.append(user)  # the common outcome, without the general bookkeeping
            continue
        _apply(result, [user], verdict, context, routes, holds, routing=header.routing)
    held = [
        encode_batches(
            [RecipientBatch(header, f"{batch.batch_key}~{_TAG[reason]}{int(until)}", users)],
            delay_s=max(until - context.now, 0.0),
        )
        for (reason, until), users in holds.items()
    ]
    deliveries = [
        DeliveryBatch(
            header,
            channel,
            f"{batch.batch_key}/{channel.value}",
            users,
            fallbacks=routes.fallbacks.get(channel, {}),
        ).encode()
        for channel, users in routes.by_channel.items()
    ]
    return result, held + deliveries


@dataclass(slots=True)
class _Routes:
    """Recipients leaving this batch for each channel other than in-app."""

    by_channel: dict[Channel, list[UserId]] = field(default_factory=dict)
    fallbacks: dict[Channel, dict[UserId, tuple[Channel, ...]]] = field(default_factory=dict)
    """Per first channel: the channels to try next for a person if it cannot deliver."""


_TAG = {Reason.HELD_QUIET_HOURS: "q", Reason.FREQ_CAP: "c"}


def _notice(batch: RecipientBatch) -> Notice:
    h = batch.header
    return Notice(h.type, h.priority, h.mandatory, h.default_enabled, h.channels)


def slot_requests(items: list[RecipientBatch], context: Context) -> list[SlotRequest]:
    """A frequency-cap place for every notification of the claim that would reach a capped
    person if their caps allowed it, in claim order. P0 passes caps but takes its place."""
    capped = {u for u, p in context.prefs.items() if p.caps is not None}
    if not capped:
        return []
    requests = []
    for batch in items:
        if _stopped(batch, context) is not None:
            continue
        notice = _notice(batch)
        seq, force = batch.header.seq, batch.header.priority is Priority.P0
        for user in capped.intersection(batch.recipients):
            prefs = context.prefs[user]
            assert prefs.caps is not None
            verdict = decide(prefs, notice, now=context.now, profile_zone=context.zones.get(user))
            if verdict.deliver and _reaches(user, verdict.channels, context):
                requests.append(SlotRequest(user, seq, prefs.caps, force))
    return requests


def _reaches(user: UserId, channels: tuple[Channel, ...], context: Context) -> bool:
    """Whether ``_apply`` would deliver to ``user`` on one of ``channels``."""
    killed = context.kills.channels
    live = [c for c in channels if c not in killed] if killed else channels
    if Channel.IN_APP in live:
        return True
    reach = context.reach.get(user, NOWHERE).channels
    return any(c in reach for c in live)


def _stopped(batch: RecipientBatch, context: Context) -> Reason | None:
    """Whole-batch stops, decided before anyone's preferences are read."""
    header = batch.header
    kill = context.kills.stopping(
        type_name=header.type, sender=header.sender, campaign=header.campaign
    )
    if kill is not None:
        return Reason.KILLED
    if context.now >= header.expires_at:
        return Reason.EXPIRED
    return None


def _apply(
    result: BatchResult,
    users: list[UserId],
    verdict: Verdict,
    context: Context,
    routes: _Routes,
    holds: dict[tuple[Reason, float], list[UserId]] | None = None,
    *,
    routing: Routing = Routing.FIRST,
) -> None:
    """Record one verdict for ``users``: route those it delivers to, log the rest."""
    if verdict.deliver:
        channels = verdict.channels
        if context.kills.channels:
            channels = tuple(c for c in channels if c not in context.kills.channels)
        if channels:
            # Every channel that cannot reach someone is in the log with why (no_channel);
            # only those left with no channel at all count as suppressed.
            result.suppressed += len(_route(result, users, channels, context, routes, routing))
            return
        verdict = suppressed(Reason.KILLED)
    reason = verdict.reason
    result.outcomes += [
        DeliveryOutcome(u, ALL_CHANNELS, verdict.outcome, reason and reason.value) for u in users
    ]
    if verdict.outcome is Outcome.HELD and holds is not None and verdict.hold_until is not None:
        assert reason is not None
        holds.setdefault((reason, verdict.hold_until), []).extend(users)
        result.held += len(users)
    else:
        result.suppressed += len(users)


def _route(
    result: BatchResult,
    users: list[UserId],
    channels: tuple[Channel, ...],
    context: Context,
    routes: _Routes,
    routing: Routing,
) -> list[UserId]:
    """In-app entries now, other channels to their delivery stage — each only where it can
    reach the person (an active device, a verified unbounced email, a verified phone):
    the first such channel in the type's order, its successors kept as the fallbacks, or
    with ``Routing.ALL`` every one of them. Each channel that cannot reach a person is
    logged for them with why. Returns those no channel reaches."""
    in_app = Channel.IN_APP in channels
    others = [c for c in channels if c is not Channel.IN_APP]
    if not others:  # in-app only: the bulk path, no per-person work
        result.inbox += users
        return []
    unreached = []
    missed: dict[Reach, list[UserId]] = {}
    for user in users:
        reach = context.reach.get(user, NOWHERE)
        found = [c for c in others if c in reach.channels]
        if len(found) < len(others):
            missed.setdefault(reach, []).append(user)
        if routing is Routing.ALL:
            for channel in found:
                routes.by_channel.setdefault(channel, []).append(user)
        elif found:
            routes.by_channel.setdefault(found[0], []).append(user)
            if len(found) > 1:
                routes.fallbacks.setdefault(found[0], {})[user] = tuple(found[1:])
        if in_app:
            result.inbox.append(user)
        elif not found:
            unreached.append(user)
    _log_unreachable(result, others, missed)
    return unreached


def _log_unreachable(
    result: BatchResult, channels: Sequence[Channel], missed: dict[Reach, list[UserId]]
) -> None:
    for reach, users in missed.items():
        for channel in channels:
            if channel not in reach.channels:
                why = f"{Reason.NO_CHANNEL.value}: {reach.why_not[channel]}"
                result.unreachable.append((channel.value, why, users))


def _commit_groups(results: list[BatchResult]) -> list[list[BatchResult]]:
    groups: list[list[BatchResult]] = [[]]
    size = 0
    for result in results:
        if groups[-1] and size + result.recipients > _RECIPIENTS_PER_COMMIT:
            groups.append([])
            size = 0
        groups[-1].append(result)
        size += result.recipients
    return groups
