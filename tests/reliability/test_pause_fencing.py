"""A worker paused past its lock lease cannot write when it wakes: the fencing token refuses its late commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.keys import lock
from tests.reliability.faults import SYSTEM, Node, call_slow, spawn_counter, wait_for

LEASE_MS = 3_000
SLOW_S = 1.5  # well inside the lease when not paused (its re-run must not lose the lock too)


def test_a_worker_paused_past_its_lease_is_fenced_off_and_no_update_is_lost(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a short lock lease, and no redelivery during the test (the paused worker keeps its message)
    settings = make(lock_lease_ms=LEASE_MS, visibility_timeout_s=120)
    a = nodes(settings, "a").start()
    client = clients(settings)
    name = spawn_counter(client)
    locked = client.services.redis
    # When worker a starts a slow invocation (1.5 s) and is frozen (SIGSTOP) inside it, holding the actor's lock
    slow: dict[str, Any] = {}
    caller = call_slow(settings, name, SLOW_S, "slow-1", slow)
    wait_for(lambda: locked.exists(lock(SYSTEM, name)), 10, "worker a to lock the actor")
    a.pause()
    # And its lease runs out while worker b takes over and applies 20 increments
    b = nodes(settings, "b").start()
    wait_for(lambda: not locked.exists(lock(SYSTEM, name)), 10, "the paused holder's lease to expire")
    replies = [client.invoke(SYSTEM, name, "increment", timeout=20).value for _ in range(20)]
    assert replies == list(range(1, 21))
    # When worker a resumes: its action finishes and it tries to commit the state it computed (value 1)
    a.resume()
    caller.join(30)
    # Then that late write was refused by the fencing token, the invocation ran again on the current state,
    # and no update was lost: 20 increments + the slow one
    refused = [line for line in a.log().splitlines() if "slow-1" in line and "lost the lock" in line]
    assert refused, "worker a's late commit was not refused"
    assert slow["value"] == 21
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (21, 21)
    assert b.alive


def test_an_action_longer_than_the_lease_keeps_its_lock_and_commits_once(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a 2 s lock lease and two nodes
    settings = make(lock_lease_ms=2_000, visibility_timeout_s=120)
    a, b = nodes(settings, "a").start(), nodes(settings, "b").start()
    client = clients(settings)
    name = spawn_counter(client)
    r = client.services.redis
    # When an action runs for 6 s (three leases) while another call arrives after 3 s
    slow: dict[str, Any] = {}
    caller = call_slow(settings, name, 6.0, "slow-2", slow)
    wait_for(lambda: r.exists(lock(SYSTEM, name)), 10, "the slow action to lock the actor")
    token = r.get(lock(SYSTEM, name))
    time.sleep(3.0)
    # Then its holder still holds the lock (renewed in the background), with the same fencing token
    assert r.get(lock(SYSTEM, name)) == token
    after = client.invoke(SYSTEM, name, "increment", timeout=30).value
    caller.join(30)
    # And the action committed once, on its first run, and the other call ran after it
    assert (slow["value"], after) == (1, 2)
    assert not [line for line in a.log().splitlines() + b.log().splitlines() if "lost the lock" in line]
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (2, 2)
