"""SIGTERM to worker nodes under load: in-flight invocations finish, dirty state is flushed, nothing is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import CounterState
from tests.reliability.faults import SYSTEM, Load, Node, close_client, new_client, spawn_counter, wait_for


def _snapshot(client: Client, name: str) -> tuple[int, int]:
    """(value, revision) of the actor's snapshot in SQL, (0, 0) if none."""
    stored = client.services.statestore.load(SYSTEM, name)
    return (CounterState.FromString(stored.data).value, stored.revision) if stored else (0, 0)


def test_sigterm_under_load_finishes_in_flight_work_flushes_dirty_state_and_loses_nothing(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given two worker nodes, and no redelivery by timeout during the test: anything a stopping node dropped
    # would stay lost, and its caller would time out
    settings = make(visibility_timeout_s=120)
    a, b = nodes(settings, "a").start(), nodes(settings, "b").start()
    client = clients(settings)
    hot = spawn_counter(client, "lazy")  # written to SQL only when a worker stops gracefully
    slow_actor = spawn_counter(client)
    load = Load(settings, hot, threads=8, timeout=30.0).start()
    # When a slow invocation (2 s) is running on one node
    slow: dict[str, Any] = {}

    def call_slow() -> None:
        own = new_client(settings)
        try:
            slow["value"] = own.invoke(SYSTEM, slow_actor, "slow", {"s": 2}, invocation_id="slow-1", timeout=30).value
        finally:
            close_client(own)

    caller = threading.Thread(target=call_slow, daemon=True)
    caller.start()
    marker = f"slow action of {slow_actor} started"
    first = wait_for(lambda: next((n for n in (a, b) if marker in n.log()), None), 10, "the slow call to start")
    # And that node gets SIGTERM: it exits cleanly only after the slow invocation finished and answered
    assert first.terminate(timeout=20) == 0
    caller.join(5)
    assert slow.get("value") == 1
    # And it flushed the dirty actors to SQL on its way out, the hot counter included
    assert "flushed" in first.log() and _snapshot(client, hot)[1] >= 1
    # When it restarts, and the other node is stopped the same way (then restarted) while the load goes on
    first.start()
    second = b if first is a else a
    time.sleep(1.0)
    assert second.terminate(timeout=20) == 0
    second.start()
    time.sleep(1.0)
    load.stop()
    load.join()
    # Then every call was answered exactly once, none lost in a shutdown: replies are exactly 1..N
    assert not load.errors and not load.unacked
    total = len(load.acked)
    assert sorted(load.acked.values()) == list(range(1, total + 1))
    # When both nodes stop gracefully
    assert a.terminate() == 0 and b.terminate() == 0
    # Then SQL holds every actor's exact final state at its exact revision (flushed by the last stop)
    assert _snapshot(client, hot) == (total, total)
    assert _snapshot(client, slow_actor) == (1, 1)
