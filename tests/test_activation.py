"""Activations against the real Redis: a process waiting for a lock is woken by the unlock, not by its timeout."""

from __future__ import annotations

import threading
import time
import uuid

import redis

from spawn_celery import keys
from spawn_celery.activation import Activations, Commit


def _commit(state: bytes) -> Commit:
    return Commit(state=state, changed=True, base_revision=0, reply=b"", deactivate_ms=30_000, snapshot_ms=2_000,
                  parent="", timers="", stateful=True)


def test_a_waiter_is_woken_by_the_unlock_and_only_a_waiter_gets_a_wake() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    acts = Activations(client=client, lease_ms=30_000, dedupe_ttl_s=60)
    system, name = "acttests", f"w-{uuid.uuid4().hex[:8]}"
    # Given an unlock with nobody waiting: no wake is pushed
    first = acts.begin(system, name, "i-1")
    assert first.token and acts.commit(system, name, "i-1", first.token, int(time.time() * 1000), _commit(b"a"))
    assert not client.exists(keys.wake(system, name))
    # And a holder, and a second process that finds the actor busy and waits up to 10 s
    held = acts.begin(system, name, "i-2")
    busy = acts.begin(system, name, "i-3")
    assert busy.busy_ms > 0 and client.exists(keys.waiting(system, name))
    woke: list[float] = []

    def wait() -> None:
        start = time.monotonic()
        acts.wait(system, name, 10_000)
        woke.append(time.monotonic() - start)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    # When the holder commits
    assert acts.commit(system, name, "i-2", held.token, int(time.time() * 1000), _commit(b"b"))
    waiter.join(15)
    # Then the waiter woke long before its timeout, the flag is gone, and it now takes the lock
    assert woke and woke[0] < 5.0
    assert not client.exists(keys.waiting(system, name))
    again = acts.begin(system, name, "i-3")
    assert again.token > held.token and again.state is not None and again.revision == 2
    client.delete(*client.keys(f"sp:*:{system}:{name}*"))
    client.zrem(keys.ACTIVE, keys.member(system, name))
    client.zrem(keys.DIRTY, keys.member(system, name))
