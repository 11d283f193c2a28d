"""Async invocations return at once and still run exactly once."""

from __future__ import annotations

import time

import redis

from spawn_celery.client import Client
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for


def test_async_call_returns_at_once_and_runs_once(client: Client, side: redis.Redis) -> None:
    tag = unique("async")
    client.invoke(SYSTEM, "clock", "get")  # the client's connections are open
    started = time.monotonic()
    assert client.invoke(SYSTEM, "clock", "stamp", {"tag": tag, "s": 3}, async_mode=True) is None
    assert not notes(side, f"clock:{tag}") and time.monotonic() - started < 1.5  # the action takes 3 s
    wait_for(lambda: notes(side, f"clock:{tag}"))
    time.sleep(0.3)
    assert len(notes(side, f"clock:{tag}")) == 1


def test_async_call_sent_twice_with_one_id_runs_once(client: Client, side: redis.Redis) -> None:
    tag = unique("twice")
    for _ in range(2):
        client.invoke(SYSTEM, "clock", "stamp", {"tag": tag}, async_mode=True, invocation_id=f"id-{tag}")
    wait_for(lambda: notes(side, f"clock:{tag}"))
    time.sleep(0.3)
    assert len(notes(side, f"clock:{tag}")) == 1
