"""The scheduler every worker process runs: every fifth of a second (and on SQLite as soon
as another process commits) it fires the recurring sends that are due, and expands the
campaigns it holds the lease of (``campaigns.expansion``).

Any number of schedulers may look at the same schedule; the run fires exactly once:
* the event it sends carries the idempotency key ``schedule:<id>:<run time>``, so a second
  scheduler firing the same run gets the first one's event back (a repeat, not a send);
* then the schedule's next run moves forward by compare-and-set, which only one wins.
A scheduler killed between the two leaves the run to the next one, which repeats the
first step harmlessly. A run missed while everything was down fires once, at start, for
the latest run owed — never once per missed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time

from clarion.api.schemas import EventIn
from clarion.campaigns.expansion import Expansion
from clarion.errors import ClarionError
from clarion.ingest.prepare import Lookups, prepare_event
from clarion.ingest.validation import Limits
from clarion.models import SenderKey
from clarion.pipeline.messages import plan_first_steps
from clarion.runtime import Runtime
from clarion.scheduling import cron
from clarion.stores.records import Accepted, IngestRequest, Schedule

log = logging.getLogger(__name__)
TICK_S = 0.2
"""How often an idle scheduler looks for due sends and campaigns (two cheap reads a
round; a claim alone takes a write)."""
QUICKEST_S = 0.02
"""On SQLite a round also follows another process's commit (a campaign created to start
now starts within milliseconds, not within ``TICK_S``), but never sooner than this after
the last one: a busy store commits hundreds of times a second."""
_NEWS_POLL_S = 0.005
_DUE_AT_ONCE = 100


class Scheduler:
    def __init__(self, runtime: Runtime, name: str = "scheduler") -> None:
        self._runtime = runtime
        self.campaigns = Expansion(runtime, f"{name}:{secrets.token_hex(4)}")
        stores = runtime.stores

        async def template_version(template: str, version: int | None) -> int | None:
            found = await stores.templates.get(template, version)
            return None if found is None else found.version

        self._lookups = Lookups(stores.types.get, template_version)
        self._limits = Limits.of(runtime.settings)
        self._plan = functools.partial(plan_first_steps, batch_size=runtime.settings.batch_size)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            seen = self._runtime.store_version()
            expanded = 0
            try:
                await self.fire_due()
                expanded = await self.campaigns.tick()
            except Exception:  # the store is away: try again next tick
                log.exception("scheduler: this round failed; trying again")
            if expanded:  # a campaign may have more to expand: its next round at once
                continue
            await self._rest(stop, seen)

    async def _rest(self, stop: asyncio.Event, seen: int | None) -> None:
        """Until the next round: ``TICK_S``, or ``QUICKEST_S`` once the store has moved on
        from ``seen`` (its version as the round began; None: no way to tell)."""
        if seen is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            return
        ends = time.monotonic() + TICK_S
        await asyncio.sleep(QUICKEST_S)
        while not stop.is_set() and time.monotonic() < ends:
            if self._runtime.store_version() != seen:
                return
            await asyncio.sleep(_NEWS_POLL_S)

    async def tick(self) -> int:
        """Fire the recurring sends that are due and expand the campaigns this scheduler
        can claim; returns how many runs it fired."""
        fired = await self.fire_due()
        await self.campaigns.tick()
        return fired

    async def fire_due(self) -> int:
        """Fire the recurring sends that are due; returns how many runs it fired."""
        now = self._runtime.clock.now()
        fired = 0
        for schedule in await self._runtime.stores.schedules.due(now, _DUE_AT_ONCE):
            fired += await self._fire(schedule, now)
        return fired

    async def _fire(self, schedule: Schedule, now: float) -> int:
        owed = cron.latest_by(schedule.cron, schedule.timezone, now)
        sent = await self._send(schedule, owed, now)
        upcoming = cron.next_after(schedule.cron, schedule.timezone, now)
        moved = await self._runtime.stores.schedules.advance(
            schedule.id, schedule.next_run_at, upcoming, now
        )
        return int(sent and moved)

    async def _send(self, schedule: Schedule, owed: float, now: float) -> bool:
        """Send the run's event; False when it was a repeat or cannot be sent any more."""
        key = SenderKey(key_id="schedule", sender=schedule.sender, created_at=schedule.created_at)
        try:
            event = await prepare_event(
                self._lookups,
                key,
                EventIn.model_validate(schedule.event),
                self._limits,
                now,
                idempotency_key=f"schedule:{schedule.id}:{int(owed)}",
            )
        except (ClarionError, ValueError) as exc:
            log.warning("schedule %s: its event cannot be sent (%s); skipping", schedule.id, exc)
            return False
        burst = self._runtime.settings.rate_burst_s
        (outcome,) = await self._runtime.stores.events.accept(
            [IngestRequest(schedule.sender, None, burst, [event])], self._plan, now
        )
        accepted = isinstance(outcome, list) and any(
            isinstance(a, Accepted) and not a.duplicate for a in outcome
        )
        if accepted:
            log.info(
                "schedule %s: sent its %s run",
                schedule.id,
                owed,
                extra={"fields": {"event_id": event.event_id}},
            )
        return accepted
