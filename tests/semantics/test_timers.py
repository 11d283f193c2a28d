"""Timer actions: every period while active, durable across worker restarts, stopped by deactivation unless
``keep_timers``; a period <= 0 is refused where it is declared or registered."""

from __future__ import annotations

import statistics
import time

import pytest
import redis

from spawn_celery import Actor, ActorSettings, Context, DefinitionError, Kind, Value
from spawn_celery.client import Client
from spawn_celery.proto import actor_pb2
from spawn_celery.scheduler import TIMER_DEDUPE_TTL_S, is_timer_fire, timer_invocation_id
from spawn_celery.services import Services
from tests.semantics.conftest import SYSTEM, actor_keys, notes, stop_timers, unique, wait_for
from tests.support import WorkerProcess


def started(client: Client, template: str) -> str:
    name = unique(template)
    client.spawn(SYSTEM, name, template)
    client.invoke(SYSTEM, name, "poke")
    return name


def test_timer_fires_every_period_from_the_actor_to_itself(client: Client, side: redis.Redis) -> None:
    began = time.monotonic()
    name = started(client, "ticker")
    ticks = wait_for(lambda: len(got := notes(side, f"tick:{name}")) >= 6 and got, timeout=10)
    assert len(ticks) <= (time.monotonic() - began) / 0.1 + 2  # one per period, never a burst
    gaps = [b["t"] - a["t"] for a, b in zip(ticks, ticks[1:], strict=False)]
    assert 80 <= statistics.median(gaps) <= 250  # 100 ms apart (as run: a busy machine runs some late)
    assert ticks[0]["caller"] == name and ticks[0]["metadata"] == {}  # spawn-protocol 3.13: caller self, no metadata
    fires = list(side.scan_iter(match=f"sp:dn:semtests:{name}:t.*"))
    assert fires and all(0 < side.ttl(k) <= TIMER_DEDUPE_TTL_S for k in fires)  # short dedupe window per fire


def test_only_the_fire_itself_counts_as_a_timer_fire() -> None:
    fire = timer_invocation_id(SYSTEM, "a", "tick", 1700000000000)
    assert is_timer_fire(fire, SYSTEM, "a", "tick")
    assert not is_timer_fire(fire + ".b.a", SYSTEM, "a", "tick")  # a broadcast the fire caused
    assert not is_timer_fire(fire + ".f", SYSTEM, "a", "tick")  # a forward/pipe hop it caused


def test_timers_survive_a_worker_restart(client: Client, side: redis.Redis, sem_worker: WorkerProcess) -> None:
    stop_timers(side)  # only this test's timer runs across the restart
    name = started(client, "ticker")
    wait_for(lambda: len(notes(side, f"tick:{name}")) >= 3)
    sem_worker.stop()
    before = len(notes(side, f"tick:{name}"))
    sem_worker.start()
    wait_for(lambda: len(notes(side, f"tick:{name}")) >= before + 3, timeout=5)


def test_timers_stop_when_the_actor_is_deactivated(client: Client, side: redis.Redis) -> None:
    # Given an actor deactivated 600 ms after its last call, with a 100 ms timer (fires are not activity)
    began = time.monotonic()
    name = started(client, "ticker_brief")
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"), timeout=5)
    ran_s = time.monotonic() - began
    fired = len(notes(side, f"tick:{name}"))
    time.sleep(0.5)
    assert len(notes(side, f"tick:{name}")) == fired and 1 <= fired <= ran_s / 0.1 + 2
    wait_for(lambda: actor_keys(side, name) == [], timeout=10)  # timers included


def test_keep_timers_reactivates_the_actor_after_deactivation(client: Client, side: redis.Redis) -> None:
    # Given keep_timers=True, a 500 ms timer and a 300 ms idle timeout: deactivated between fires
    name = started(client, "ticker_keep")
    wait_for(lambda: len(notes(side, f"init:{name}")) >= 3, timeout=5)  # poke, then one per fire
    wait_for(lambda: len(notes(side, f"tick:{name}")) >= 3, timeout=10)
    wait_for(lambda: client.state(SYSTEM, name).value["n"] >= 3, timeout=10)  # state carried across activations


def test_fires_of_a_slow_timer_do_not_pile_up(client: Client, side: redis.Redis) -> None:
    # Given a 100 ms timer whose action takes 350 ms (and 4 worker processes)
    name = started(client, "ticker_slow")
    time.sleep(1.0)
    # Then other actors are still served promptly: fires waiting for the busy actor do not hold every process
    began = time.monotonic()
    client.invoke(SYSTEM, "clock", "get")
    assert time.monotonic() - began < 3  # held hostage, it would wait for the 350 ms fires one after another
    # and once the actor is deactivated, no fire is left queued
    wait_for(lambda: not side.exists(f"sp:st:semtests:{name}"), timeout=5)
    wait_for(lambda: side.llen("spawn.semtests.ticker_slow") == 0, timeout=5)
    ticks = notes(side, f"tick:{name}")
    assert len(ticks) <= 1 + (ticks[-1] - ticks[0]) / 350


@pytest.mark.parametrize("every", [0, -100])
def test_timer_period_must_be_positive(every: int) -> None:
    actor = Actor(ActorSettings(name="bad_timer"))
    with pytest.raises(DefinitionError, match="positive"):
        actor.timer_action(every=every)


def test_pooled_actor_cannot_have_timers() -> None:
    actor = Actor(ActorSettings(name="pooled_timer", kind=Kind.POOLED))
    with pytest.raises(DefinitionError, match="POOLED"):

        @actor.timer_action(every=100)
        def tick(ctx: Context) -> Value:
            return Value()


def test_registration_refuses_a_timer_period_of_zero(services: Services) -> None:
    # A remote SDK host registers its own Actor message: the registry checks it as the decorator does
    proto = actor_pb2.Actor(id=actor_pb2.ActorId(name=unique("remote"), system=SYSTEM))
    proto.timer_actions.append(actor_pb2.FixedTimerAction(seconds=0, action=actor_pb2.Action(name="tick")))
    with pytest.raises(DefinitionError, match="period > 0"):
        services.registry.register(SYSTEM, [proto], host="http://127.0.0.1:1")
    assert not services.redis.hexists("sp:reg:semtests", proto.id.name)
