"""What a campaign is and the states it moves through.

    draft → scheduled → running ⇄ paused → completed (expanded)
                ↑                          ↘ cancelled (from any of them: what is still
                                             queued is dropped, by a kill switch)
    awaiting_approval (an audience over the approval threshold: an admin approves)

``rollout_percent`` sends to a fixed share of the audience: a person is in it when their
``band`` (a hash of campaign and person, 0 to 99) is below the percentage, so raising it from
10 to 100 adds the people of bands 10 to 99 and repeats no one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clarion.types import JSONObject, UserId


class CampaignState(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


MOVES: dict[str, tuple[set[CampaignState], CampaignState]] = {
    "approve": ({CampaignState.AWAITING_APPROVAL}, CampaignState.SCHEDULED),
    "schedule": ({CampaignState.DRAFT}, CampaignState.SCHEDULED),
    "pause": ({CampaignState.SCHEDULED, CampaignState.RUNNING}, CampaignState.PAUSED),
    "resume": ({CampaignState.PAUSED}, CampaignState.RUNNING),
    "cancel": (
        {
            CampaignState.DRAFT,
            CampaignState.AWAITING_APPROVAL,
            CampaignState.SCHEDULED,
            CampaignState.RUNNING,
            CampaignState.PAUSED,
            CampaignState.COMPLETED,  # expanded, and batches may still wait in the queues
        },
        CampaignState.CANCELLED,
    ),
}
"""Per action: the states it may be taken from, and the state it leads to."""


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    sender: str
    doc: JSONObject
    """What was asked: name, type, audience, payload, template, ttl_seconds,
    throttle_per_s, local_time."""
    state: CampaignState
    start_at: float
    rollout_percent: int
    created_at: float
    updated_at: float
    seq: int | None = None
    """Its event, once it runs: every batch carries it (progress, kill switch)."""
    band_from: int = 0
    band_to: int = 0
    """The bands the current pass of the audience sends to."""
    cursor: str | None = None
    """The last person of the current pass written to the queues."""
    pages: int = 0
    targeted: int = 0
    token: int = 0
    """The fencing token: what the holder of the lease writes with."""
    paced_until: float = 0.0

    @property
    def name(self) -> str:
        return str(self.doc.get("name", self.id))

    @property
    def type(self) -> str:
        return str(self.doc["type"])

    @property
    def audience(self) -> dict[str, Any]:
        found: dict[str, Any] = self.doc["audience"]
        return found

    @property
    def throttle_per_s(self) -> float | None:
        value = self.doc.get("throttle_per_s")
        return None if value is None else float(value)

    @property
    def local_time(self) -> str | None:
        value = self.doc.get("local_time")
        return None if value is None else str(value)


def band(campaign_id: str, user: UserId) -> int:
    """The person's place in the campaign's rollout, 0 to 99, the same every time."""
    digest = hashlib.blake2b(f"{campaign_id}\x1f{user}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 100
