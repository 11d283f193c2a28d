"""Single activation and hot state in Redis, one Lua call per step.

``begin`` = dedupe check + lock + hot-state read in one round trip; ``commit`` = fenced state write + revision +
dirty/active bookkeeping + dedupe record + unlock + wake in one. A worker whose lock expired (paused, partitioned)
finds another token in the lock and its write is refused (:class:`~spawn_celery.errors.StateConflict`).
Fencing tokens come from one global counter, so they never repeat, even after an actor is evicted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import redis

from spawn_celery import keys, scripts

_RECORD_OF = """
local function record_of(item, prefix)
  local ok, doc = pcall(cjson.decode, item)
  if ok and type(doc) == 'table' and type(doc['k']) == 'table' and doc['k']['id'] then
    return redis.call('GET', prefix .. tostring(doc['k']['id']))
  end
  return false
end
"""
"""Lua shared by ``_BEGIN`` and ``_COMMIT``: the dedupe record of a mailbox item (``false`` if none), read with the
record key prefix of its actor."""

_BEGIN = _RECORD_OF + """
local done = redis.call('GET', KEYS[3])
if done then return {2, done} end
local token
local taken = false
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('GET', KEYS[10]) ~= ARGV[6] then
    if ARGV[2] ~= '' then
      redis.call('RPUSH', KEYS[5], ARGV[2])
      redis.call('ZADD', KEYS[7], 'NX', ARGV[3], ARGV[4])
      return {3}
    end
    redis.call('SET', KEYS[9], '1', 'PX', 1000)
    return {1, redis.call('PTTL', KEYS[2])}
  end
  token = redis.call('GET', KEYS[2])
else
  token = redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[2], token, 'PX', ARGV[1])
  redis.call('SET', KEYS[10], ARGV[6], 'PX', ARGV[1])
  while redis.call('RPOPLPUSH', KEYS[6], KEYS[5]) do end
  taken = true
end
local s = redis.call('HMGET', KEYS[1], 's', 'r')
local inst = false
if not s[1] and ARGV[5] ~= '' then inst = redis.call('HGET', KEYS[8], ARGV[5]) end
if taken and s[1] and ARGV[2] ~= '' and redis.call('LLEN', KEYS[5]) > 0 then
  redis.call('RPUSH', KEYS[5], ARGV[2])
  local head = redis.call('LPOP', KEYS[5])
  redis.call('RPUSH', KEYS[6], head)
  return {4, token, s[1], s[2], inst, head, record_of(head, ARGV[7])}
end
return {0, token, s[1], s[2], inst}
"""
"""Calls queued before this one go first: a call that takes the lock of an active actor whose mailbox still holds
calls (left by a turn that spent its budget) joins the mailbox's tail and gets its head instead (code 4), so calls
run in the order they reached the actor even across turns.

The lock's owner key (KEYS[10]) holds the nonce of the call that took it, set and deleted with the lock and
never renewed, so it never outlives it: the same call sent again after its reply was lost (redis-py retries
a call whose connection broke) finds its own nonce and gets the lock it took, instead of waiting a whole lease
for a lock nobody holds."""

_COMMIT = _RECORD_OF + """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local function unlock()
  redis.call('DEL', KEYS[2], KEYS[12])
  if redis.call('DEL', KEYS[10]) == 1 then
    redis.call('LPUSH', KEYS[6], '1')
    redis.call('LTRIM', KEYS[6], 0, 0)
    redis.call('PEXPIRE', KEYS[6], 2000)
  end
end
if ARGV[7] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  unlock()
  while redis.call('RPOPLPUSH', KEYS[8], KEYS[7]) do end
  redis.call('ZADD', KEYS[9], 'XX', 0, ARGV[9])
  return {tonumber(redis.call('HGET', KEYS[1], 'r') or '0'), 0, false, false}
end
local now = tonumber(ARGV[4])
local stored = redis.call('HGET', KEYS[1], 'r')
local fresh = not stored
local rev = tonumber(ARGV[12])
if not fresh then rev = tonumber(stored) end
local fields = {'u', now, 'dt', ARGV[5], 'st', ARGV[6], 'p', ARGV[10], 'tm', ARGV[11]}
if ARGV[3] == '1' then
  rev = rev + 1
  if ARGV[13] == '1' then redis.call('ZADD', KEYS[5], 'NX', now + tonumber(ARGV[6]), ARGV[9]) end
