"""The lease holder's work: a campaign's audience, page by page, into batches for
evaluation (seed 003 §9.2 and 9.3).

Whichever scheduler claims a due campaign holds its lease and gets a fencing token. Each
page — the next people after the checkpoint, those of them in the rollout's bands,
grouped by how long they wait for their local hour — is written in one transaction with
the checkpoint and the event's progress, fenced by the token. So:
* three schedulers racing never expand a page twice (one holds the lease);
* a holder killed mid-page lost nothing and wrote nothing of that page: when its lease
  runs out another takes over from the checkpoint;
* a holder that lost its lease (it stalled, or an operator paused or cancelled) has its
  next write refused, and stops.

Expansion waits while evaluation is behind (backpressure) and paces itself to the
campaign's throttle; P2 preferences, quiet hours, caps and TTL apply in evaluation as to
any P2 event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from zoneinfo import ZoneInfo

from clarion.broker import Outbound
from clarion.campaigns import segments
from clarion.campaigns.model import Campaign, band
from clarion.config import Settings
from clarion.models import Event, FanOut, Priority, TypeSpec
from clarion.pipeline.messages import EventHeader, RecipientBatch, encode_batches
from clarion.runtime import Runtime
from clarion.topics import EVALUATE, topic
from clarion.types import EventId, Seq, UserId

log = logging.getLogger(__name__)
BACKPRESSURE_POLL_S = 0.05
ROUND_S = 5.0
"""A holder expands for this long (machine time), then lets the campaign come round."""
CATCH_UP_S = 1.0
"""How far behind its schedule a throttled campaign may be and still catch up (a burst
of at most one second's worth)."""
_TOPIC = topic(EVALUATE, Priority.P2)


class Expansion:
    def __init__(self, runtime: Runtime, owner: str) -> None:
        self._runtime = runtime
        self._owner = owner

    async def tick(self) -> int:
        """Claim the due campaigns nobody holds and expand each for a round; returns the
        people written to the queues."""
        now = self._runtime.clock.now()
        lease_s = self._runtime.settings.campaign_lease_s
        claimed = await self._runtime.stores.campaigns.claim(self._owner, now, lease_s, 4)
        written = 0
        for campaign in claimed:
            written += await self._expand(campaign)
        return written

    async def _expand(self, campaign: Campaign) -> int:
        runtime = self._runtime
        stores, clock = runtime.stores, runtime.clock
        spec = await stores.types.get(campaign.type)
        if spec is None:
            log.warning("campaign %s: type %r is gone; pausing it", campaign.id, campaign.type)
            await stores.campaigns.move(campaign.id, "pause", clock.now())
            return 0
        event = campaign_event(campaign, spec)
        ttl_s = int(campaign.doc.get("ttl_seconds") or spec.ttl_seconds)
        seq = await stores.campaigns.begin(campaign, event, clock.now())
        if seq is None:
            return 0  # someone else has it now
        campaign = dataclasses.replace(campaign, seq=seq)
        if campaign.band_to == 0 and campaign.cursor is None:
            campaign = dataclasses.replace(campaign, band_to=campaign.rollout_percent)
        header = EventHeader.of(event, Seq(seq))
        ends = time.monotonic() + ROUND_S
        written = 0
        while time.monotonic() < ends:
            if not await self._evaluation_keeps_up(ends):
                break  # evaluation is still behind at the round's end
            wait = campaign.paced_until - clock.now()
            if wait > 0:  # the throttle: the next page when its time comes
                if time.monotonic() + wait >= ends:
                    break
                await asyncio.sleep(wait)
            step = await self._page(campaign, header, ttl_s)
            if step is None:
                break  # the lease or the state moved under us
            campaign, targeted, finished = step
            written += targeted
            if finished:
                break
        return written

    async def _page(
        self, campaign: Campaign, header: EventHeader, ttl_s: int
    ) -> tuple[Campaign, int, bool] | None:
        runtime = self._runtime
        now = runtime.clock.now()
        batch_size = runtime.settings.batch_size
        size = step_size(runtime.settings)
        rate = campaign.throttle_per_s
        if rate is not None:  # small pages, ten a second: the rate holds within a second
            size = max(1, min(batch_size, int(rate / 10)))
        people = await self._people(campaign, size)
        lo, hi = campaign.band_from, campaign.band_to
        chosen = people
        if (lo, hi) != (0, 100):  # a partial rollout: only the people in its bands
            chosen = [u for u in people if lo <= band(campaign.id, u) < hi]
        waits = await self._waits(campaign, chosen, now)
        outbound: list[Outbound] = []
        for delay, users in sorted(waits.items()):
            page_header = dataclasses.replace(
                header, created_at=now + delay, expires_at=now + delay + ttl_s
            )
            for at in range(0, len(users), batch_size):
                key = f"c{hi}.{campaign.pages + len(outbound)}"
                batch = RecipientBatch(page_header, key, users[at : at + batch_size])
                outbound.append(encode_batches([batch], delay_s=delay))
        cursor = people[-1] if people else campaign.cursor
        band_range = (lo, hi)
        finished = False
        if len(people) < size:  # this pass of the audience is done
            if hi < campaign.rollout_percent:
                band_range, cursor = (hi, campaign.rollout_percent), None
            else:
                finished = True
        # The next page's time follows from this one's, not from now: time lost between
        # pages (the page's own writes, a round's end) is made up, up to a second of it,
        # so the rate holds over a minute instead of drifting below the throttle. The
        # first page has nothing to make up: a campaign does not start with a burst.
        first = campaign.paced_until == 0.0
        start = now if first else max(campaign.paced_until, now - CATCH_UP_S)
        paced = start + len(chosen) / rate if rate else 0.0
        stored = await runtime.stores.campaigns.advance(
            campaign,
            outbound,
            cursor=cursor,
            band=band_range,
            targeted=len(chosen),
            finished=finished,
            paced_until=paced,
            lease_until=now + runtime.settings.campaign_lease_s,
            now=now,
        )
        if not stored:
            return None
        moved = dataclasses.replace(
            campaign,
            cursor=cursor,
            band_from=band_range[0],
            band_to=band_range[1],
            pages=campaign.pages + len(outbound),
            targeted=campaign.targeted + len(chosen),
            paced_until=paced,
        )
        return moved, len(chosen), finished

    async def _evaluation_keeps_up(self, ends: float) -> bool:
        """Backpressure: wait (until the round ``ends`` at most) while the evaluate queue
        holds more than ``fanout_pause_depth`` batches. Waiting here rather than ending
        the round keeps the queue fed the moment it drains below that depth."""
        runtime = self._runtime
        while await runtime.broker.depth(_TOPIC) > runtime.settings.fanout_pause_depth:
            if time.monotonic() + BACKPRESSURE_POLL_S >= ends:
                return False
            await asyncio.sleep(BACKPRESSURE_POLL_S)
        return True

    async def _people(self, campaign: Campaign, size: int) -> list[UserId]:
        stores = self._runtime.stores
        audience = campaign.audience
        after = campaign.cursor
        if "followers_of" in audience:
            creator = UserId(str(audience["followers_of"]))
            return await stores.followers.page(
                creator, after=None if after is None else UserId(after), limit=size
            )
        if "audience" in audience:
            return await stores.audiences.page(str(audience["audience"]), after, size)
        conditions = segments.parse(audience["segment"]) if "segment" in audience else None
        return await stores.users.matching(conditions, after, size)

    async def _waits(
        self, campaign: Campaign, people: list[UserId], now: float
    ) -> dict[float, list[UserId]]:
        """People by how long they wait: for ``local_time``, until that hour in their
        zone (within the next day); otherwise not at all."""
        if not people:
            return {}
        if campaign.local_time is None:
            return {0.0: people}
        zones = await self._runtime.stores.users.timezones(people)
        hour, minute = (int(p) for p in campaign.local_time.split(":"))
        waits: dict[float, list[UserId]] = {}
        by_zone: dict[str, float] = {}  # a page of 50,000 people lives in a few hundred zones
        for person in people:
            zone = zones.get(person, "UTC")
            delay = by_zone.get(zone)
            if delay is None:
                delay = by_zone[zone] = local_wait(now, zone, hour, minute)
            waits.setdefault(delay, []).append(person)
        return waits


def step_size(settings: Settings) -> int:
    """People per page of an unthrottled expansion: as many as a fan-out turn makes
    batches of, so a campaign feeds evaluation in writes as few as a follower fan-out."""
    return settings.batch_size * settings.fanout_slice_batches


def local_wait(now: float, zone: str, hour: int, minute: int) -> float:
    """Seconds from ``now`` to the next ``hour:minute`` on the wall clock of ``zone``."""
    tz = ZoneInfo(zone)
    local = dt.datetime.fromtimestamp(now, tz)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target = (local + dt.timedelta(days=1)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )
    # Wall-clock arithmetic in the zone, then back to an instant (DST-correct).
    when = dt.datetime(target.year, target.month, target.day, hour, minute, tzinfo=tz)
    return max(when.timestamp() - now, 0.0)


def campaign_event(campaign: Campaign, spec: TypeSpec) -> Event:
    """The event every batch of the campaign carries: the same for whoever expands it. Its
    type decides channels, routing and whether people who never chose get it."""
    doc = campaign.doc
    payload = dict(doc.get("payload") or {})
    return Event(
        event_id=campaign_event_id(campaign.id),
        sender=campaign.sender,
        type=campaign.type,
        priority=Priority.P2,
        fan_out=FanOut.FOLLOWERS,
        channels=spec.channels,
        created_at=campaign.start_at,
        expires_at=campaign.start_at + int(doc.get("ttl_seconds") or spec.ttl_seconds),
        idempotency_key=f"campaign:{campaign.id}",
        idempotency_expires_at=campaign.start_at,
        title=str(payload.get("title", "")),
        body=str(payload.get("body", "")),
        mandatory=spec.mandatory,
        default_enabled=spec.enabled_by_default,
        routing=spec.routing,
        retry=spec.retry,
        overflow=spec.overflow,
        campaign=campaign.id,
        template=doc.get("template"),
        template_version=doc.get("template_version"),
        payload=payload,
    )


def campaign_event_id(campaign_id: str) -> EventId:
    """The campaign's event id, derived (not stored): every scheduler computes the same."""
    return EventId(f"evt_{hashlib.sha256(campaign_id.encode()).hexdigest()[:32]}")
