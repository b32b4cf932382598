"""Queue names, built in one place: ``<stage>.<priority>`` such as ``fanout.p0``.

Each (stage, priority) pair is its own queue, so a deep P2 queue never sits in front of P0
work: workers look at P0 first and can be reserved for P0 alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from clarion.models import Priority

FANOUT = "fanout"
EVALUATE = "evaluate"
PUSH = "push"
EMAIL = "email"
SMS = "sms"
WEBHOOK = "webhook"
STATUS = "status"
CHANNEL_STAGES: tuple[str, ...] = (PUSH, EMAIL, SMS, WEBHOOK)
"""One delivery stage per channel (named after it), so a slow SMS provider never holds up
push, and each can be given its own workers."""
STAGES: tuple[str, ...] = (FANOUT, EVALUATE, *CHANNEL_STAGES, STATUS)


def topic(stage: str, priority: Priority) -> str:
    return f"{stage}.{priority.value.lower()}"


ALL_TOPICS: tuple[str, ...] = tuple(
    topic(stage, priority) for stage in STAGES for priority in Priority
)


def priority_of(name: str) -> Priority:
    """``push.p1`` → P1."""
    return Priority(name.rpartition(".")[2].upper())


def reserved_for_p0(priorities: Iterable[Priority]) -> bool:
    """Whether a worker consuming ``priorities`` only ever has P0 work (``--priorities P0``)."""
    return set(priorities) == {Priority.P0}


def consumption_order(
    stages: Sequence[str], priorities: Iterable[Priority]
) -> list[tuple[str, str]]:
    """``(stage, topic)`` pairs in the order a worker should look at them.

    ``stages`` are given in pipeline order (upstream first). Most urgent priority first;
    within a priority, the stage furthest down the pipeline first, so work already in flight
    finishes before new work is started (keeps queues shallow and the first inbox entry
    early).
    """
    return [
        (stage, topic(stage, priority))
        for priority in sorted(priorities, key=lambda p: p.rank)
        for stage in reversed(stages)
    ]
