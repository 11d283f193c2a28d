"""Kinds: NAMED (lazy), UNNAMED (spawn, spawn at a revision, never-spawned instances) and POOLED (bounded)."""

from __future__ import annotations

import time

import pytest
import redis

from spawn_celery import ActorNotFound, Spawn
from spawn_celery.client import Client
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for


def test_named_actor_is_activated_lazily_by_its_first_call(client: Client, side: redis.Redis) -> None:
    assert not side.exists("sp:st:semtests:named")  # registered by the worker, never activated
    assert client.invoke(SYSTEM, "named", "increment") == 1
    assert client.invoke(SYSTEM, "named", "increment") == 2
    assert side.exists("sp:st:semtests:named")
    assert len(notes(side, "init:named")) == 1  # one activation, init ran once


def test_unnamed_instances_are_spawned_from_their_template(client: Client) -> None:
    one = Spawn.create_actor_ref(SYSTEM, unique("one"), parent="counter", client=client)
    two = Spawn.create_actor_ref(SYSTEM, unique("two"), parent="counter", client=client)
    assert one.invoke("increment", {"by": 5}) == ("ok", 5)
    assert two.invoke("increment") == ("ok", 1)
    assert one.call("get") == {"n": 5}


def test_never_spawned_instance_is_actor_not_found_at_once(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(ActorNotFound):
        client.invoke(SYSTEM, unique("ghost"), "increment")
    ref = Spawn.create_actor_ref(SYSTEM, unique("ghost"), client=client)
    assert ref.invoke("increment") == ("actor_not_found", None)
    assert time.monotonic() - started < 5.0  # answered, not left to time out (20 s)


def test_a_template_itself_cannot_be_invoked(client: Client) -> None:
    with pytest.raises(ActorNotFound, match="unnamed template"):
        client.invoke(SYSTEM, "counter", "increment")


def test_spawn_at_a_revision_restores_it_at_activation_once(client: Client, side: redis.Redis) -> None:
    # Given an instance with revisions 1..3 in SQL that was then deactivated (brief: 700 ms idle timeout)
    name = unique("travel")
    ref = Spawn.create_actor_ref(SYSTEM, name, parent="brief", client=client)
    for _ in range(3):
        ref.call("checkpointed")
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"))
    # When it is spawned again at revision 2
    ref = Spawn.create_actor_ref(SYSTEM, name, parent="brief", state_revision=2, client=client)
    # Then it starts from revision 2's state, as a new revision
    assert ref.call("get") == {"n": 2}
    assert client.state(SYSTEM, name).revision == 4
    assert ref.call("increment") == 3
    # and a later re-activation does not travel back again
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"))
    assert ref.call("get") == {"n": 3}


def test_spawn_at_a_revision_of_an_active_instance_restores_now(client: Client) -> None:
    name = unique("active")
    ref = Spawn.create_actor_ref(SYSTEM, name, parent="counter", client=client)
    for _ in range(3):
        ref.call("checkpointed")
    ref = Spawn.create_actor_ref(SYSTEM, name, parent="counter", state_revision=1, client=client)
    assert ref.call("get") == {"n": 1}
    assert client.state(SYSTEM, name).revision == 4


def test_pooled_actor_runs_in_parallel_up_to_max_pool_size(client: Client, side: redis.Redis) -> None:
    # Given 4 worker processes and a pooled actor with max_pool_size=2
    run = unique("run")
    for _ in range(6):
        client.invoke(SYSTEM, "pool", "work", {"s": 1.0, "run": run}, async_mode=True)
    spans = wait_for(lambda: len(notes(side, f"pool:{run}")) == 6 and notes(side, f"pool:{run}"), timeout=15)
    # Then at most 2 ran at once, and 2 did run at once (no lock: one actor, parallel invocations)
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert not side.exists("sp:st:semtests:pool")  # stateless: never activated, nothing kept