end
if fresh or ARGV[3] == '1' then
  fields[11], fields[12], fields[13], fields[14], fields[15], fields[16] = 's', ARGV[2], 'r', rev, 'f', ARGV[1]
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[14] == '0' then
  redis.call('ZADD', KEYS[4], 'NX', now + tonumber(ARGV[5]), ARGV[9])
else
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[9])
end
if ARGV[7] ~= '' then redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[8]) end
if ARGV[15] ~= '' then
  redis.call('RPUSH', KEYS[11], ARGV[15])
  if ARGV[16] ~= '0' then redis.call('EXPIRE', KEYS[11], ARGV[16]) end
end
if ARGV[17] ~= '' then redis.call('LREM', KEYS[8], 1, ARGV[17]) end
local nxt = false
if ARGV[19] == '1' then nxt = redis.call('LPOP', KEYS[7]) end
local rec = false
if nxt then
  redis.call('RPUSH', KEYS[8], nxt)
  redis.call('PEXPIRE', KEYS[2], ARGV[18])
  rec = record_of(nxt, ARGV[20])
else
  unlock()
  if redis.call('LLEN', KEYS[8]) == 0 and (ARGV[19] == '1' or redis.call('LLEN', KEYS[7]) == 0) then
    redis.call('ZREM', KEYS[9], ARGV[9])
  else
    redis.call('ZADD', KEYS[9], 'XX', 0, ARGV[9])
  end
end
local f = 0
if fresh then f = 1 end
return {rev, f, nxt, rec}
"""
"""The unlock wakes a process waiting for the lock only if one said it waits (KEYS[10], set by ``_BEGIN``); with
the mailbox on, nobody does but timer fires. A mailbox the LPOP found empty needs no LLEN.

Run twice for one invocation (a retried call whose first reply was lost: the invocation's record exists and the
lock is still ours, kept for the next mailbox item), it writes nothing more: it ends the turn instead, puts the
item the first run took back at the front of the mailbox, marks the mailbox for re-sending at the housekeeper's
next tick and unlocks, and returns the stored revision."""

_RECOVER = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZADD', KEYS[4], 'XX', ARGV[2], ARGV[1])
  return 0
end
local n = 0
for _, list in ipairs({KEYS[3], KEYS[2]}) do
  while true do
    local doc = redis.call('LPOP', list)
    if not doc then break end
    local id = cjson.decode(doc)['k']['id']
    redis.call('HSETNX', KEYS[6], id, doc)
    redis.call('ZADD', KEYS[5], 'NX', tonumber(ARGV[2]) + n, id)
    n = n + 1
  end
end
redis.call('ZREM', KEYS[4], ARGV[1])
return n
"""
"""Re-sends a dead or budget-ended holder's leftovers as scheduled calls 1 ms apart, in-flight first, then the
mailbox's order, so they are claimed in that order (equal scores would be claimed by invocation id)."""

_ABORT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[5])
  if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
  redis.call('ZADD', KEYS[4], 'XX', 0, ARGV[4])
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
  redis.call('PEXPIRE', KEYS[2], 2000)
  return 1
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def nonce() -> bytes:
    """A fresh random nonce naming one ``begin`` call (64 bits: two calls never share one)."""
    return os.urandom(8)


@dataclass(frozen=True)
class Begun:
    """Outcome of :meth:`Activations.begin`.

    Exactly one of: ``done`` (the invocation was applied before: its recorded reply), ``busy_ms`` (another
    invocation holds the lock for about that long), or ``token`` with the hot state (``state`` is ``None`` when the
    actor is not active in Redis).
    """

    token: int = 0
    state: bytes | None = None
    revision: int = 0
    done: bytes | None = None
    busy_ms: int = 0
    queued: bool = False
    """The actor was busy and the invocation went into its mailbox: the lock holder runs it in its turn."""
    instance: bytes | None = None
    """On activation of a spawned instance: its registry record (``parent<SEP>pending revision``), read afresh."""
    next_item: str | None = None
    """With ``token``: calls were queued before this one (a turn that spent its budget left them). This call went to
    the mailbox's tail; the holder runs this item, the head, first (and the rest in order)."""
    next_record: bytes | None = None
    """The dedupe record of ``next_item`` when it was applied before."""


