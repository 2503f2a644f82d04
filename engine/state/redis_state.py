"""The Redis backend: state shared by every engine process on one Redis.

Each operation is one round trip and atomic: a single command where one
suffices (``ZREM``, ``ZCOUNT``), otherwise a Lua script, which Redis runs
with nothing else in between. The scripts are here, beside the Python that
calls them, so a reviewer reads both together.

Call counters: one sorted set per key, ``PREFIX + "slots:" + key``; a
member is a lease, its score the lease's expiry in milliseconds of the
caller's clock (the scripts never read Redis' ``TIME``, so every process
and every test decides with the same clock it schedules with). A member
whose score is not after "now" is expired: acquire drops those before
counting, count ignores them. Each write also gives the set a Redis TTL of
twice the lease time, so a key whose holders all died disappears on its
own. Multi-key renewal assumes one Redis (not Cluster).

ACM, per customer under ``PREFIX + "acm:" + len(customer) + ":" + customer + ":"``
(the length keeps any customer name from reading as another's keys):

- ``presence``, a hash operator -> ``state|since|expires|handled|call``:
  ``since`` in seconds as Python wrote them, ``expires`` the reservation's
  lease in milliseconds of the caller's clock (as for call slots: an
  expired reservation reads as ``available``), ``call`` the reserving call
  (last, so it may hold any character). One hash, so that reading a
  group's operators or trying a list of candidates is one ``HMGET``, not
  a command per operator: each command inside a script costs microseconds,
  and a decision reads about thirty operators.
- ``group:GROUP``, a hash operator -> level: the members of the group.
- ``memberships``, a hash operator -> JSON list of its groups, so that a
  change of groups can leave the old ones. That script builds the group
  keys from a prefix, which again assumes one Redis (not Cluster).
- ``queue:GROUP``, a sorted set of call ids scored by
  :func:`~engine.state.interface.queue_score` (the order of service, so a
  position is one ``ZRANK``), and ``since:GROUP`` the same calls scored by
  their ``at`` (the longest wait is its first member).
- ``counters``, a hash counter -> value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from twisted.internet.defer import Deferred, gatherResults

from engine.state.interface import (
    DEFAULT_LEASE_TTL,
    HELD,
    QUEUE_LEASE,
    Binding,
    Clock,
    OperatorInfo,
    check_state,
    expiry_ms,
    held_ttl,
    now_ms,
    queue_score,
    ttl_ms,
)
from engine.state.redis import RedisClient, RedisCommandError, Script
from engine.state.resp import ErrorReply, Reply

__all__ = [
    "ACQUIRE",
    "BIND",
    "DEQUEUE",
    "ENQUEUE",
    "MOVE_OPERATOR",
    "OPERATORS",
    "QUEUE_READ",
    "RENEW",
    "RENEW_QUEUED",
    "RESERVE",
    "SET_OPERATOR",
    "RedisState",
]

#: Leases per renewal script: bounds how long one script holds Redis.
RENEW_BATCH = 500

#: KEYS[1] slots; ARGV now, expiry, limit, lease, key ttl (ms). 1 if the lease holds a slot.
ACQUIRE = Script("""
local key, now, expiry = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local limit, lease, keep = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, lease) then
  if redis.call('ZCARD', key) >= limit then return 0 end
end
redis.call('ZADD', key, expiry, lease)
if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end
return 1
""")

#: KEYS slots; ARGV now, expiry, key ttl, then the lease of each key. Renewed count.
RENEW = Script("""
local now, expiry, keep = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local renewed = 0
for i, key in ipairs(KEYS) do
  local lease = ARGV[3 + i]
  local score = redis.call('ZSCORE', key, lease)
  if score and tonumber(score) > now then
    redis.call('ZADD', key, 'XX', expiry, lease)
    if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end
    renewed = renewed + 1
  end
end
return renewed
""")


#: A presence record's fields but the call (which may contain anything, so it comes last).
_RECORD = "'^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$'"

#: KEYS presence, memberships; ARGV group key prefix, operator, state, since, group-level pairs.
SET_OPERATOR = Script(f"""
local presence, memberships, groupkey, name = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local old = redis.call('HGET', memberships, name)
if old then
  for _, group in ipairs(cjson.decode(old)) do redis.call('HDEL', groupkey .. group, name) end
