"""Write-behind snapshots of dirty hot state to SQL, and deactivation of idle actors.

Snapshots: an actor whose state changed is in the ``dirty`` set, due ``snapshot_timeout`` ms after its first
unsaved change. The snapshotter writes the state at its current revision and clears the flag only if no newer
change arrived meanwhile. A failed write (database down) is retried after ``snapshot_retry_ms`` with a warning;
hot state keeps serving invocations meanwhile.

Deactivation: an actor idle for ``deactivate_timeout`` ms (time since its last invocation) is locked like an
invocation would lock it, flushed if dirty, and evicted from Redis with its timers, so Redis memory is bounded by
active actors. Its next invocation re-activates it from SQL.
"""

from __future__ import annotations

import logging
import os

import redis
from google.protobuf import any_pb2

from spawn_celery import keys
from spawn_celery.errors import StateStoreError
from spawn_celery.metrics import Observer
from spawn_celery.proto import actor_pb2
from spawn_celery.statestores.base import Snapshot, StateStore

log = logging.getLogger(__name__)

_READ = """
local out = {}
for i = 1, #KEYS do
  local s = redis.call('HMGET', KEYS[i], 's', 'r', 'p')
  out[#out + 1] = s[1] or false
  out[#out + 1] = s[2] or false
  out[#out + 1] = s[3] or false
end
return out
"""
"""The hot state, revision and parent of each state hash in KEYS (false where an actor has no hot state)."""

_CLEAN = """
local n = #KEYS - 1
for i = 1, n do
  if redis.call('HGET', KEYS[i + 1], 'r') == ARGV[n + i] then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return n
"""
"""Clear the dirty flag (KEYS[1]) of each written actor whose hot revision is still the one written: per actor,
its state hash in KEYS[2..], its member in ARGV[1..n] and the written revision in ARGV[n+1..2n]."""

_CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 1 then return redis.call('LRANGE', KEYS[3], 0, -1) end
local out = {}
for i = 4, #KEYS do
  local token = redis.call('INCR', KEYS[1])
  if redis.call('SET', KEYS[i], token, 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = token
    out[#out + 1] = redis.call('ZSCORE', KEYS[2], ARGV[i - 2]) and 1 or 0
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
redis.call('RPUSH', KEYS[3], unpack(out))
redis.call('PEXPIRE', KEYS[3], 10000)
return out
"""
"""Lock idle actors like invocations would (a fencing token each); say which of them are dirty. Per lock key in
KEYS[4..]: the token (0 if an invocation holds the lock) and 1 if dirty. The answer is kept 10 s under the
call's nonce (KEYS[3]): sent again because its reply was lost, the call returns the same tokens instead of
finding its own locks taken (which would leave them held for a whole lease)."""

_EVICT = """
local now = tonumber(ARGV[1])
local out = {}
for i = 1, (#KEYS - 5) / 3 do
  local state, lock, wake = KEYS[3 * i + 3], KEYS[3 * i + 4], KEYS[3 * i + 5]
  local token, member, keep = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  out[i] = 0
  if redis.call('GET', lock) == token then
    local score = redis.call('ZSCORE', KEYS[1], member)
    if keep == '1' or (score and tonumber(score) > now) or redis.call('ZSCORE', KEYS[2], member) then
      redis.call('DEL', lock)
    else
      local timers = redis.call('HGET', state, 'tm')
      if timers and timers ~= '' then
        for m in string.gmatch(timers, '[^\\n]+') do
          redis.call('ZREM', KEYS[3], m)
          redis.call('HDEL', KEYS[4], m)
        end
      end
      redis.call('DEL', state)
      redis.call('ZREM', KEYS[1], member)
      redis.call('ZREM', KEYS[2], member)
      redis.call('DEL', lock)
      redis.call('LPUSH', wake, '1')
      redis.call('PEXPIRE', wake, 100)
      out[i] = 1
    end
  end
  redis.call('ZADD', KEYS[5], 'XX', 0, member)
end
return out
"""
"""Evict the actors this step locked, in one call. KEYS: ACTIVE, DIRTY, TIMERS, TIMER_PERIODS, MAILBOXES, then per
actor its state, lock and wake keys; ARGV: now, then per actor its token, member and keep flag. Per actor, only
while the lock still holds its token: an actor touched since it was found idle (ACTIVE score in the future), dirty
again, or to be kept (``keep`` = '1': its snapshot failed) is only unlocked; any other is evicted with its timers.
Calls that found it locked meanwhile went to its mailbox: it is marked for re-sending at the next tick. Returns
1 per evicted actor, else 0."""


class Snapshotter:
    """Flushes dirty state and evicts idle actors."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        statestore: StateStore,
        lease_ms: int,
        retry_ms: int,
        observer: Observer | None = None,
    ) -> None:
        """Use ``client`` (bytes responses) and ``statestore``; ``observer`` hears of deactivations."""
        self._redis = client
        self._store = statestore
        self._lease_ms = lease_ms
        self._retry_ms = retry_ms
        self._observer = observer or Observer()
        self._read = client.register_script(_READ)
        self._clean = client.register_script(_CLEAN)
        self._claim = client.register_script(_CLAIM)
        self._evict = client.register_script(_EVICT)

    def flush_due(self, now_ms: int, limit: int = 200) -> int:
        """Write snapshots that are due, in one statestore transaction; return how many were written."""
        due = self._redis.zrangebyscore(keys.DIRTY, "-inf", now_ms, start=0, num=limit)
        return self.flush_batch([_text(m) for m in due], now_ms)

    def flush_all(self, now_ms: int, batch: int = 200) -> int:
        """Write every dirty actor now (graceful shutdown); return how many were written."""
        members = [_text(m) for m in self._redis.zrange(keys.DIRTY, 0, -1)]
        return sum(self.flush_batch(members[i : i + batch], now_ms) for i in range(0, len(members), batch))

    def flush_batch(self, members: list[str], now_ms: int) -> int:
        """Write several actors' hot state in one transaction; return how many were written."""
        return len(self._write(members, now_ms))

    def _write(self, members: list[str], now_ms: int) -> set[str]:
        """Write ``members``' hot state in one statestore transaction (2 Redis calls for the whole batch).

        Return the members that need no more writing (written, or without hot state). On a database failure their
        snapshots are due again after the retry delay and none is returned.
        """
        if not members:
            return set()
        ids = [keys.split_member(m) for m in members]
        found = self._read(keys=[keys.state(system, name) for system, name in ids])
        snapshots, written, gone = [], [], []  # written[i] is the member of snapshots[i]
        for i, (m, (system, name)) in enumerate(zip(members, ids, strict=True)):
            raw, revision, parent = found[3 * i : 3 * i + 3]
            if raw is None:
                gone.append(m)
                continue
            state = actor_pb2.ActorState.FromString(raw if isinstance(raw, bytes) else raw.encode())
            snapshots.append(snapshot_of(system, name, _text(parent or b""), state, int(revision or 0)))
            written.append(m)
        if gone:
            self._redis.zrem(keys.DIRTY, *gone)
        try:
            self._store.save_many(snapshots)
        except StateStoreError as exc:
            log.warning("snapshot of %d actors failed, retrying in %d ms: %s", len(snapshots), self._retry_ms, exc)
            if written:
                self._redis.zadd(keys.DIRTY, dict.fromkeys(written, now_ms + self._retry_ms), xx=True)
            return set()
        if snapshots:
            self._clean(
                keys=[keys.DIRTY, *(keys.state(s.system, s.actor) for s in snapshots)],
                args=[*written, *(s.revision for s in snapshots)],
            )
        return set(written) | set(gone)

    def deactivate_idle(self, now_ms: int, limit: int = 200) -> int:
        """Evict actors idle past their deactivate timeout; return how many were evicted."""
        idle = self._redis.zrangebyscore(keys.ACTIVE, "-inf", now_ms, start=0, num=limit)
        return self.deactivate(sorted({_text(m) for m in idle}), now_ms)

    def deactivate(self, members: list[str], now_ms: int) -> int:
        """Flush and evict the actors ``members`` that are still idle and not locked by an invocation.

        A batch costs a fixed number of round trips: lock them all (one script), write the dirty ones (one
        statestore transaction), evict (one script). Return how many were evicted.
        """
        if not members:
            return 0
        ids = [keys.split_member(m) for m in members]
        claim_keys = [keys.FENCE, keys.DIRTY, keys.claim(os.urandom(8).hex()), *(keys.lock(s, n) for s, n in ids)]
        claimed = self._claim(keys=claim_keys, args=[self._lease_ms, *members])  # resends: same nonce, same answer
        tokens = {m: int(claimed[2 * i]) for i, m in enumerate(members) if int(claimed[2 * i])}
        if not tokens:
            return 0  # every one of them is running an invocation: not idle
        dirty = [m for i, m in enumerate(members) if int(claimed[2 * i]) and int(claimed[2 * i + 1])]
        try:
            unwritten = set(dirty) - self._write(dirty, now_ms) if dirty else set()
        except BaseException:  # e.g. Redis failed mid-way: unlock at once rather than after the lease
            self._release(tokens)
            raise
        return self._evicted(tokens, unwritten, now_ms)

    def _evicted(self, tokens: dict[str, int], keep: set[str], now_ms: int) -> int:
        """Evict the locked actors ``tokens`` (``member -> token``) in one call; return how many were evicted.

        Those in ``keep`` are only unlocked (their snapshot failed: they stay active).
        """
        script_keys = [keys.ACTIVE, keys.DIRTY, keys.TIMERS, keys.TIMER_PERIODS, keys.MAILBOXES]
        args: list[str | int] = [now_ms]
        for member, token in tokens.items():
            system, name = keys.split_member(member)
            script_keys += [keys.state(system, name), keys.lock(system, name), keys.wake(system, name)]
            args += [token, member, "1" if member in keep else "0"]
        evicted = 0
        for member, outcome in zip(tokens, self._evict(keys=script_keys, args=args), strict=True):
            if int(outcome):
                system, name = keys.split_member(member)
                log.debug("deactivated %s/%s", system, name)
                self._observer.deactivated(system)
                evicted += 1
        return evicted

    def _release(self, tokens: dict[str, int]) -> None:
        """Unlock actors this step locked (``member -> token``) and have their queued calls re-sent."""
        self._evicted(tokens, set(tokens), 0)


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def state_of(snapshot: Snapshot) -> actor_pb2.ActorState:
    """The ``ActorState`` a stored snapshot holds."""
    state = actor_pb2.ActorState(tags=dict(snapshot.tags))
    if snapshot.type_url:
        state.state.CopyFrom(any_pb2.Any(type_url=snapshot.type_url, value=snapshot.data))
    return state


def snapshot_of(system: str, name: str, parent: str, state: actor_pb2.ActorState, revision: int) -> Snapshot:
    """The SQL snapshot of an ``ActorState`` at ``revision``."""
    return Snapshot(
        system=system,
        actor=name,
        revision=revision,
        type_url=state.state.type_url if state.HasField("state") else "",
        data=state.state.value if state.HasField("state") else b"",
        tags=dict(state.tags),
        parent=parent,
    )
