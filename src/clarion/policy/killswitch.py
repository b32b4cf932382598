"""Kill switches: an operator's emergency stop for a type, a channel, a sender or a campaign.

Workers hold the active set in memory and refresh it every half second, so a switch stops
delivery everywhere within a second, including work already queued: every batch is checked
when it is evaluated, not when it was enqueued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from clarion.models import Channel


class KillKind(StrEnum):
    TYPE = "type"
    CHANNEL = "channel"
    SENDER = "sender"
    CAMPAIGN = "campaign"


@dataclass(frozen=True, slots=True)
class KillSwitch:
    id: str
    kind: KillKind
    value: str
    reason: str
    created_at: float
    created_by: str
    lifted_at: float | None = None
    lifted_by: str | None = None


@dataclass(frozen=True, slots=True)
class KillSet:
    """The active switches, indexed for the question evaluation asks."""

    _by_kind: dict[KillKind, dict[str, str]] = field(default_factory=dict)
    channels: frozenset[Channel] = frozenset()
    """Channels stopped for everyone."""

    @classmethod
    def of(cls, switches: Iterable[KillSwitch]) -> KillSet:
        by_kind: dict[KillKind, dict[str, str]] = {}
        for switch in switches:
            if switch.lifted_at is None:
                by_kind.setdefault(switch.kind, {}).setdefault(switch.value, switch.id)
        channels = frozenset(Channel(c) for c in by_kind.get(KillKind.CHANNEL, {}))
        return cls(by_kind, channels)

    def stopping(self, *, type_name: str, sender: str, campaign: str | None) -> str | None:
        """The id of a switch that stops this event altogether, if any."""
        if not self._by_kind:  # the usual case, asked once per batch
            return None
        for kind, value in (
            (KillKind.TYPE, type_name),
            (KillKind.SENDER, sender),
            (KillKind.CAMPAIGN, campaign),
        ):
            if value is not None and value in self._by_kind.get(kind, {}):
                return self._by_kind[kind][value]
        return None


NONE_ACTIVE = KillSet()
