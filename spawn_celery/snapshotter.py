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

import redis
from google.protobuf import any_pb2

from spawn_celery import keys
from spawn_celery.errors import StateStoreError
from spawn_celery.metrics import Observer
from spawn_celery.proto import actor_pb2
from spawn_celery.statestores.base import Snapshot, StateStore

log = logging.getLogger(__name__)

_CLEAN = """
if redis.call('HGET', KEYS[1], 'r') == ARGV[2] then redis.call('ZREM', KEYS[2], ARGV[1]) return 1 end
return 0
"""

_CLAIM = """
local out = {}
for i = 3, #KEYS do
  local token = redis.call('INCR', KEYS[1])
  if redis.call('SET', KEYS[i], token, 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = token
    out[#out + 1] = redis.call('ZSCORE', KEYS[2], ARGV[i - 1]) and 1 or 0
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
"""
"""Lock idle actors like invocations would (a fencing token each); say which of them are dirty. Per lock key in
KEYS[3..]: the token (0 if an invocation holds the lock) and 1 if dirty."""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""

_EVICT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local score = redis.call('ZSCORE', KEYS[3], ARGV[2])
if score and tonumber(score) > tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('ZSCORE', KEYS[4], ARGV[2]) and ARGV[4] == '1' then
  redis.call('DEL', KEYS[2])
  return 0
end
local timers = redis.call('HGET', KEYS[1], 'tm')
if timers and timers ~= '' then
  for m in string.gmatch(timers, '[^\\n]+') do
    redis.call('ZREM', KEYS[5], m)
    redis.call('HDEL', KEYS[6], m)
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('LPUSH', KEYS[7], '1')
redis.call('PEXPIRE', KEYS[7], 100)
return 1
"""


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
        self._clean = client.register_script(_CLEAN)
        self._claim = client.register_script(_CLAIM)
        self._unlock = client.register_script(_UNLOCK)
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
        """Write ``members``' hot state in one statestore transaction (2 Redis round trips for the whole batch).

        Return the members that need no more writing (written, or without hot state). On a database failure their
        snapshots are due again after the retry delay and none is returned.
        """
        if not members:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for m in members:
            system, name = keys.split_member(m)
            pipe.hmget(keys.state(system, name), ["s", "r", "p"])
        snapshots, gone = [], []
        for m, (raw, revision, parent) in zip(members, pipe.execute(), strict=True):
            system, name = keys.split_member(m)
            if raw is None:
                gone.append(m)
                continue
            state = actor_pb2.ActorState.FromString(raw if isinstance(raw, bytes) else raw.encode())
            snapshots.append(snapshot_of(system, name, _text(parent or b""), state, int(revision or 0)))
        if gone:
            self._redis.zrem(keys.DIRTY, *gone)
        try:
            self._store.save_many(snapshots)
        except StateStoreError as exc:
            log.warning("snapshot of %d actors failed, retrying in %d ms: %s", len(snapshots), self._retry_ms, exc)
            retry = {keys.member(s.system, s.actor): now_ms + self._retry_ms for s in snapshots}
            if retry:
                self._redis.zadd(keys.DIRTY, retry, xx=True)
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for s in snapshots:
            self._clean(
                keys=[keys.state(s.system, s.actor), keys.DIRTY],
                args=[keys.member(s.system, s.actor), s.revision],
                client=pipe,
            )
        pipe.execute()
        return {keys.member(s.system, s.actor) for s in snapshots} | set(gone)

    def deactivate_idle(self, now_ms: int, limit: int = 200) -> int:
        """Evict actors idle past their deactivate timeout; return how many were evicted."""
        idle = self._redis.zrangebyscore(keys.ACTIVE, "-inf", now_ms, start=0, num=limit)
        return self.deactivate(sorted({_text(m) for m in idle}), now_ms)

    def deactivate(self, members: list[str], now_ms: int) -> int:
        """Flush and evict the actors ``members`` that are still idle and not locked by an invocation.

        A batch costs a fixed number of round trips: lock them all (one script), write the dirty ones (one
        statestore transaction), evict (one pipeline of scripts). Return how many were evicted.
        """
        if not members:
            return 0
        ids = [keys.split_member(m) for m in members]
        claimed = self._claim(
            keys=[keys.FENCE, keys.DIRTY, *(keys.lock(system, name) for system, name in ids)],
            args=[self._lease_ms, *members],
        )
        tokens = {m: int(claimed[2 * i]) for i, m in enumerate(members) if int(claimed[2 * i])}
        if not tokens:
            return 0  # every one of them is running an invocation: not idle
        dirty = [m for i, m in enumerate(members) if int(claimed[2 * i]) and int(claimed[2 * i + 1])]
        try:
            unwritten = set(dirty) - self._write(dirty, now_ms) if dirty else set()
        except BaseException:  # e.g. Redis failed mid-way: unlock at once rather than after the lease
            self._release(tokens)
            raise
        pipe = self._redis.pipeline(transaction=False)
        for member, token in tokens.items():
            system, name = keys.split_member(member)
            if member in unwritten:  # the database is down: keep it active, try again later
                self._unlock(keys=[keys.lock(system, name)], args=[token], client=pipe)
                continue
            self._evict(
                keys=[
                    keys.state(system, name),
                    keys.lock(system, name),
                    keys.ACTIVE,
                    keys.DIRTY,
                    keys.TIMERS,
                    keys.TIMER_PERIODS,
                    keys.wake(system, name),
                ],
                args=[token, member, now_ms, "1"],
                client=pipe,
            )
        # calls that found an actor locked by this step went to its mailbox: re-send them at the next tick
        pipe.zadd(keys.MAILBOXES, dict.fromkeys(tokens, 0), xx=True)
        results = pipe.execute()
        evicted = 0
        outcomes = iter(results[:-1])
        for member in tokens:
            outcome = next(outcomes)
            if member in unwritten:
                continue
            if outcome:
                system, name = keys.split_member(member)
                log.debug("deactivated %s/%s", system, name)
                self._observer.deactivated(system)
                evicted += 1
        return evicted

    def _release(self, tokens: dict[str, int]) -> None:
        """Unlock actors this step locked (``member -> token``) and have their queued calls re-sent."""
        pipe = self._redis.pipeline(transaction=False)
        for member, token in tokens.items():
            system, name = keys.split_member(member)
            self._unlock(keys=[keys.lock(system, name)], args=[token], client=pipe)
        pipe.zadd(keys.MAILBOXES, dict.fromkeys(tokens, 0), xx=True)
        pipe.execute()


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
