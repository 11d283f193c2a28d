"""A flaky link to Redis: replies lost on the way back to the workers, under load, change nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import redis

from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.message import Message
from tests.reliability.faults import SYSTEM, Load, Node, in_process, spawn_counter, wait_for
from tests.support import ReplyDropper, gated, open_gate


def test_workers_losing_one_redis_reply_in_40_still_apply_each_increment_once(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a worker node whose state Redis (locks, hot state, dedupe, mailbox) is reached through a link that
    # loses every 40th reply after Redis ran the command (the broker and the replies to callers go direct)
    settings = make()
    direct = settings.redis_url
    settings = make(broker_url=direct, result_backend=direct)
    link = ReplyDropper(every=40)
    try:
        flaky = direct.replace(":6379/", f":{link.port}/")
        node = nodes(settings, "a", concurrency=2, env={"SPAWN_REDIS_URL": flaky}).start()
        client = clients(settings)
        name = spawn_counter(client)
        # When 4 client threads send 150 increments each (a lost reply may cost a lease: 60 s per call)
        load = Load(settings, name, threads=4, per_thread=150, timeout=60).start().join(timeout=280)
    finally:
        link.close()
    # Then replies were lost on the way, yet every call was answered with a distinct value: exactly 1..600
    assert len(link.dropped) >= 20 and "applied; its reply from Redis was lost" in node.log()
    assert not load.unacked and not load.errors, (load.unacked[:3], load.errors[:3])
    assert sorted(load.acked.values()) == list(range(1, 601))
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (600, 600)


def test_a_commit_that_never_reached_redis_unlocks_the_actor_at_once_and_the_retry_applies_it_once(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a runtime (in this process: the worker's real code) whose state Redis is reached through a link, running
    # an action that waits for the test, holding the actor's lock
    settings = make()
    nodes(settings, "a").start()  # registers the actor types
    client = clients(settings)
    name = spawn_counter(client)
    link = ReplyDropper()
    flaky = settings.redis_url.replace(":6379/", f":{link.port}/")
    # (SPAWN_REDIS_RETRIES=0: the runtime's own resend is the only one, as when every resend failed)
    services, runtime = in_process(replace(settings, redis_url=flaky, redis_retries=0))
    try:
        r = client.services.redis
        slow = Message("slow-9", client.request(SYSTEM, name, "slow", gated(settings, f"gate:{name}")))
        failed: list[BaseException] = []

        def run() -> None:
            try:
                runtime.handle(slow)
            except BaseException as exc:
                failed.append(exc)

        holder = threading.Thread(target=run)
        holder.start()
        wait_for(lambda: r.exists(keys.lock(SYSTEM, name)), 10, "the action to lock the actor")
        # When the link breaks for its commit and its resend (neither reaches Redis)
        link.refuse = 2
        open_gate(settings, f"gate:{name}")
        holder.join(30)
        # Then the invocation failed with the Redis error (the worker's task retries it), and the actor is unlocked
        # now, not after its 30 s lease
        assert failed and isinstance(failed[0], redis.ConnectionError), failed
        assert not r.exists(keys.lock(SYSTEM, name))
        assert client.state(SYSTEM, name).revision == 0
        # And the retry applies it, once
        open_gate(settings, f"gate:{name}")
        first, again = runtime.handle(slow), runtime.handle(slow)  # the second: a duplicate, answered from the record
        assert (first.status, first.revision) == ("OK", 1) and first == again
        view = client.state(SYSTEM, name)
        assert (view.value.value, view.revision) == (1, 1)
    finally:
        services.redis.close()
        link.close()
