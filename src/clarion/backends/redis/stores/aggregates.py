"""Aggregation windows in Redis, when the queues are there: one JSON state per key (the
fields of ``policy.aggregation.Window``) and, per key and window, a hash of the answers
each notification got. (Lua's cjson writes an empty list as ``{}``; both readers take it
for an empty list.)

``join`` and ``take`` are one Lua script each for a whole claim; Redis runs a script
alone, so every window changes atomically against every other worker, and notifications
for one key in one claim see each other. The scripts mirror ``policy.aggregation.join``
and ``take`` step for step (the contract tests run the same cases on every store). A key
lives a day past its last notification; an answer, an hour past its window.

With Redis unreachable: ``AggregatesUnavailableError``, and evaluation delivers each
notification on its own (seed 001: "better to over-notify than lose notifications").
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.errors import AggregatesUnavailableError
from clarion.policy.aggregation import NAMED, AggregateKey, Joined, JoinRequest, WindowSummary

_PREFIX = "clarion:agg:"
_STATE_LIFE_S = 86_400
_ANSWER_LIFE_S = 3_600

_COMMON = f"""
cjson.encode_number_precision(14)  -- its most: window ends to the 0.1 ms
local NAMED, STATE_LIFE, ANSWER_LIFE = {NAMED}, {_STATE_LIFE_S}, {_ANSWER_LIFE_S}
local function load(key)
  local raw = redis.call('GET', key)
  if raw then return cjson.decode(raw) end
  return {{window = 0, ends_at = 0, entry = 0, count = 0, pending = 0, actors = {{}},
          timer_window = 0, taken_window = 0, taken = 0}}
end
"""

# KEYS: the state key of each request. ARGV: now, then three per request: seq, actor ('' for
# none), window length in seconds. Returns each request's answer as Joined JSON.
_JOIN = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local states, lengths, answers = {}, {}, {}
for i, key in ipairs(KEYS) do
  local seq, actor, length = ARGV[3 * i - 1], ARGV[3 * i], tonumber(ARGV[3 * i + 1])
  local w = states[key] or load(key)
  states[key] = w
  local seen = false
  for back = 0, 2 do
    seen = seen or redis.call('HGET', key .. ':m:' .. (w.window - back), seq)
  end
  if seen then
    answers[i] = seen
  else
    w.count = w.count + 1
    if actor ~= '' then
      local kept = {actor}
      for _, a in ipairs(w.actors) do
        if a ~= actor and #kept < NAMED then kept[#kept + 1] = a end
      end
      w.actors = kept
    end
    if w.entry == 0 then w.entry = tonumber(seq) end
    local role, timer = 'counted', false
    if w.window == 0 or now >= w.ends_at then
      role = 'first'
      w.window = w.window + 1
      w.ends_at = now + length
    else
      w.pending = w.pending + 1
      if w.timer_window < w.window then
        timer = true
        w.timer_window = w.window
      end
    end
    local joined = cjson.encode({role, w.window, w.ends_at, w.entry, w.count, w.actors, timer})
    local answers_key = key .. ':m:' .. w.window
    redis.call('HSET', answers_key, seq, joined)
    redis.call('EXPIRE', answers_key, math.ceil(length) + ANSWER_LIFE)
    lengths[key] = length
    answers[i] = joined
  end
end
for key, length in pairs(lengths) do
  redis.call('SET', key, cjson.encode(states[key]), 'EX', math.ceil(length) + STATE_LIFE)
end
return answers
"""
)

# KEYS: state keys; ARGV: the window number of each. Returns each summary as JSON, or ''.
_TAKE = (
    _COMMON
    + """
local answers = {}
for i, key in ipairs(KEYS) do
  local number = tonumber(ARGV[i])
  local raw = redis.call('GET', key)
  local answer = ''
  if raw and number > 0 then
    local w = cjson.decode(raw)
    if w.taken_window >= number then
      if w.taken ~= 0 and w.taken[1] == number then answer = cjson.encode(w.taken) end
    else
      w.taken_window = number
      w.taken = 0
      if w.pending > 0 then
        local named = {w.actors[1]}
        if w.pending > 1 and w.actors[2] then named[2] = w.actors[2] end
        w.taken = {number, w.pending, named, w.count, w.entry}
        w.pending = 0
        answer = cjson.encode(w.taken)
      end
      redis.call('SET', key, cjson.encode(w), 'KEEPTTL')
    end
  end
  answers[i] = answer
end
return answers
"""
)


def _key(key: AggregateKey) -> str:
    return _PREFIX + key.text()


class RedisAggregateStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._join = client.register_script(_JOIN)
        self._take = client.register_script(_TAKE)

    async def join(self, requests: Sequence[JoinRequest], now: float) -> list[Joined]:
        if not requests:
            return []
        args: list[str | int | float] = [repr(now)]
        for r in requests:
            args += [r.seq, r.actor or "", r.window_s]
        try:
            raw = await self._join(keys=[_key(r.key) for r in requests], args=args)
        except RedisError as exc:
            raise AggregatesUnavailableError(f"aggregation windows unavailable: {exc}") from exc
        return [Joined.from_json(orjson.loads(a)) for a in raw]

    async def take(self, windows: Sequence[tuple[AggregateKey, int]]) -> list[WindowSummary | None]:
        if not windows:
            return []
        try:
            raw = await self._take(keys=[_key(k) for k, _ in windows], args=[n for _, n in windows])
        except RedisError as exc:
            raise AggregatesUnavailableError(f"aggregation windows unavailable: {exc}") from exc
        return [WindowSummary.from_json(orjson.loads(a)) if a else None for a in raw]
