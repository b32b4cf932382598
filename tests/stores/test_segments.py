"""Paging through a segment, as a campaign's expansion does, on both backends: every match
once, in key order, however the matches fall across the stretches a store scans."""

from __future__ import annotations

import pytest

from clarion.backends.postgres.stores import users as postgres_users
from clarion.campaigns import segments
from clarion.runtime import Runtime
from clarion.stores.records import UserProfile
from clarion.types import UserId


async def test_pages_hold_every_match_once_in_order(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL scans the key a stretch at a time: make the stretches tiny, so pages end
    # inside stretches, stretches hold no match, and one page spans many stretches.
    monkeypatch.setattr(postgres_users, "_STRETCH", 3)
    people = [UserId(f"p{n:03d}") for n in range(60)]
    for n, person in enumerate(people):
        plan = "premium" if n % 7 in (0, 1) or 20 <= n < 30 else "free"
        await runtime.stores.users.put(UserProfile(person, attributes={"plan": plan}))
    wanted = [p for n, p in enumerate(people) if n % 7 in (0, 1) or 20 <= n < 30]
    conditions = segments.parse({"plan": "premium"})
    pages, after = [], None
    while page := await runtime.stores.users.matching(conditions, after, 4):
        assert len(page) <= 4
        pages.append(page)
        after = page[-1]
    assert [p for page in pages for p in page] == wanted
    assert await runtime.stores.users.count_matching(conditions) == len(wanted)
    everyone = await runtime.stores.users.matching(None, None, 100)
    assert everyone == people
