"""Replies: one list per sync call in the result backend's Redis, taken by the caller's BLPOP."""

from __future__ import annotations

from collections.abc import Callable

import redis

from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.reliability.faults import SYSTEM, Node, spawn_counter

BACKEND_DB = 10


def test_replies_travel_through_a_separate_result_backend_and_are_taken_once(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a result backend on another Redis database than state and broker
    backend_url = f"redis://127.0.0.1:6379/{BACKEND_DB}"
    backend = redis.Redis.from_url(backend_url)
    backend.flushdb()
    settings = make(result_backend=backend_url)
    nodes(settings, "a").start()
    client = clients(settings)
    name = spawn_counter(client)
    seen: list[bytes] = []
    # When sync calls are made (the worker cannot fold the reply into its commit: another Redis)
    replies = [client.invoke(SYSTEM, name, "increment", timeout=20).value for _ in range(5)]
    # Then each caller got its own reply, in order, and took it: no reply list is left anywhere
    assert replies == [1, 2, 3, 4, 5]
    seen += list(backend.scan_iter(match=keys.reply("*")))
    seen += list(client.services.redis.scan_iter(match=keys.reply("*")))
    assert seen == []
    backend.flushdb()
    backend.close()


def test_a_repeated_invocation_id_is_answered_again_from_the_record(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given one applied call with a caller-chosen id
    settings = make()
    nodes(settings, "a").start()
    client = clients(settings)
    name = spawn_counter(client)
    assert client.invoke(SYSTEM, name, "increment", invocation_id="same-1", timeout=20).value == 1
    assert client.invoke(SYSTEM, name, "increment", timeout=20).value == 2
    # When the caller sends the same id again (a retry after a lost reply)
    again = client.invoke(SYSTEM, name, "increment", invocation_id="same-1", timeout=20).value
    # Then it gets that call's reply again, not a new increment and not another call's reply
    assert again == 1
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (2, 2)
    assert list(client.services.redis.scan_iter(match=keys.reply("*"))) == []