end
local groups = {{}}
for i = 5, #ARGV, 2 do
  groups[#groups + 1] = ARGV[i]
  redis.call('HSET', groupkey .. ARGV[i], name, ARGV[i + 1])
end
redis.call('HSET', memberships, name, cjson.encode(groups))
local was, handled = nil, 0
local record = redis.call('HGET', presence, name)
if record then
  local state, _, _, count = string.match(record, {_RECORD})
  was, handled = state, tonumber(count)
end
if was == 'logged_out' and ARGV[3] ~= 'logged_out' then handled = 0 end  -- a new shift
redis.call('HSET', presence, name, ARGV[3] .. '|' .. ARGV[4] .. '|0|' .. handled .. '|')
return 1
""")

#: KEYS group, presence. JSON [members (name, level, ...), their records]: one string to parse.
OPERATORS = Script("""
local members = redis.call('HGETALL', KEYS[1])
if #members == 0 then return '[[],[]]' end  -- cjson would write an empty table as {}
local names, records = {}, {}
for i = 1, #members, 2 do names[#names + 1] = members[i] end
for first = 1, #names, 1000 do  -- unpack() is bounded by Lua's stack
  local part = redis.call('HMGET', KEYS[2], unpack(names, first, math.min(#names, first + 999)))
  for _, record in ipairs(part) do records[#records + 1] = record end
end
return cjson.encode({members, records})
""")

#: A Lua table literal of the held states, for ``HELD[state]`` tests in the scripts.
_HELD_LUA = "{" + ", ".join(f"{s} = true" for s in sorted(HELD)) + "}"

#: KEYS presence; ARGV now, expiry, call, then the candidates in order. 1-based index, or 0.
RESERVE = Script(f"""
local now, n = tonumber(ARGV[1]), #ARGV - 3
for first = 1, n, 1000 do  -- usually the first part has one available
  local last = math.min(n, first + 999)
  local records = redis.call('HMGET', KEYS[1], unpack(ARGV, first + 3, last + 3))
  for j = 1, last - first + 1 do
    if records[j] then
      local state, since, expires, handled = string.match(records[j], {_RECORD})
      if state == 'available' or (({_HELD_LUA})[state] and tonumber(expires) <= now) then
        redis.call('HSET', KEYS[1], ARGV[first + j + 2],
                   'reserved|' .. since .. '|' .. ARGV[2] .. '|' .. handled .. '|' .. ARGV[3])
        return first + j - 1
      end
    end
  end
end
return 0
""")

#: KEYS presence; ARGV now (ms), call, new state, since, operator, expiry (0: let go).
#: 1 if the call held the operator and the move was made (keeps_idle() in Lua).
MOVE_OPERATOR = Script(f"""
local record = redis.call('HGET', KEYS[1], ARGV[5])
if not record then return 0 end
local state, since, expires, handled, call = string.match(record, {_RECORD})
if not ({_HELD_LUA})[state] or call ~= ARGV[2] or tonumber(expires) <= tonumber(ARGV[1]) then
  return 0
end
local new = ARGV[3]
handled = tonumber(handled)
if new == 'on_call' and state ~= 'on_call' then handled = handled + 1 end
local offered = state == 'reserved' or state == 'ringing'
if new ~= state and not ((new == 'available' or new == 'ringing') and offered) then
  since = ARGV[4]
end
if ARGV[6] == '0' then call = '' end
redis.call('HSET', KEYS[1], ARGV[5],
           new .. '|' .. since .. '|' .. ARGV[6] .. '|' .. handled .. '|' .. call)
return 1
""")

#: Drops the queue entries whose lease ran out (KEYS queue, since, leases; ARGV[1] now in ms).
_SWEEP = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
for _, call in ipairs(dead) do
  redis.call('ZREM', KEYS[1], call)
  redis.call('ZREM', KEYS[2], call)
  redis.call('ZREM', KEYS[3], call)
end
"""

#: KEYS queue, since, leases; ARGV now (ms), score, at, call, lease expiry (ms).
ENQUEUE = Script(f"""
{_SWEEP}
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
return 1
""")

#: KEYS queue, since, leases; ARGV now (ms), call. 1 if it was waiting.
DEQUEUE = Script(f"""
{_SWEEP}
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return redis.call('ZREM', KEYS[1], ARGV[2])
""")

#: KEYS queue, since, leases; ARGV now (ms), expiry, calls... (only those waiting).
RENEW_QUEUED = Script(f"""
{_SWEEP}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[i]) end
end
return 1
""")

#: KEYS queue, since, leases; ARGV now (ms), what ("position" CALL, "waiting", "oldest").
QUEUE_READ = Script(f"""
{_SWEEP}
if ARGV[2] == 'position' then return redis.call('ZRANK', KEYS[1], ARGV[3]) end
if ARGV[2] == 'waiting' then return redis.call('ZCARD', KEYS[1]) end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return first[2]
""")


def _text(reply: Reply) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8")
    raise RedisCommandError(ErrorReply(f"ERR expected a bulk string reply, got {reply!r:.80}"))


def _list(reply: Reply) -> list[Reply]:
    if isinstance(reply, list):
        return reply
    raise RedisCommandError(ErrorReply(f"ERR expected an array reply, got {reply!r:.80}"))


def _operator(name: str, level: str, record: str, now: int) -> OperatorInfo:
    """One operator from its presence record, with an expired hold read as available."""
    state, since, expires, handled, _call = record.split("|", 4)
    if state in HELD and int(expires) <= now:
        state = "available"
    return OperatorInfo(name, state, int(level), float(since), int(handled))


def _integer(reply: Reply) -> int:
    if isinstance(reply, int):
        return reply
    raise RedisCommandError(ErrorReply(f"ERR expected an integer reply, got {reply!r:.80}"))


#: KEYS bindings; ARGV now, contact, expiry, record. Drops the expired contacts, keeps the key
#: (a Redis TTL) as long as its last binding.
BIND = Script("""
local key, now, last = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3])
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local expiry = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if expiry <= now then redis.call('HDEL', key, all[i])
  elseif expiry > last then last = expiry end
end
redis.call('HSET', key, ARGV[2], ARGV[4])
redis.call('PEXPIRE', key, last - now)
return 1
""")


class RedisState:
    """A :class:`~engine.state.interface.SharedState` on a :class:`RedisClient`."""

    def __init__(
        self,
        client: RedisClient,
        clock: Clock,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        prefix: str = "vms:",
    ) -> None:
        self.client = client
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.prefix = prefix
        self._ttl = ttl_ms(lease_ttl)
        self._keep = 2 * self._ttl

    def _slots(self, key: str) -> str:
        return f"{self.prefix}slots:{key}"

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        d = self.client.eval_script(
            ACQUIRE, [self._slots(key)], [now, expiry, limit, lease, self._keep])
        return d.addCallback(lambda reply: _integer(reply) == 1)

    def release(self, key: str, lease: str) -> Deferred[None]:
        return self.client.execute("ZREM", self._slots(key), lease).addCallback(lambda _r: None)

    def count(self, key: str) -> Deferred[int]:
        d = self.client.execute("ZCOUNT", self._slots(key), f"({now_ms(self.clock)}", "+inf")
        return d.addCallback(_integer)

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        pairs = list(leases)
        batches = []
        for start in range(0, len(pairs), RENEW_BATCH):
            batch = pairs[start : start + RENEW_BATCH]
            keys = [self._slots(key) for key, _lease in batch]
            args: list[int | str] = [now, expiry, self._keep]
            args.extend(lease for _key, lease in batch)
            batches.append(self.client.eval_script(RENEW, keys, args).addCallback(_integer))
        d = gatherResults(batches, consumeErrors=True)
        return d.addCallbacks(lambda _counts: None, lambda f: f.value.subFailure)

    # -- ACM -------------------------------------------------------------------

    def _acm(self, customer: str) -> str:
        return f"{self.prefix}acm:{len(customer)}:{customer}:"

    def set_operator(
        self, customer: str, operator: str, state: str, groups: Mapping[str, int], since: float
    ) -> Deferred[None]:
        check_state(state)
        base = self._acm(customer)
        args: list[int | float | str] = [f"{base}group:", operator, state, float(since)]
        for group, level in groups.items():
            args += [group, int(level)]
        keys = [f"{base}presence", f"{base}memberships"]
        return self.client.eval_script(SET_OPERATOR, keys, args).addCallback(lambda _r: None)

    def operators(self, customer: str, group: str) -> Deferred[list[OperatorInfo]]:
        base = self._acm(customer)
        d = self.client.eval_script(OPERATORS, [f"{base}group:{group}", f"{base}presence"], [])

        def parse(reply: Reply) -> list[OperatorInfo]:
            members, records = json.loads(_text(reply))
            now = now_ms(self.clock)
            return sorted(
                _operator(name, level, record, now)
                for name, level, record in zip(members[::2], members[1::2], records, strict=True)
                if record)  # fmt: skip

        return d.addCallback(parse)

    def reserve(
        self, customer: str, candidates: Sequence[str], call_id: str, ttl: float
    ) -> Deferred[str | None]:
        now, expiry = expiry_ms(self.clock, ttl_ms(ttl))
        chosen = list(candidates)
        d = self.client.eval_script(
            RESERVE, [f"{self._acm(customer)}presence"], [now, expiry, call_id, *chosen])
        return d.addCallback(lambda reply: chosen[_integer(reply) - 1] if reply else None)

    def move_operator(
        self, customer: str, operator: str, call_id: str, new_state: str, ttl: float = 0.0
    ) -> Deferred[bool]:
        lease = held_ttl(new_state, ttl)
        now = now_ms(self.clock)
        key = f"{self._acm(customer)}presence"
        args: list[int | float | str] = [
            now, call_id, new_state, self.clock.seconds(), operator, now + lease if lease else 0]
        d = self.client.eval_script(MOVE_OPERATOR, [key], args)
        return d.addCallback(lambda reply: _integer(reply) == 1)

    def _queue(self, customer: str, group: str) -> list[str]:
        base = self._acm(customer)
        return [f"{base}queue:{group}", f"{base}since:{group}", f"{base}leases:{group}"]

    def enqueue(
        self, customer: str, group: str, call_id: str, priority: int, at: float
    ) -> Deferred[None]:
        score = queue_score(priority, at)
        now, expiry = expiry_ms(self.clock, ttl_ms(QUEUE_LEASE))
        d = self.client.eval_script(
            ENQUEUE, self._queue(customer, group), [now, score, float(at), call_id, expiry])
        return d.addCallback(lambda _r: None)

    def renew_queued(self, customer: str, group: str, call_ids: Sequence[str]) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, ttl_ms(QUEUE_LEASE))
        d = self.client.eval_script(
            RENEW_QUEUED, self._queue(customer, group), [now, expiry, *call_ids])
        return d.addCallback(lambda _r: None)

    def dequeue(self, customer: str, group: str, call_id: str) -> Deferred[bool]:
        d = self.client.eval_script(DEQUEUE, self._queue(customer, group),
                                    [now_ms(self.clock), call_id])  # fmt: skip
        return d.addCallback(lambda reply: _integer(reply) == 1)

    def _read_queue(self, customer: str, group: str, *what: str) -> Deferred[Reply]:
        return self.client.eval_script(QUEUE_READ, self._queue(customer, group),
                                       [now_ms(self.clock), *what])  # fmt: skip

    def position(self, customer: str, group: str, call_id: str) -> Deferred[int | None]:
        d = self._read_queue(customer, group, "position", call_id)
        return d.addCallback(lambda reply: None if reply is None else _integer(reply) + 1)

    def waiting(self, customer: str, group: str) -> Deferred[int]:
        return self._read_queue(customer, group, "waiting").addCallback(_integer)

    def oldest(self, customer: str, group: str) -> Deferred[float | None]:
        d = self._read_queue(customer, group, "oldest")
        return d.addCallback(lambda reply: None if reply is None else float(_text(reply)))

    def incr(self, customer: str, key: str, by: int = 1) -> Deferred[int]:
        d = self.client.execute("HINCRBY", f"{self._acm(customer)}counters", key, by)
        return d.addCallback(_integer)

    def counters(self, customer: str) -> Deferred[dict[str, int]]:
        d = self.client.execute("HGETALL", f"{self._acm(customer)}counters")

        def parse(reply: Reply) -> dict[str, int]:
            flat = _list(reply)
            return {_text(flat[i]): int(_text(flat[i + 1])) for i in range(0, len(flat), 2)}

        return d.addCallback(parse)

    def ready(self) -> Deferred[None]:
        return self.client.wait_connected()

    def close(self) -> Deferred[None]:
        return self.client.close()

    # -- registrations ------------------------------------------------------------
    # ``PREFIX + "reg:" + len(aor) + ":" + aor``, a hash contact -> ``expiry|port|host``
    # (expiry in milliseconds of the caller's clock; the host last, as it may hold anything).

    def _reg(self, aor: str) -> str:
        return f"{self.prefix}reg:{len(aor)}:{aor}"

    def bind(
        self, aor: str, contact: str, source: tuple[str, int], expires: float
    ) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, ttl_ms(expires))
        record = f"{expiry}|{int(source[1])}|{source[0]}"
        d = self.client.eval_script(BIND, [self._reg(aor)], [now, contact, expiry, record])
        return d.addCallback(lambda _r: None)

    def unbind(self, aor: str, contact: str | None) -> Deferred[None]:
        key = self._reg(aor)
        d = self.client.execute("DEL", key) if contact is None else \
            self.client.execute("HDEL", key, contact)  # fmt: skip
        return d.addCallback(lambda _r: None)

    def bindings(self, aor: str) -> Deferred[list[Binding]]:
        d = self.client.execute("HGETALL", self._reg(aor))

        def parse(reply: Reply) -> list[Binding]:
            flat, now, out = _list(reply), now_ms(self.clock), []
            for i in range(0, len(flat), 2):
                expiry, port, host = _text(flat[i + 1]).split("|", 2)
                if int(expiry) > now:
                    out.append(Binding(_text(flat[i]), (host, int(port)),
                                       -(-(int(expiry) - now) // 1000)))  # fmt: skip
            return sorted(out)

        return d.addCallback(parse)
