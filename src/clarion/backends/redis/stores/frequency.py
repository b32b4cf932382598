"""Frequency-cap places in Redis (seed 001 "Frequency counter"): one sorted set per capped
person, member = the event's seq, score = when its place was taken.

``reserve`` is one Lua script for a whole claim's requests: Redis runs it alone, so the
check and the ZADD of every request are atomic against every other worker, and requests
for one person in one claim see each other's places. The script mirrors
``policy.frequency.allot``: an event holding a place already gets it again, P0 always
takes one, and otherwise a place is taken only if both windows have room.

Places are taken before delivery. A worker that dies in between leaves a place its
redelivered claim asks for again and gets; a place taken for a notification that then
does not go out (a kill switch raised in between) costs the person one notification of
their cap, never an extra one.

With Redis unreachable the places cannot be read or taken: ``CountsUnavailableError``,
and evaluation lets P0 and P1 through uncapped while P2 waits (seed 001).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.errors import CountsUnavailableError
from clarion.policy.frequency import DAY_S, HOUR_S, UNDER, CapCheck, SlotRequest
from clarion.types import UserId

_PREFIX = "clarion:freq:"

# KEYS: one per request (a person may appear more than once). ARGV: the hour window's and
# the day's lower bounds and now (as strings: a Lua number would lose precision), then
# four per request: seq, per_hour, per_day ('' for none), force ('1' or '0').
# Answers per request: '' (the place is taken), or 'day', 'hour:<score>' or both, comma
# separated, where <score> is the place that must leave the hour before there is room.
_RESERVE = """
local hour_from, day_from, now = ARGV[1], ARGV[2], ARGV[3]
local answers, pruned = {}, {}
for i, key in ipairs(KEYS) do
  local a = 3 + (i - 1) * 4
  local member, force = ARGV[a + 1], ARGV[a + 4] == '1'
  local per_hour, per_day = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if not pruned[key] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', day_from)
    pruned[key] = true
  end
  local answer = ''
  if not redis.call('ZSCORE', key, member) then
    if not force then
      if per_day and redis.call('ZCOUNT', key, '(' .. day_from, '+inf') >= per_day then
        answer = 'day'
      end
      if per_hour then
        local hour = redis.call('ZRANGEBYSCORE', key, '(' .. hour_from, '+inf', 'WITHSCORES')
        local n = #hour / 2
        if n >= per_hour then
          if answer ~= '' then answer = answer .. ',' end
          answer = answer .. 'hour:' .. hour[2 * (n - per_hour) + 2]
        end
      end
    end
    if answer == '' then
      redis.call('ZADD', key, now, member)
      redis.call('EXPIRE', key, 172800)  -- two days: places older than one never count
    end
  end
  answers[i] = answer
end
return answers
"""


def _key(user: UserId) -> str:
    return _PREFIX + user


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


def _answer(raw: bytes) -> CapCheck:
    if not raw:
        return UNDER
    over_day = over_hour = False
    frees_at = None
    for part in raw.decode().split(","):
        if part == "day":
            over_day = True
        else:
            over_hour = True
            frees_at = float(part.partition(":")[2]) + HOUR_S
    return CapCheck(over_hour, over_day, frees_at)


class RedisFrequencyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._reserve = client.register_script(_RESERVE)

    async def reserve(self, requests: Sequence[SlotRequest], now: float) -> list[CapCheck]:
        if not requests:
            return []
        args: list[str | int] = [repr(now - HOUR_S), repr(now - DAY_S), repr(now)]
        for r in requests:
            caps = r.caps
            args += [r.seq, _limit(caps.per_hour), _limit(caps.per_day), "1" if r.force else "0"]
        try:
            raw = await self._reserve(keys=[_key(r.user_id) for r in requests], args=args)
        except RedisError as exc:
            raise CountsUnavailableError(f"frequency counts unavailable: {exc}") from exc
        return [_answer(a) for a in raw]

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in user_ids:
                    pipe.zrangebyscore(_key(user), f"({since!r}", "+inf", withscores=True)
                answers = await pipe.execute()
        except RedisError as exc:
            raise CountsUnavailableError(f"frequency counts unavailable: {exc}") from exc
        return {
            user: [score for _, score in members]
            for user, members in zip(user_ids, answers, strict=True)
            if members
        }
