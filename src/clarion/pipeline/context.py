"""What evaluating a claim reads, loaded in bulk once for all its batches, and the few
per-batch questions every step of evaluation asks of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from clarion.models import Channel, Priority
from clarion.pipeline.messages import RecipientBatch
from clarion.policy.aggregation import Joined, WindowSummary
from clarion.policy.decide import Notice, Reason
from clarion.policy.frequency import CapCheck
from clarion.policy.killswitch import KillSet
from clarion.policy.preferences import Preferences
from clarion.stores.records import Reach
from clarion.types import Seq, UserId


@dataclass(slots=True)
class Context:
    """Everything a batch's evaluation reads, loaded in bulk for the whole claim."""

    now: float
    kills: KillSet
    prefs: dict[UserId, Preferences] = field(default_factory=dict)
    chose: list[tuple[Preferences, list[UserId]]] = field(default_factory=list)
    """The same people as ``prefs``, grouped by the record they share."""
    zones: dict[UserId, str] = field(default_factory=dict)
    refused: dict[tuple[UserId, Seq], CapCheck] = field(default_factory=dict)
    """Notifications whose frequency-cap reservation was refused, and why."""
    reach: dict[UserId, Reach] = field(default_factory=dict)
    """Which of push, email, sms and webhook reach each person, and why the others do not
    (loaded only when a batch lists one of them)."""
    joined: dict[tuple[UserId, Seq], Joined] = field(default_factory=dict)
    """What aggregation made of each notification of an aggregating type."""
    summaries: dict[tuple[Seq, str], WindowSummary | None] = field(default_factory=dict)
    """Per summary batch (seq, batch key): the window's summary, or None (nothing new)."""
    latest: dict[tuple[UserId, str], tuple[Seq, float]] = field(default_factory=dict)
    """Per (recipient, collapse key) of the claim: the newest notification recorded."""


def stopped(batch: RecipientBatch, context: Context) -> Reason | None:
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


def notice(batch: RecipientBatch) -> Notice:
    """What the evaluation rule needs to know of the batch's event. A window's summary
    goes everywhere but in-app: the inbox entry has counted everything already."""
    h = batch.header
    channels = h.channels
    if batch.summary_of is not None:
        channels = tuple(c for c in channels if c is not Channel.IN_APP)
    return Notice(h.type, h.priority, h.mandatory, h.default_enabled, channels)


def urgent(batch: RecipientBatch) -> bool:
    return batch.header.priority is Priority.P0
