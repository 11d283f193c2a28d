"""A flaky link to Redis: replies lost on the way back to the workers, under load, change nothing."""

from __future__ import annotations

from collections.abc import Callable

from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.reliability.faults import SYSTEM, Load, Node, spawn_counter
from tests.support import ReplyDropper


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
