"""The Lua scripts behind ``RedisBroker``: each lease change is one atomic server-side step.

Keys of one topic share a hash tag (``clarion:{push.p0}:…``) so a script only ever touches
one Redis Cluster slot, and topics spread over shards.

Per topic:

* ``stream``  — the queue; an entry is ``b`` (body), ``a`` (deliveries before this entry
  existed: a nacked message comes back as a new entry carrying its count) and ``e``
  (enqueued at). Acked entries are deleted, so the stream length is the live work.
* ``leases``  — sorted set, entry id → lease deadline on Clarion's clock (injectable, so
  tests move time instead of sleeping; Redis's own idle times follow the wall clock).
* ``delayed`` — sorted set, ``uid|attempts|enqueued_at`` → due time; the body waits in
  the ``bodies`` hash under the same member.
* ``dead``    — the dead-letter stream.

A lease is ``<consumer>:<delivery count>`` from the consumer group's pending-entries list:
it changes whenever anyone claims the entry again, so a late ack from a consumer whose
lease ran out matches nothing.
"""

# Shared helpers, prepended to every script.
_PRELUDE = """
local function fields(list)
  local f = {}
  for i = 1, #list, 2 do f[list[i]] = list[i + 1] end
  return f
end
local function deliveries(stream, group, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 then return nil, nil end
  return p[1][2], p[1][4]
end
local function held(stream, group, id, lease)
  local owner, count = deliveries(stream, group, id)
  return owner ~= nil and (owner .. ':' .. count) == lease
end
local function drop(stream, leases, group, id)
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('ZREM', leases, id)
end
local function bury(dead, topic, body, attempts, enqueued, err, now)
  redis.call('XADD', dead, '*', 't', topic, 'b', body, 'a', attempts, 'e', enqueued,
             'r', err, 'f', now)
end
"""

# KEYS: stream leases delayed bodies dead
# ARGV: group consumer limit now lease_until max_attempts topic error
# Returns a flat list: id, body, attempts, enqueued_at, delivery count, … per message.
CLAIM = (
    _PRELUDE
    + """
local stream, leases, delayed, bodies, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, consumer, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, lease_until, max_attempts = ARGV[4], ARGV[5], tonumber(ARGV[6])
local topic, err = ARGV[7], ARGV[8]

for _, member in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)) do
  local base, enqueued = string.match(member, '^[^|]*|([^|]*)|(.*)$')
  local body = redis.call('HGET', bodies, member)
  redis.call('XADD', stream, '*', 'b', body, 'a', base, 'e', enqueued)
  redis.call('ZREM', delayed, member)
  redis.call('HDEL', bodies, member)
end
if redis.call('EXISTS', stream) == 0 then return {} end
redis.pcall('XGROUP', 'CREATE', stream, group, '0')

local out, taken = {}, 0
local function hand_out(id, f, count)
  local attempts = tonumber(f['a']) + count
  if attempts > max_attempts then
    bury(dead, topic, f['b'], attempts - 1, f['e'], err, now)
    drop(stream, leases, group, id)
    return
  end
  redis.call('ZADD', leases, lease_until, id)
  for _, v in ipairs({id, f['b'], attempts, f['e'], count}) do out[#out + 1] = v end
  taken = taken + 1
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)) do
  local entries = redis.call('XCLAIM', stream, group, consumer, 0, id)
  if #entries == 0 or entries[1] == false then
    redis.call('XACK', stream, group, id)
    redis.call('ZREM', leases, id)
  else
    local _, count = deliveries(stream, group, id)
    hand_out(id, fields(entries[1][2]), count)
  end
end
if taken < limit then
  local got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', limit - taken,
                         'STREAMS', stream, '>')
  if got then
    for _, entry in ipairs(got[1][2]) do hand_out(entry[1], fields(entry[2]), 1) end
  end
end
return out
"""
)

# KEYS: stream leases
# ARGV: group lease_until then id lease pairs. Restarts the lease of entries still held.
RENEW = (
    _PRELUDE
    + """
local stream, leases, group, lease_until = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  if held(stream, group, ARGV[i], ARGV[i + 1]) then
    redis.call('ZADD', leases, 'XX', lease_until, ARGV[i])
  end
end
return 0
"""
)

# KEYS: stream leases
# ARGV: group then id lease pairs. Deletes entries still held.
ACK = (
    _PRELUDE
    + """
local stream, leases, group = KEYS[1], KEYS[2], ARGV[1]
local gone = 0
for i = 2, #ARGV, 2 do
  if held(stream, group, ARGV[i], ARGV[i + 1]) then
    drop(stream, leases, group, ARGV[i])
    gone = gone + 1
  end
end
return gone
"""
)

# KEYS: stream leases delayed bodies
# ARGV: group id lease body attempts enqueued_at due
# Gives a held entry back: it returns as a new entry (carrying its delivery count) when due.
NACK = (
    _PRELUDE
    + """
local stream, leases, delayed, bodies = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, id, lease = ARGV[1], ARGV[2], ARGV[3]
if not held(stream, group, id, lease) then return 0 end
drop(stream, leases, group, id)
local member = id .. '|' .. ARGV[5] .. '|' .. ARGV[6]
redis.call('HSET', bodies, member, ARGV[4])
redis.call('ZADD', delayed, ARGV[7], member)
return 1
"""
)

# KEYS: stream leases dead
# ARGV: group id lease topic body attempts enqueued_at error now
BURY = (
    _PRELUDE
    + """
local stream, leases, dead = KEYS[1], KEYS[2], KEYS[3]
local group, id, lease = ARGV[1], ARGV[2], ARGV[3]
if not held(stream, group, id, lease) then return 0 end
drop(stream, leases, group, id)
bury(dead, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return 1
"""
)
