"""Snapshotter batches against the real Redis and SQLite: which actors a deactivation batch evicts, which it leaves.

Invocations run in this process through the runtime, as a pool process runs them (Redis database 12, its own).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from spawn_celery import keys
from spawn_celery.cipher import Cipher
from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.message import Message, new_id
from spawn_celery.services import Services
from spawn_celery.snapshotter import _CLAIM, Snapshotter
from spawn_celery.statestores.sql import SqlStateStore
from spawn_celery.worker import register_actors
from tests import apps
from tests.support import ReplyDropper, flush_redis, make_settings

SYSTEM = "tests"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings: Settings = make_settings(tmp_path, redis_db=12)
    flush_redis(settings)
    services = Services.create(settings, actors=dict(apps.system.actors))
    register_actors(services, apps.system)
    yield services
    flush_redis(settings)


def _invoke(services: Services, name: str, times: int) -> None:
    """Spawn ``name`` and run ``times`` increments in this process (each one its own commit and revision)."""
    services.registry.spawn(SYSTEM, name, "counter")
    runtime = services.runtime()
    client = Client(services=services)
    for _ in range(times):
        request = client.request(SYSTEM, name, "increment", Increment(by=1))
        request.actor.id.parent = "counter"
        message = Message(new_id(), request)
        runtime.handle(Message.from_kwargs(message.to_kwargs()))


def _snapshotter(services: Services, store: SqlStateStore | None = None) -> Snapshotter:
    return Snapshotter(
        client=services.redis, statestore=store or services.statestore, lease_ms=30_000, retry_ms=1_000
    )


def test_a_batch_evicts_the_idle_and_leaves_the_busy_and_the_touched(services: Services) -> None:
    # Given four active, dirty actors; one is locked by a running invocation, one was called after it was found idle
    names = ["idle-a", "idle-b", "busy", "touched"]
    for i, name in enumerate(names):
        _invoke(services, name, i + 1)
    r = services.redis
    r.set(keys.lock(SYSTEM, "busy"), "999999", px=30_000)
    later = int(time.time() * 1000) + 10_000_000
    r.zadd(keys.ACTIVE, {keys.member(SYSTEM, "touched"): later + 1})
    # When one deactivation batch runs over all four
    evicted = _snapshotter(services).deactivate([keys.member(SYSTEM, n) for n in names], later)
    # Then exactly the two idle ones are written to SQL at their revision and gone from Redis
    assert evicted == 2
    for name, revision in (("idle-a", 1), ("idle-b", 2)):
        saved = services.statestore.load(SYSTEM, name)
        assert saved is not None and saved.revision == revision
        assert not r.exists(keys.state(SYSTEM, name), keys.lock(SYSTEM, name))
        assert r.zscore(keys.ACTIVE, keys.member(SYSTEM, name)) is None
        assert r.zscore(keys.DIRTY, keys.member(SYSTEM, name)) is None
    # And the busy one keeps its hot state and its holder's lock
    assert r.exists(keys.state(SYSTEM, "busy")) and r.get(keys.lock(SYSTEM, "busy")) == b"999999"
    # And the touched one keeps its hot state, unlocked, still active (its snapshot was written: it was dirty)
    assert r.exists(keys.state(SYSTEM, "touched")) and not r.exists(keys.lock(SYSTEM, "touched"))
    assert r.zscore(keys.ACTIVE, keys.member(SYSTEM, "touched")) == later + 1
    saved = services.statestore.load(SYSTEM, "touched")
    assert saved is not None and saved.revision == 4


def test_a_batch_whose_snapshot_fails_keeps_its_actors_active_dirty_and_unlocked(services: Services) -> None:
    # Given two active, dirty actors and a database nobody listens on
    names = ["keep-a", "keep-b"]
    for name in names:
        _invoke(services, name, 2)
    cipher = Cipher.from_settings(services.settings)
    down = SqlStateStore("postgresql+psycopg2://postgres@127.0.0.1:1/test", cipher=cipher)
    r = services.redis
    later = int(time.time() * 1000) + 10_000_000
    # When a deactivation batch runs
    evicted = _snapshotter(services, down).deactivate([keys.member(SYSTEM, n) for n in names], later)
    # Then nothing is evicted: hot state, dirty flag (due again after the retry delay) and activity stay; locks go
    assert evicted == 0
    for name in names:
        member = keys.member(SYSTEM, name)
        assert r.hget(keys.state(SYSTEM, name), "r") == b"2"
        assert r.zscore(keys.DIRTY, member) == later + 1_000
        assert r.zscore(keys.ACTIVE, member) is not None
        assert not r.exists(keys.lock(SYSTEM, name))
    # And a later batch with the database back writes and evicts them
    assert _snapshotter(services).deactivate([keys.member(SYSTEM, n) for n in names], later) == 2
    for name in names:
        saved = services.statestore.load(SYSTEM, name)
        assert saved is not None and saved.revision == 2


def test_a_flush_clears_only_the_flags_of_revisions_it_wrote(services: Services) -> None:
    # Given two dirty actors, one of which changes again between the read and the clean (emulated by a newer 'r')
    for name in ("flush-a", "flush-b"):
        _invoke(services, name, 1)
    r = services.redis
    snapshotter = _snapshotter(services)
    members = [keys.member(SYSTEM, "flush-a"), keys.member(SYSTEM, "flush-b")]
    written = snapshotter.flush_batch(members, int(time.time() * 1000))
    assert written == 2
    assert r.zcard(keys.DIRTY) == 0
    # When flush-b is written at revision 1 but its hot revision is 2 by the time the flag is cleared
    _invoke(services, "flush-a", 1)
    _invoke(services, "flush-b", 1)
    original = snapshotter._store.save_many  # noqa: SLF001 - step in between the SQL write and the clean

    def save_then_change(snapshots: list) -> None:  # type: ignore[type-arg]
        original(snapshots)
        r.hset(keys.state(SYSTEM, "flush-b"), "r", 3)

    snapshotter._store.save_many = save_then_change  # type: ignore[method-assign]  # noqa: SLF001
    assert snapshotter.flush_batch(members, int(time.time() * 1000)) == 2
    # Then flush-a's flag is cleared and flush-b's stays (its newer revision is not in SQL yet)
    assert r.zscore(keys.DIRTY, members[0]) is None
    assert r.zscore(keys.DIRTY, members[1]) is not None


def test_a_claim_whose_reply_was_lost_still_evicts_and_leaves_no_lock(
    services: Services, dropper: ReplyDropper
) -> None:
    # Given an idle, dirty actor, and a snapshotter that reaches Redis through a link that loses the next reply
    _invoke(services, "lost-a", 3)
    r = services.redis
    link = redis.Redis(host="127.0.0.1", port=dropper.port, db=12)
    link.script_load(_CLAIM)
    snapshotter = Snapshotter(client=link, statestore=services.statestore, lease_ms=30_000, retry_ms=1_000)
    later = int(time.time() * 1000) + 10_000_000
    # When its claim runs in Redis but the reply is lost (the claim is sent again)
    dropper.armed.set()
    evicted = snapshotter.deactivate([keys.member(SYSTEM, "lost-a")], later)
    # Then the claim sent again got the locks the first one took: the actor is written and evicted, no lock is left
    assert len(dropper.dropped) == 1 and evicted == 1
    assert not r.exists(keys.state(SYSTEM, "lost-a"), keys.lock(SYSTEM, "lost-a"))
    saved = services.statestore.load(SYSTEM, "lost-a")
    assert saved is not None and saved.revision == 3
    link.close()
