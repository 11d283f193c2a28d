"""Deactivation: idle for ``deactivate_timeout`` since the last call -> flushed to SQL and evicted from Redis."""

from __future__ import annotations

import time

import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.services import Services
from tests.semantics.conftest import SYSTEM, actor_keys, notes, unique, wait_for


def test_idle_actor_is_flushed_evicted_and_reactivated_with_its_state(
    client: Client, services: Services, side: redis.Redis, sem_settings: Settings
) -> None:
    # Given an actor (700 ms idle timeout, 60 s snapshot period) changed 3 times and not yet in SQL
    name = unique("idle")
    client.spawn(SYSTEM, name, "brief")
    for _ in range(3):
        client.invoke(SYSTEM, name, "increment")
    assert services.statestore.load(SYSTEM, name) is None
    # When it stays idle
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"), timeout=5)
    # Then its state is in SQL and Redis holds nothing of it but TTL-bound dedupe records
    saved = services.statestore.load(SYSTEM, name)
    assert saved is not None and saved.revision == 3
    wait_for(lambda: actor_keys(side, name) == [], timeout=10)
    for key in side.scan_iter(match=f"sp:dn:semtests:{name}:*"):
        assert 0 < side.ttl(key) <= sem_settings.dedupe_ttl_s
    # and its next call re-activates it from SQL
    assert client.invoke(SYSTEM, name, "increment") == 4
    assert client.state(SYSTEM, name).revision == 4
    assert len(notes(side, f"init:{name}")) == 2


def test_deactivation_counts_idle_time_since_the_last_call(client: Client, side: redis.Redis) -> None:
    # Given a 700 ms idle timeout, calls every 250 ms for 2 s keep the actor active
    name = unique("busy")
    client.spawn(SYSTEM, name, "brief")
    for _ in range(8):
        client.invoke(SYSTEM, name, "increment")
        last = time.monotonic()
        time.sleep(0.25)
    assert len(notes(side, f"init:{name}")) == 1
    # then, idle, it goes: counted from its last call (not early; the upper bound is loose for busy machines)
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"), timeout=5, every=0.01)
    assert 0.6 <= time.monotonic() - last < 3.0
