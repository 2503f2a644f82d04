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
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred, gatherResults

from engine.state.interface import DEFAULT_LEASE_TTL, Clock, expiry_ms, now_ms, ttl_ms
from engine.state.redis import RedisClient, RedisCommandError, Script
from engine.state.resp import ErrorReply, Reply

__all__ = ["ACQUIRE", "RENEW", "RedisState"]

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


def _integer(reply: Reply) -> int:
    if isinstance(reply, int):
        return reply
    raise RedisCommandError(ErrorReply(f"ERR expected an integer reply, got {reply!r:.80}"))


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

    def ready(self) -> Deferred[None]:
        return self.client.wait_connected()

    def close(self) -> Deferred[None]:
        return self.client.close()
