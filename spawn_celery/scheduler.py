"""Durable timers and scheduled invocations in Redis sorted sets (never Celery ETA/countdown).

A scheduled invocation is stored under its id with its due time. Any number of housekeepers poll; a claim is one
Lua call that pushes the entry's due time forward by a lease, so only one replica sends it; the entry is deleted
after the send. A replica that dies between claim and send leaves the entry to be claimed again after the lease,
and the invocation id makes a second send harmless.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import redis

from spawn_celery import keys
from spawn_celery.message import Message

_CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 1 then return redis.call('LRANGE', KEYS[3], 0, -1) end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local m = due[i]
  local period = redis.call('HGET', KEYS[2], m)
  if period then
    if ARGV[4] == '1' then
      local nxt = tonumber(due[i + 1]) + tonumber(period)
      if nxt <= tonumber(ARGV[1]) then nxt = tonumber(ARGV[1]) + tonumber(period) end
      redis.call('ZADD', KEYS[1], nxt, m)
    else
      redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), m)
    end
    table.insert(out, m)
    table.insert(out, due[i + 1])
    table.insert(out, period)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
if #out > 0 then
  redis.call('RPUSH', KEYS[3], unpack(out))
  redis.call('PEXPIRE', KEYS[3], 10000)
end
return out
"""
"""A claim keeps what it claimed for 10 s under its nonce (KEYS[3]): sent again with the same nonce because its reply
was lost (a broken connection), it returns the same entries instead of finding them pushed a lease ahead."""


TIMER_ID_PREFIX = "t."
"""Invocation ids of timer fires start with this (they do not count as activity for deactivation)."""


TIMER_DEDUPE_TTL_S = 120
"""Dedupe window of one timer fire: short, so periodic fires do not pile up records in Redis for hours."""


def timer_invocation_id(system: str, name: str, action: str, due_ms: int) -> str:
    """The invocation id of one timer fire: deterministic, so a fire sent twice runs once."""
    return f"{TIMER_ID_PREFIX}{system}.{name}.{action}.{due_ms}"


def is_timer_fire(invocation_id: str, system: str, name: str, action: str) -> bool:
    """Whether ``invocation_id`` is a fire of timer ``action`` of actor ``name`` (not a workflow step it caused)."""
    prefix = f"{TIMER_ID_PREFIX}{system}.{name}.{action}."
    return invocation_id.startswith(prefix) and invocation_id[len(prefix):].isdigit()


@dataclass(frozen=True)
class Due:
    """A claimed entry: the member, the time it was due (ms) and its stored value."""

    member: str
    due_ms: int
    value: bytes


class Scheduler:
    """Stores and claims timers and scheduled invocations."""

    def __init__(self, *, client: redis.Redis, claim_lease_ms: int = 30_000, batch: int = 200) -> None:
        """Use ``client`` (bytes responses)."""
        self._redis = client
        self._lease = claim_lease_ms
        self._batch = batch
        self._claim = client.register_script(_CLAIM)

    def schedule(self, message: Message, queue: str, at_ms: int) -> None:
        """Store ``message`` to be sent to ``queue`` at ``at_ms`` (idempotent per invocation id)."""
        doc = invocation_doc(queue, message)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hsetnx(keys.SCHEDULED_PAYLOADS, message.id, doc)
        pipe.zadd(keys.SCHEDULED, {message.id: at_ms}, nx=True)
        pipe.execute()

    def claim_scheduled(self, now_ms: int) -> list[tuple[str, Message]]:
        """Claim due scheduled invocations: ``(queue, message)`` pairs; call :meth:`sent` after sending each."""
        raw = self._claimed(keys.SCHEDULED, keys.SCHEDULED_PAYLOADS, now_ms, "0")
        out: list[tuple[str, Message]] = []
        for i in range(0, len(raw), 3):
            out.append(invocation_of(raw[i + 2]))
        return out

    def sent(self, invocation_id: str) -> None:
        """Forget a scheduled invocation once it was sent."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(keys.SCHEDULED, invocation_id)
        pipe.hdel(keys.SCHEDULED_PAYLOADS, invocation_id)
        pipe.execute()

    def pending(self) -> int:
        """Number of scheduled invocations not yet sent."""
        return int(self._redis.zcard(keys.SCHEDULED))

    def add_timers(self, system: str, name: str, timers: dict[str, int], now_ms: int) -> list[str]:
        """Start timer actions ``{action: period_ms}`` of an actor unless already running; return their members."""
        members = []
        pipe = self._redis.pipeline(transaction=True)
        for action, period in timers.items():
            m = keys.timer_member(system, name, action)
            members.append(m)
            pipe.hset(keys.TIMER_PERIODS, m, period)
            pipe.zadd(keys.TIMERS, {m: now_ms + period}, nx=True)
        if members:
            pipe.execute()
        return members

    def claim_timers(self, now_ms: int) -> list[Due]:
        """Claim due timer fires; each is rescheduled one period later in the same atomic step."""
        raw = self._claimed(keys.TIMERS, keys.TIMER_PERIODS, now_ms, "1")
        return [Due(raw[i].decode(), int(float(raw[i + 1])), raw[i + 2]) for i in range(0, len(raw), 3)]

    def _claimed(self, due: str, values: str, now_ms: int, periodic: str) -> list[bytes]:
        """Run one claim under a fresh nonce: the client's resends (``SPAWN_REDIS_RETRIES``) get the same answer."""
        claim_keys = [due, values, keys.claim(os.urandom(8).hex())]
        args: list[int | str] = [now_ms, self._lease, self._batch, periodic]
        return list(self._claim(keys=claim_keys, args=args))

    def remove_timers(self, members: list[str]) -> None:
        """Stop timers (an actor was deactivated)."""
        if members:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(keys.TIMERS, *members)
            pipe.hdel(keys.TIMER_PERIODS, *members)
            pipe.execute()


def invocation_doc(queue: str, message: Message) -> str:
    """The document of an invocation held in Redis to be run later.

    Scheduled calls and calls queued in a busy actor's mailbox share it, so a dead holder's mailbox can be re-sent
    as scheduled calls.
    """
    return json.dumps({"q": queue, "k": message.to_kwargs()}, separators=(",", ":"))


def invocation_of(doc: str | bytes) -> tuple[str, Message]:
    """The ``(queue, message)`` of an :func:`invocation_doc` document."""
    loaded = json.loads(doc)
    return loaded["q"], Message.from_kwargs(loaded["k"])