@dataclass(frozen=True)
class Commit:
    """What to write on commit."""

    state: bytes
    changed: bool
    base_revision: int
    reply: bytes
    deactivate_ms: int
    snapshot_ms: int
    parent: str
    timers: str
    stateful: bool
    touch: bool = True
    """Whether this invocation counts as activity for the idle timeout (timer fires do not)."""
    dedupe_ttl_s: int = 0
    """Lifetime of this invocation's dedupe record; 0 = ``SPAWN_DEDUPE_TTL_S``."""
    item: str = ""
    """The mailbox document of this invocation when it came from the mailbox (removed from in-flight)."""
    batch: bool = False
    """Keep the lock and take the next mailbox item, if any, instead of unlocking."""
    answer: tuple[str, str, int] | None = None
    """The caller's reply record ``(list key, value, ttl_s)`` to push in the same call (saves a round trip)."""


@dataclass(frozen=True)
class Committed:
    """Outcome of :meth:`Activations.commit`."""

    revision: int
    """The state revision after the write."""
    activated: bool
    """Whether this commit activated the actor in Redis (created its hot state)."""
    next_item: str | None = None
    """The next mailbox document, taken under the still-held lock (batched turns), if any."""
    next_record: bytes | None = None
    """The dedupe record of ``next_item`` when it was applied before (a duplicate, or left by a dead holder)."""


