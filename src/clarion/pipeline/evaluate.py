"""Evaluate recipient batches against kill switches, TTL and each person's preferences.

Per claim: one bulk read of the recipients' preference documents, each with the people who
have it (the embedded store answers from its memory of them, checked against a change log),
and only where it matters their profile zones. Everyone without a record shares one verdict
per batch — the fast path for most recipients, with no per-person Python beyond a set
difference. People with a record are grouped by what they chose (one parsed object per
distinct document, cached by the document's text, so a change is seen by the next
evaluation) and each group is decided once (``policy.decide``); only those whose
frequency-cap reservation was refused are decided alone.

Frequency caps are decided by reservation, not by reading counts: every notification of the
claim that would reach a capped person asks for a place in their windows, all in one call
and in claim order (``FrequencyStore.reserve``), and those refused are held or dropped. The
store makes each reservation atomic, so caps hold when many notifications for one person
arrive in one claim and when two workers decide for the same person at once.

Between the two, aggregation (``pipeline.aggregate``): a notification of an aggregating
type that its window only counts leaves the batch before caps and routing. Routing is
``pipeline.route``'s.

Outcomes: in-app entries and log rows are recorded in one transaction per group of
batches; held recipients (quiet hours, an hourly cap) leave as a delayed batch with a
deterministic key, so a redelivered claim re-holds them under the same key.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from itertools import filterfalse

import orjson

from clarion.broker import Message, Outbound
from clarion.clock import Clock
from clarion.errors import CountsUnavailableError
from clarion.models import Channel, Outcome, Overflow, Priority
from clarion.pipeline import collapse, digests, observe
from clarion.pipeline.aggregate import Aggregator, entries_for_first, take_counted
from clarion.pipeline.base import StageResult
from clarion.pipeline.context import Context, notice, stopped
from clarion.pipeline.messages import (
    DeliveryBatch,
    EventHeader,
    RecipientBatch,
    decode_batches,
    encode_batches,
)
from clarion.pipeline.partitions import PartitionReader
from clarion.pipeline.route import Holds, Routes, apply, hear_live, reaches
from clarion.pipeline.switches import KillSwitchCache
from clarion.policy.aggregation import Role
from clarion.policy.decide import Notice, Reason, Verdict, decide, suppressed
from clarion.policy.frequency import UNDER, CapCheck, SlotRequest
from clarion.policy.preferences import DEFAULT, Preferences
from clarion.stores.base import (
    AggregateStore,
    DeliveryStore,
    DeviceStore,
    DigestStore,
    FrequencyStore,
    PreferenceStore,
    UserStore,
)
from clarion.stores.records import BatchResult, DigestItem
from clarion.topics import EVALUATE
from clarion.types import UserId

log = logging.getLogger(__name__)

_RECIPIENTS_PER_COMMIT = 1000
"""Bounds how long one commit holds the database's write lock, which is how long an OTP's
write may wait behind it: one 1,000-recipient batch a commit. Measured under three 1M
campaigns (``clarion bench isolation``): OTP p99 2.55 and 2.68x idle with 4,000; with
1,000, 1.18 to 2.47x over 12 runs (median 1.7x, flood p99 11.6 to 19.6 ms against 17.6 to
24.6). Fan-out and campaign rates moved within the machine's noise in A/B runs."""
_RECIPIENTS_PER_CLAIM = 2000
"""Claims are sized in recipients, not messages: two 1,000-recipient batches (so the next
batch is left for another worker), or 64 small packed messages (so they share one commit)."""
_MAX_CLAIM = 64
_PARSED_CACHE = 100_000


