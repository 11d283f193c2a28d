"""Bad input: each a clear, typed error for the caller, with nothing half-applied."""

from __future__ import annotations

import pytest
import redis

from spawn_celery import ActorNotFound, Spawn
from spawn_celery.client import Client, now_ms
from spawn_celery.errors import SpawnConflict
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for


def test_spawn_from_an_unknown_template(client: Client, side: redis.Redis) -> None:
    name = unique("orphan")
    with pytest.raises(ActorNotFound, match="unnamed template no_such_template not found"):
        client.spawn(SYSTEM, name, "no_such_template")
    assert not side.hexists("sp:inst:semtests", name)


def test_spawn_from_an_actor_that_is_not_a_template(client: Client) -> None:
    with pytest.raises(ActorNotFound, match="is a NAMED actor, not an unnamed template"):
        client.spawn(SYSTEM, unique("x"), "named")


def test_spawn_of_an_existing_name_from_another_template(client: Client) -> None:
    name = unique("taken")
    Spawn.create_actor_ref(SYSTEM, name, parent="counter", client=client).call("increment")
    with pytest.raises(SpawnConflict, match="already exists from template 'counter'"):
        client.spawn(SYSTEM, name, "other_template")
    client.spawn(SYSTEM, name, "counter")  # the same template again is fine (idempotent)
    assert client.invoke(SYSTEM, name, "get") == {"n": 1}


def test_spawn_with_the_name_of_an_actor_type(client: Client) -> None:
    with pytest.raises(SpawnConflict):
        client.spawn(SYSTEM, "named", "counter")


def test_scheduled_to_in_the_past_runs_now(client: Client, side: redis.Redis) -> None:
    tag = unique("past")
    client.invoke(SYSTEM, "clock", "stamp", {"tag": tag}, scheduled_to=now_ms() - 5_000)
    assert wait_for(lambda: notes(side, f"clock:{tag}"), timeout=15)


def test_scheduling_an_unknown_actor_fails_before_anything_is_stored(client: Client, side: redis.Redis) -> None:
    pending = side.zcard("sp:sched")
    with pytest.raises(ActorNotFound):
        client.invoke(SYSTEM, unique("nobody"), "stamp", scheduled_to=now_ms() + 60_000)
    assert side.zcard("sp:sched") == pending
