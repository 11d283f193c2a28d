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
        """Write several actors' hot state in one transaction (2 Redis round trips for the whole batch)."""
        if not members:
            return 0
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
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for s in snapshots:
            self._clean(
                keys=[keys.state(s.system, s.actor), keys.DIRTY],
                args=[keys.member(s.system, s.actor), s.revision],
                client=pipe,
            )
        pipe.execute()
        return len(snapshots)

    def flush(self, member: str, now_ms: int) -> bool:
        """Write one actor's hot state to SQL at its current revision."""
        system, name = keys.split_member(member)
        raw, revision, parent = self._redis.hmget(keys.state(system, name), ["s", "r", "p"])
        if raw is None:
            self._redis.zrem(keys.DIRTY, member)
            return False
        state = actor_pb2.ActorState.FromString(raw if isinstance(raw, bytes) else raw.encode())
        snapshot = snapshot_of(system, name, _text(parent or b""), state, int(revision or 0))
        try:
            self._store.save(snapshot)
        except StateStoreError as exc:
            log.warning(
                "snapshot of %s/%s (revision %s) failed, retrying in %d ms: %s",
                system,
                name,
                snapshot.revision,
                self._retry_ms,
                exc,
            )
            self._redis.zadd(keys.DIRTY, {member: now_ms + self._retry_ms}, xx=True)
            return False
        self._clean(keys=[keys.state(system, name), keys.DIRTY], args=[member, snapshot.revision])
        return True

    def deactivate_idle(self, now_ms: int, limit: int = 200) -> int:
        """Evict actors idle past their deactivate timeout; return how many were evicted."""
        idle = self._redis.zrangebyscore(keys.ACTIVE, "-inf", now_ms, start=0, num=limit)
        return sum(self.deactivate(_text(m), now_ms) for m in idle)

    def deactivate(self, member: str, now_ms: int) -> bool:
        """Flush and evict one actor if it is still idle and not locked by an invocation."""
        system, name = keys.split_member(member)
        token = int(self._redis.incr(keys.FENCE))
        if not self._redis.set(keys.lock(system, name), token, nx=True, px=self._lease_ms):
            return False  # an invocation is running: not idle
        dirty = self._redis.zscore(keys.DIRTY, member) is not None
        if dirty and not self.flush(member, now_ms):
            self._redis.delete(keys.lock(system, name))
            self._redis.zadd(keys.MAILBOXES, {member: 0}, xx=True)  # calls queued meanwhile: re-send them now
            return False
        evicted = bool(
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
            )
        )
        # calls that found the actor locked by this eviction went to its mailbox: re-send them at the next tick
        self._redis.zadd(keys.MAILBOXES, {member: 0}, xx=True)
        if evicted:
            log.debug("deactivated %s/%s", system, name)
            self._observer.deactivated(system)
        return evicted


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