class EvaluateStage:
    name = EVALUATE

    def __init__(
        self,
        preferences: PreferenceStore,
        deliveries: DeliveryStore,
        users: UserStore,
        devices: DeviceStore,
        frequency: FrequencyStore,
        aggregates: AggregateStore,
        digests: DigestStore,
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
        self._aggregator = Aggregator(aggregates)
        self._digests = digests
        self._switches = switches
        self._clock = clock
        self._worker = worker
        self._parsed: dict[str, Preferences] = {}
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
        await self._aggregator.prepare(items, context)
        await self._reserve(items, context)
        results: list[BatchResult] = []
        outbound: list[Outbound] = []
        collected: list[tuple[EventHeader, DigestItem]] = []
        for batch in items:
            result, held = evaluate_batch(batch, context)
            results.append(result)
            outbound += held
            collected += [(batch.header, item) for item in result.digest]
        outbound += await digests.schedule(self._digests, collected, context.now)

        async def record(group: list[BatchResult]) -> None:
            await self._deliveries.record_batches(group, self._worker, self._clock.now())

        return StageResult(
            outbound,
            [functools.partial(record, group) for group in _commit_groups(results)],
            sum(len(b.recipients) for b in items),
            settled=lambda: observe.evaluated(items, results, self._clock.now()),
        )

    async def _context(self, items: list[RecipientBatch]) -> Context:
        context = Context(self._clock.now(), await self._switches.current())
        live = [u for b in items if stopped(b, context) is None for u in b.recipients]
        if not live:
            return context
        outside = {c for b in items for c in b.header.channels if c is not Channel.IN_APP}
        if outside:
            context.reach = await self._devices.reachable(live, context.now, outside)
        context.latest = await collapse.latest_of(self._deliveries, items)
        known = self._parsed.get  # the common case inline: a document parsed before
        for raw, people in (await self._preferences.documents(live)).items():
            parsed = known(raw) or self._parse(raw)
            context.prefs.update(dict.fromkeys(people, parsed))
            context.chose.append((parsed, people))
        # Zones decide quiet hours set without one, and when a digest is due (an email, or
        # a capped notification that may overflow into one).
        emailed = any(Channel.EMAIL in b.header.channels and not digests.exempt(b) for b in items)
        overflow = any(b.header.overflow is Overflow.DIGEST for b in items)
        unzoned = [
            u
            for p, people in context.chose
            if (p.quiet_hours and not p.quiet_hours.timezone)
            or (emailed and p.digest)
            or (overflow and p.caps)
            for u in people
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

    def _parse(self, raw: str) -> Preferences:
        """One parsed object per distinct document: people who chose the same settings
        share it (and, within a batch, its verdict)."""
        parsed = self._parsed.get(raw)
        if parsed is None:  # the document is only decoded when not seen before
            if len(self._parsed) >= _PARSED_CACHE:
                self._parsed.clear()
            parsed = self._parsed[raw] = Preferences.from_doc(orjson.loads(raw))
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
        completes_batch=not again and batch.summary_of is None,
        released=len(batch.recipients) if again else 0,
    )
    stop = stopped(batch, context)
    if stop is not None:
        apply(result, batch.recipients, suppressed(stop), context, Routes())
        return result, []
    summary = context.summaries.get((header.seq, batch.batch_key))
    if batch.summary_of is not None and summary is None:
        return result, []  # nothing new came in the window (or it was sent already)
    current = collapse.drop_late(batch, context, result)
    recipients, timers = take_counted(batch, context, result, current)
    routes = Routes()
    holds: Holds = {}
    _decide_all(batch, recipients, context, result, routes, holds)
    entries_for_first(batch, context, result)
    digests.divert(batch, context, result, routes)
    if header.collapse_key is not None:
        others = {u for users in routes.by_channel.values() for u in users} - set(result.inbox)
        collapse.mark(batch, result, [*result.inbox, *others])
    hear_live(result, routes)
    held = [
        encode_batches(
            [
                RecipientBatch(
                    header,
                    f"{batch.batch_key}~{_TAG[reason]}{int(until)}",
                    users,
                    summary_of=batch.summary_of,
                )
            ],
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
            summary=summary,
        ).encode()
        for channel, users in routes.by_channel.items()
    ]
    return result, held + deliveries + timers


def _decide_all(
    batch: RecipientBatch,
    recipients: list[UserId],
    context: Context,
    result: BatchResult,
    routes: Routes,
    holds: Holds,
) -> None:
    """Everyone without a preference record shares one verdict. The others are grouped by
    their settings (people who chose the same share one parsed record) and each group is
    decided once; only people whose frequency-cap reservation was refused are decided
    alone, with their own answer. Then everyone who got the same verdict is routed
    together: a few groups, not a call per person."""
    header = batch.header
    rule = notice(batch)
    # keys() & a list walks the list in C: no set of the whole batch is built.
    special = context.prefs.keys() & recipients if context.prefs else set()
    # A list of its own either way: groups with equal verdicts are joined into it below.
    common = list(filterfalse(special.__contains__, recipients) if special else recipients)
    alike: dict[Verdict, list[UserId]] = {}
    if common:
        alike[decide(DEFAULT, rule, now=context.now)] = common
    verdict_of = Decisions(rule, context)
    prefs_of, seq = context.prefs, header.seq
    refused = {u: cap for (u, s), cap in context.refused.items() if s == seq}
    alone = special & refused.keys() if refused else set()
    for users in _by_settings(special - alone if alone else special, context):
        verdict = verdict_of(users[0], prefs_of[users[0]])
        group = alike.get(verdict)
        if group is None:
            alike[verdict] = users
        else:
            group += users
    for user in alone:
        prefs = prefs_of[user]
        verdict = verdict_of(user, prefs, refused[user])
        if (
            verdict.reason is Reason.FREQ_CAP
            and verdict.outcome is Outcome.SUPPRESSED
            and header.overflow is Overflow.DIGEST
            and digests.overflow(batch, user, prefs, context, result)
        ):
            continue
        alike.setdefault(verdict, []).append(user)
    for verdict, users in alike.items():
        apply(result, users, verdict, context, routes, holds, routing=header.routing)


def _by_settings(users: set[UserId], context: Context) -> Iterable[list[UserId]]:
    """``users`` (all with a record) in groups that one decision covers: the same parsed
    record and, where it matters (quiet hours without a zone of their own), the same
    profile zone."""
    for prefs, people in context.chose:
        group = users.intersection(people)
        if not group:
            continue
        quiet = prefs.quiet_hours
        if quiet is None or quiet.timezone is not None:
            yield list(group)
            continue
        zones: dict[str | None, list[UserId]] = {}
        for user in group:
            zones.setdefault(context.zones.get(user), []).append(user)
        yield from zones.values()


class Decisions:
    """``decide`` for one batch's notice, once per distinct (settings, cap answer, zone that
    matters): people who chose the same settings share one parsed object, so a batch's
    thousands of records come to a few hundred decisions. Keys are identities — the parsed
    records and cap answers live in the context for as long as this does."""

    __slots__ = ("_known", "_now", "_rule", "_zones")

    def __init__(self, rule: Notice, context: Context) -> None:
        self._rule, self._now, self._zones = rule, context.now, context.zones
        self._known: dict[tuple[int, int, str | None], Verdict] = {}

    def __call__(self, user: UserId, prefs: Preferences, cap: CapCheck = UNDER) -> Verdict:
        quiet = prefs.quiet_hours
        # The profile's zone only decides quiet hours set without a zone of their own.
        zone = self._zones.get(user) if quiet is not None and quiet.timezone is None else None
        key = (id(prefs), id(cap), zone)
        verdict = self._known.get(key)
        if verdict is None:
            verdict = self._known[key] = decide(
                prefs, self._rule, now=self._now, cap=cap, profile_zone=zone
            )
        return verdict


_TAG = {Reason.HELD_QUIET_HOURS: "q", Reason.FREQ_CAP: "c"}


def slot_requests(items: list[RecipientBatch], context: Context) -> list[SlotRequest]:
    """A frequency-cap place for every notification of the claim that would reach a capped
    person if their caps allowed it, in claim order. P0 passes caps but takes its place;
    what aggregation only counts takes none (it does not go out)."""
    capped = {u for p, people in context.chose if p.caps is not None for u in people}
    if not capped:
        return []
    requests = []
    for batch in items:
        if stopped(batch, context) is not None:
            continue
        verdict_of = Decisions(notice(batch), context)
        seq, force = batch.header.seq, batch.header.priority is Priority.P0
        for user in capped.intersection(batch.recipients):
            joined = context.joined.get((user, seq))
            if joined is not None and joined.role is Role.COUNTED:
                continue
            prefs = context.prefs[user]
            assert prefs.caps is not None
            verdict = verdict_of(user, prefs)
            if verdict.deliver and reaches(user, verdict.channels, context):
                requests.append(SlotRequest(user, seq, prefs.caps, force))
    return requests


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