class Activations:
    """The Redis side of single activation, hot state and dedupe."""

    def __init__(self, *, client: redis.Redis, lease_ms: int, dedupe_ttl_s: int) -> None:
        """Use ``client`` (bytes responses) with a lock lease and dedupe record lifetime."""
        self._redis = client
        self._lease_ms = lease_ms
        self._dedupe_ttl_s = dedupe_ttl_s
        self._begin = client.register_script(_BEGIN)
        self._commit = client.register_script(_COMMIT)
        self._abort = client.register_script(_ABORT)
        self._recover = client.register_script(_RECOVER)
        self._renew = client.register_script(_RENEW)
        self._runner = scripts.Runner(client)

    @property
    def lease_ms(self) -> int:
        """The lease of an activation lock, in milliseconds."""
        return self._lease_ms

    @property
    def client(self) -> redis.Redis:
        """The Redis client in use."""
        return self._redis

    def begin(
        self,
        system: str,
        name: str,
        invocation_id: str,
        mailbox_doc: str = "",
        now_ms: int = 0,
        *,
        instance: bool = False,
    ) -> Begun:
        """Check dedupe, take the lock and read hot state, atomically.

        With ``mailbox_doc``, an invocation that finds the actor busy is appended to its mailbox instead of waiting
        (``Begun.queued``); the lock holder runs it in the same turn. Taking the lock puts items that a dead holder
        left in flight back at the front of the mailbox; if the actor is active and calls still wait there, an
        invocation with ``mailbox_doc`` joins the tail and gets the head to run first (``Begun.next_item``). With
        ``instance``, an activation also reads the spawned instance's registry record (its pending restore
        revision) in the same call. Each call carries a fresh nonce, so the same call sent again after its reply was
        lost gets the lock it took.
        """
        result = self._runner.run(
            self._begin,
            [
                keys.state(system, name),
                keys.lock(system, name),
                keys.done(system, name, invocation_id),
                keys.FENCE,
                keys.mailbox(system, name),
                keys.inflight(system, name),
                keys.MAILBOXES,
                keys.instances(system),
                keys.waiting(system, name),
                keys.owner(system, name),
            ],
            [
                self._lease_ms,
                mailbox_doc,
                now_ms,
                keys.member(system, name),
                name if instance else "",
                nonce(),
                keys.done(system, name, ""),
            ],
        )
        code = int(result[0])
        if code == 3:
            return Begun(queued=True)
        if code == 2:
            return Begun(done=result[1])
        if code == 1:
            return Begun(busy_ms=max(int(result[1]), 0))
        state, revision = result[2], result[3]
        begun = Begun(token=int(result[1]), state=state, revision=int(revision) if revision else 0, instance=result[4])
        if code == 4:
            begun = replace(begun, next_item=bytes(result[5]).decode(), next_record=result[6])
        return begun

    def commit(
        self, system: str, name: str, invocation_id: str, token: int, now_ms: int, c: Commit
    ) -> Committed | None:
        """Write the new state fenced by ``token``, record the reply and unlock (or take the next mailbox item).

        Returns:
            What was committed (with ``Commit.batch``, also the next mailbox document to run under the still-held
            lock and its dedupe record if it was applied before), or ``None`` when the lock was lost (nothing
            written).
        """
        commit_keys = [
            keys.state(system, name),
            keys.lock(system, name),
            keys.done(system, name, invocation_id),
            keys.ACTIVE,
            keys.DIRTY,
            keys.wake(system, name),
            keys.mailbox(system, name),
            keys.inflight(system, name),
            keys.MAILBOXES,
            keys.waiting(system, name),
            c.answer[0] if c.answer is not None else keys.waiting(system, name),
            keys.owner(system, name),
        ]
        args: list[str | bytes | int] = [
            token,
            c.state,
            "1" if c.changed else "0",
            now_ms,
            c.deactivate_ms,
            c.snapshot_ms,
            c.reply,
            c.dedupe_ttl_s or self._dedupe_ttl_s,
            keys.member(system, name),
            c.parent,
            c.timers,
            c.base_revision,
            "1" if c.stateful else "0",
            "1" if c.touch else "0",
        ]
        answer = c.answer or ("", "", 0)
        args += [answer[1], answer[2], c.item, self._lease_ms, "1" if c.batch else "0", keys.done(system, name, "")]
        result = self._runner.run(self._commit, commit_keys, args)
        if result == -1:
            return None
        revision, activated, nxt, record = result  # Lua false arrives as None
        return Committed(int(revision), bool(int(activated)), nxt.decode() if nxt else None, record)

    def recover(self, now_ms: int, grace_ms: int, limit: int = 50) -> int:
        """Re-schedule mailbox items whose holder died (no lock, queued longer than ``grace_ms``); return how many."""
        stale = self._redis.zrangebyscore(keys.MAILBOXES, "-inf", now_ms - grace_ms, start=0, num=limit)
        moved = 0
        for raw in stale:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            system, name = keys.split_member(member)
            moved += int(
                self._recover(
                    keys=[
                        keys.lock(system, name),
                        keys.mailbox(system, name),
                        keys.inflight(system, name),
                        keys.MAILBOXES,
                        keys.SCHEDULED,
                        keys.SCHEDULED_PAYLOADS,
                    ],
                    args=[member, now_ms],
                )
            )
        return moved

    def abort(self, system: str, name: str, invocation_id: str, token: int, reply: bytes = b"") -> bool:
        """Release the lock without writing state; record ``reply`` for dedupe if given.

        Calls queued in the actor's mailbox meanwhile are marked for re-sending at the housekeeper's next tick.
        """
        return bool(
            self._abort(
                keys=[
                    keys.lock(system, name),
                    keys.wake(system, name),
                    keys.done(system, name, invocation_id),
                    keys.MAILBOXES,
                    keys.owner(system, name),
                ],
                args=[token, reply, self._dedupe_ttl_s, keys.member(system, name)],
            )
        )

    def renew(self, system: str, name: str, token: int) -> bool:
        """Extend the lock's lease by a full lease if ``token`` still holds it; ``False`` when it was lost."""
        return bool(self._renew(keys=[keys.lock(system, name)], args=[token, self._lease_ms]))

    def wait(self, system: str, name: str, timeout_ms: int) -> None:
        """Block until the actor is unlocked (or ``timeout_ms`` passes)."""
        self._redis.blpop([keys.wake(system, name)], timeout=max(timeout_ms, 1) / 1000.0)

    def done(self, system: str, name: str, invocation_id: str) -> bytes | None:
        """Return the recorded reply of an applied invocation, if any."""
        value = self._redis.get(keys.done(system, name, invocation_id))
        return value if value is None else bytes(value)  # type: ignore[arg-type]

    def record(self, system: str, name: str, invocation_id: str, reply: bytes) -> None:
        """Record a reply for dedupe without a lock (pooled actors)."""
        self._redis.set(keys.done(system, name, invocation_id), reply, ex=self._dedupe_ttl_s)
