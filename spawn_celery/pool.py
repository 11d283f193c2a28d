"""Concurrency bound of POOLED actors: ``max_pool_size`` slots shared by every worker, leased in Redis."""

from __future__ import annotations

import time

import redis

from spawn_celery import keys
from spawn_celery.errors import ActorBusy
from spawn_celery.registry import Entry

_ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class PoolSlot:
    """Bounds concurrent invocations of a pooled actor (``max_pool_size``; 0 = unbounded).

    The slots are a Redis sorted set of holders scored by lease expiry, so a worker killed mid-invocation frees
    its slot when the lease (``SPAWN_LOCK_LEASE_MS``) runs out instead of leaking it.
    """

    def __init__(self, client: redis.Redis, entry: Entry, limit: int, wait_ms: int, lease_ms: int, holder: str) -> None:
        """Bound ``entry`` to ``limit`` holders; wait up to ``wait_ms`` for a slot held by ``holder``."""
        self._redis = client
        self._acquire = self._redis.register_script(_ACQUIRE_SLOT)
        self._key = keys.pool(entry.system, entry.name)
        self._limit, self._wait_ms, self._lease_ms = limit, wait_ms, lease_ms
        self._name, self._holder = entry.name, holder

    def __enter__(self) -> None:
        """Take a slot, waiting for one to free up.

        Raises:
            ActorBusy: every slot stayed taken for ``wait_ms``.
        """
        if self._limit <= 0:
            return
        deadline = time.monotonic() + self._wait_ms / 1000.0
        pause = 0.002
        while True:
            now = int(time.time() * 1000)
            args: list[int | str] = [now, now + self._lease_ms, self._limit, self._holder, self._lease_ms * 2]
            if self._acquire(keys=[self._key], args=args):
                return
            if time.monotonic() > deadline:
                raise ActorBusy(f"pooled actor {self._name} has all {self._limit} slots busy")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def __exit__(self, *exc: object) -> None:
        """Give the slot back."""
        if self._limit > 0:
            self._redis.zrem(self._key, self._holder)
