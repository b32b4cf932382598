"""Routing: which channels each person decided to get a notification on goes out on.

Each channel only where it can reach the person (an active device, a verified unbounced
email, a verified phone, a device listening for live; in-app always): the first such
channel in the type's order, its successors kept as fallbacks, or with ``Routing.ALL``
every one of them. A channel that cannot reach someone is logged for them with why
(``no_channel: …``).

People are handled by what reaches them, not one by one: the stores hand out one
``Reach`` per combination of channels and reasons, so a batch of a thousand falls into a
handful of groups and each group is routed with a few list operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_

from clarion.models import Channel, Outcome, Routing
from clarion.pipeline.context import Context
from clarion.policy.decide import Reason, Verdict, suppressed
from clarion.stores.records import ALL_CHANNELS, NOWHERE, BatchResult, DeliveryOutcome, Reach
from clarion.types import UserId


@dataclass(slots=True)
class Routes:
    """Recipients leaving one batch for each channel other than in-app."""

    by_channel: dict[Channel, list[UserId]] = field(default_factory=dict)
    fallbacks: dict[Channel, dict[UserId, tuple[Channel, ...]]] = field(default_factory=dict)
    """Per first channel: the channels to try next for a person if it cannot deliver."""


Holds = dict[tuple[Reason, float], list[UserId]]
"""People put off until a time, by why (quiet hours, an hourly cap)."""


def apply(
    result: BatchResult,
    users: list[UserId],
    verdict: Verdict,
    context: Context,
    routes: Routes,
    holds: Holds | None = None,
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
            result.suppressed += len(route(result, users, channels, context, routes, routing))
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


def route(
    result: BatchResult,
    users: list[UserId],
    channels: tuple[Channel, ...],
    context: Context,
    routes: Routes,
    routing: Routing,
) -> list[UserId]:
    """In-app entries now, other channels to their delivery stage; returns those no
    channel reaches."""
    in_app = Channel.IN_APP in channels
    others = [c for c in channels if c is not Channel.IN_APP]
    if not others:  # in-app only: the bulk path, no per-person work
        result.inbox += users
        return []
    unreached: list[UserId] = []
    for reach, group in by_reach(users, context.reach).items():
        found = [c for c in others if c in reach.channels]
        if len(found) < len(others):
            _log_unreachable(result, others, reach, group)
        _send(routes, group, found, routing)
        if in_app:
            result.inbox += group
        elif not found:
            unreached += group
    return unreached


def by_reach(users: list[UserId], reach: dict[UserId, Reach]) -> dict[Reach, list[UserId]]:
    """``users`` grouped by what reaches them. The stores share one ``Reach`` per kind, so
    there are a few groups: each is cut out in C (``compress`` over identity tests) rather
    than by a Python step per person."""
    found = list(map(reach.get, users))  # None: no device or address at all
    kinds = set(found)
    if len(kinds) == 1:
        return {kinds.pop() or NOWHERE: users}
    if len(kinds) > _FEW:  # one pass per kind would cost more than a step per person
        by_kind: dict[Reach, list[UserId]] = {}
        for user, kind in zip(users, found, strict=True):
            by_kind.setdefault(kind or NOWHERE, []).append(user)
        return by_kind
    groups: dict[Reach, list[UserId]] = {
        kind: list(compress(users, map(is_, found, repeat(kind))))
        for kind in kinds - _UNREACHED
        if kind is not None
    }
    if not kinds.isdisjoint(_UNREACHED):
        groups[NOWHERE] = list(compress(users, map(_UNREACHED.__contains__, found)))
    return groups


_UNREACHED = frozenset({None, NOWHERE})
_FEW = 12


def _send(routes: Routes, group: list[UserId], found: Sequence[Channel], routing: Routing) -> None:
    """``group``, whom ``found`` reach in the type's order, to their channels."""
    if routing is Routing.ALL:
        for channel in found:
            routes.by_channel.setdefault(channel, []).extend(group)
    elif found:
        routes.by_channel.setdefault(found[0], []).extend(group)
        if len(found) > 1:
            chain = tuple(found[1:])
            routes.fallbacks.setdefault(found[0], {}).update(dict.fromkeys(group, chain))


def hear_live(result: BatchResult, routes: Routes) -> None:
    """The live channel needs no delivery stage: its people (those with a device listening)
    hear the notification from the commit that records it. Nothing falls back from it."""
    users = routes.by_channel.pop(Channel.LIVE, None)
    routes.fallbacks.pop(Channel.LIVE, None)
    if users:
        result.live += users
        result.outcomes += [
            DeliveryOutcome(u, Channel.LIVE.value, Outcome.DELIVERED) for u in users
        ]
        result.delivered += len(users)


def reaches(user: UserId, channels: tuple[Channel, ...], context: Context) -> bool:
    """Whether ``apply`` would deliver to ``user`` on one of ``channels``."""
    killed = context.kills.channels
    live = [c for c in channels if c not in killed] if killed else channels
    if Channel.IN_APP in live:
        return True
    reach = context.reach.get(user, NOWHERE).channels
    return any(c in reach for c in live)


def _log_unreachable(
    result: BatchResult, channels: Sequence[Channel], reach: Reach, users: list[UserId]
) -> None:
    for channel in channels:
        if channel not in reach.channels:
            why = f"{Reason.NO_CHANNEL.value}: {reach.why_not[channel]}"
            result.unreachable.append((channel.value, why, users))
