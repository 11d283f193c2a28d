"""Scheduled invocations (``scheduled_to``): durable in Redis, fired once, on time, the past runs now."""

from __future__ import annotations

import time

import redis

from spawn_celery.client import Client, now_ms
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for
from tests.support import WorkerProcess


def test_scheduled_call_fires_once_no_earlier_than_its_time(client: Client, side: redis.Redis) -> None:
    # Given warm worker processes (the first task of a process builds its runtime) and an active actor
    warm = unique("warm")
    for _ in range(8):
        client.invoke(SYSTEM, "clock", "stamp", {"tag": warm, "s": 0.05}, async_mode=True)
    wait_for(lambda: len(notes(side, f"clock:{warm}")) == 8)
    tag = unique("on-time")
    at = now_ms() + 1000
    client.invoke(SYSTEM, "clock", "stamp", {"tag": tag}, scheduled_to=at)
    fired = wait_for(lambda: notes(side, f"clock:{tag}"), timeout=5)
    time.sleep(0.3)
    assert len(notes(side, f"clock:{tag}")) == 1
    late_ms = fired[0] - at
    # never early; typically a few tens of ms late (tick 20 ms + one Celery hop), bounded loosely for busy machines
    assert 0 <= late_ms < 1000, late_ms


def test_scheduled_call_in_the_past_runs_now(client: Client, side: redis.Redis) -> None:
    tag = unique("past")
    client.invoke(SYSTEM, "clock", "stamp", {"tag": tag}, scheduled_to=now_ms() - 60_000)
    fired = wait_for(lambda: notes(side, f"clock:{tag}"), timeout=5)
    assert abs(fired[0] - now_ms()) < 1000


def test_scheduled_call_survives_a_restart_of_every_worker(
    client: Client, side: redis.Redis, sem_worker: WorkerProcess
) -> None:
    # Given a call scheduled 1 s ahead
    tag = unique("durable")
    at = now_ms() + 1000
    client.invoke(SYSTEM, "clock", "stamp", {"tag": tag}, scheduled_to=at)
    # When every worker (and so every scheduler loop) is down when it falls due
    sem_worker.stop()
    time.sleep(max(0.0, (at - now_ms()) / 1000) + 0.2)
    assert notes(side, f"clock:{tag}") == []
    sem_worker.start()
    # Then it fires once after the restart
    fired = wait_for(lambda: notes(side, f"clock:{tag}"), timeout=10)
    time.sleep(0.3)
    assert len(notes(side, f"clock:{tag}")) == 1 and fired[0] >= at
