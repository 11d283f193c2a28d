"""The mailbox: calls to a busy actor queue in Redis and run in the lock holder's turn; a dead holder loses none."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.scheduler import invocation_doc
from tests.reliability.faults import (
    SYSTEM,
    Node,
    call_slow,
    close_client,
    in_process,
    new_client,
    spawn_counter,
    wait_for,
)
from tests.support import gated, open_gate

QUEUED = 5


def _held(client: Client, settings: Settings) -> tuple[str, dict[str, Any], threading.Thread]:
    """Spawn a counter and start a gated action on it (see ``open_gate``, 30 s at most); return once the action
    holds its lock. The gate is named after the actor."""
    name = spawn_counter(client)
    slow: dict[str, Any] = {}
    caller = call_slow(settings, name, 30, "slow-1", slow, gate=f"gate:{name}")
    wait_for(lambda: client.services.redis.exists(keys.lock(SYSTEM, name)), 10, "the slow action to lock the actor")
    return name, slow, caller


@pytest.mark.parametrize("max_turn_ms", [1_000, 0], ids=["one-turn", "turn-budget-spent"])
def test_calls_queued_behind_a_holder_run_in_its_turn_each_once(
    max_turn_ms: int, make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given two nodes; one holds the actor's lock in an action that waits for the test. With a spent turn budget
    # (SPAWN_MAX_TURN_MS=0) the holder unlocks after its own call and leaves the queued calls to the next turns.
    settings = make(max_turn_ms=max_turn_ms)
    a, b = nodes(settings, "a").start(), nodes(settings, "b").start()
    client = clients(settings)
    name, slow, caller = _held(client, settings)
    r = client.services.redis
    # When 5 sync calls arrive meanwhile (node b takes each, finds the actor busy and queues it, no waiting)
    replies: list[int] = []

    def call(i: int) -> None:
        own = new_client(settings)
        try:
            replies.append(own.invoke(SYSTEM, name, "increment", invocation_id=f"q-{i}", timeout=30).value)
        finally:
            close_client(own)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(QUEUED)]
    for t in callers:
        t.start()
    wait_for(lambda: r.llen(keys.mailbox(SYSTEM, name)) == QUEUED, 30, "5 calls in the mailbox")
    open_gate(settings, f"gate:{name}")
    for t in callers + [caller]:
        t.join(30)
    # Then the holder ran them after its own call, in arrival order: one reply and one revision each
    assert slow.get("value") == 1
    assert sorted(replies) == list(range(2, QUEUED + 2))
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (QUEUED + 1, QUEUED + 1)
    # And the mailbox bookkeeping is gone
    assert not r.exists(keys.mailbox(SYSTEM, name), keys.inflight(SYSTEM, name))
    assert r.zcard(keys.MAILBOXES) == 0
    resent = "invocations from mailboxes whose lock holder stopped" in a.log() + b.log()
    assert resent == (max_turn_ms == 0)  # leftovers of a bounded turn are re-sent at the next tick


def test_calls_queued_behind_a_killed_holder_are_recovered_and_applied_once(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a short lock lease; one node (the holder) runs an action that waits for the test, the other queues 5
    # async calls behind it
    settings = make(lock_lease_ms=2_000, visibility_timeout_s=5)
    a = nodes(settings, "a").start()
    b = nodes(settings, "b").start()
    client = clients(settings)
    name, slow, caller = _held(client, settings)
    r = client.services.redis
    for i in range(QUEUED):
        client.invoke(SYSTEM, name, "increment", invocation_id=f"q-{i}", async_mode=True)
    wait_for(lambda: r.llen(keys.mailbox(SYSTEM, name)) == QUEUED, 30, "5 calls in the mailbox")
    # When the holder is SIGKILLed in the middle of its action (nothing flushed, nothing acknowledged)
    holder, survivor = (a, b) if f"slow action of {name} started" in a.log() else (b, a)
    holder.kill()
    # for the killed call's redelivered run (twice: Redis may hand one to the dead process's wait before it
    # notices that connection closed)
    open_gate(settings, f"gate:{name}", times=2)
    # Then once its lease runs out, the survivor's housekeeper re-sends the queued calls and they run;
    # the killed slow call is redelivered after the visibility timeout and runs once too
    wait_for(lambda: client.state(SYSTEM, name).revision == QUEUED + 1, 40, "every call to be applied")
    caller.join(60)
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (QUEUED + 1, QUEUED + 1)
    for i in range(QUEUED):
        assert client.services.activations.done(SYSTEM, name, f"q-{i}") is not None
    assert not r.exists(keys.mailbox(SYSTEM, name), keys.inflight(SYSTEM, name))
    assert survivor.alive
    # And a repeat of an applied call is answered from its record, not applied again
    again = client.invoke(SYSTEM, name, "increment", invocation_id="q-0", timeout=10).value
    assert 1 <= again <= QUEUED + 1
    assert client.state(SYSTEM, name).revision == QUEUED + 1


def test_calls_queued_behind_an_aborted_turn_are_re_sent_at_the_next_tick(
    make: Callable[..., Settings], clients: Callable[[Settings], Client]
) -> None:
    # Given a turn holding the lock of an actor and a call queued behind it (the real Lua scripts, no worker)
    settings = make()
    services = clients(settings).services
    acts, r = services.activations, services.redis
    name = "m-1"
    held = acts.begin(SYSTEM, name, "first", "doc-unused", 1)
    assert held.token
    queued = acts.begin(SYSTEM, name, "second", '{"q":"spawn.reltests.counter","k":{"id":"second"}}', 1_000_000)
    assert queued.queued and r.llen(keys.mailbox(SYSTEM, name)) == 1
    # When the holder aborts (its activation failed before any action ran)
    assert acts.abort(SYSTEM, name, "first", held.token)
    # Then the queued call is due for re-sending at once (not after the 1 s grace of a silent holder) ...
    assert r.zscore(keys.MAILBOXES, keys.member(SYSTEM, name)) == 0
    assert acts.recover(now_ms=1_000_001, grace_ms=1_000) == 1
    # ... as a scheduled invocation under its own id, and the mailbox is gone
    assert r.zscore(keys.SCHEDULED, "second") == 1_000_001
    assert not r.exists(keys.mailbox(SYSTEM, name), keys.inflight(SYSTEM, name))
    assert r.zcard(keys.MAILBOXES) == 0


def test_a_busy_actor_does_not_hold_worker_processes_hostage(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given one node with two processes; one runs an action of actor X that waits for the test, holding X's lock
    settings = make()
    nodes(settings, "a", concurrency=2).start()
    client = clients(settings)
    x, y = spawn_counter(client), spawn_counter(client)
    r = client.services.redis
    slow: dict[str, Any] = {}
    caller = call_slow(settings, x, 30, "slow-1", slow, gate=f"gate:{x}")
    wait_for(lambda: r.exists(keys.lock(SYSTEM, x)), 10, "the slow action to lock X")
    # When 4 more calls to X arrive (the other process queues each in X's mailbox and is free again at once)
    for i in range(4):
        client.invoke(SYSTEM, x, "increment", invocation_id=f"x-{i}", async_mode=True)
    wait_for(lambda: r.llen(keys.mailbox(SYSTEM, x)) == 4, 30, "4 calls in X's mailbox")
    # Then a call to another actor Y is served by that free process while X is still locked
    assert client.invoke(SYSTEM, y, "increment", timeout=10).value == 1
    assert r.exists(keys.lock(SYSTEM, x)), "X's slow action had already finished: the check proves nothing"
    open_gate(settings, f"gate:{x}")
    caller.join(30)
    # And X's calls all ran in its holder's turn: the slow one first, then the 4 queued, one revision each
    assert slow.get("value") == 1
    wait_for(lambda: client.state(SYSTEM, x).revision == 5, 10, "X's queued calls")
    assert client.state(SYSTEM, x).value.value == 5


def test_a_duplicate_in_the_mailbox_is_answered_from_its_record_not_applied_twice(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given a runtime (in this process: the worker's real code on real Redis and SQLite) holding an actor's lock
    # in an action that waits for the test, and the same invocation queued twice behind it (a redelivered copy of
    # a queued call)
    from spawn_celery.message import Message

    settings = make()
    nodes(settings, "a").start()  # registers the actor types
    client = clients(settings)
    name = spawn_counter(client)
    services, runtime = in_process(settings)
    acts, r = services.activations, services.redis
    slow = client.request(SYSTEM, name, "slow", gated(settings, f"gate:{name}"))
    holder = threading.Thread(target=runtime.handle, args=(Message("slow-3", slow),))
    holder.start()
    wait_for(lambda: r.exists(keys.lock(SYSTEM, name)), 10, "the runtime to lock the actor")
    doc = invocation_doc(
        keys.queue(SYSTEM, "counter"), Message("dup-1", client.request(SYSTEM, name, "increment", async_mode=True))
    )
    assert acts.begin(SYSTEM, name, "dup-1", doc, 1).queued
    assert acts.begin(SYSTEM, name, "dup-1", doc, 2).queued
    # When the holder's turn ends
    open_gate(settings, f"gate:{name}")
    holder.join(30)
    # Then it ran the first copy and answered the second from the first one's record: applied once
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (2, 2)
    assert not r.exists(keys.mailbox(SYSTEM, name), keys.inflight(SYSTEM, name), keys.lock(SYSTEM, name))
    services.redis.close()


def test_the_commit_hands_over_a_queued_duplicate_with_its_record(
    make: Callable[..., Settings], clients: Callable[[Settings], Client]
) -> None:
    # Given a holder with the same invocation queued twice, the first already applied (its record exists)
    settings = make()
    client = clients(settings)
    acts = client.services.activations
    name = "c-1"
    held = acts.begin(SYSTEM, name, "holder")
    doc = '{"q":"spawn.reltests.counter","k":{"id":"dup-2"}}'
    assert acts.begin(SYSTEM, name, "dup-2", doc, 1).queued and acts.begin(SYSTEM, name, "dup-2", doc, 2).queued
    # When the holder commits and takes the first copy, then commits that copy's reply
    first = acts.commit(SYSTEM, name, "holder", held.token, 10, _commit(batch=True))
    assert first is not None and first.next_item == doc and first.next_record is None
    second = acts.commit(SYSTEM, name, "dup-2", held.token, 11, _commit(batch=True, item=doc, reply=b"R"))
    # Then the second copy comes with the record the first one left: the runtime answers it, never re-runs it
    assert second is not None and second.next_item == doc and second.next_record == b"R"


def _commit(*, batch: bool, item: str = "", reply: bytes = b"") -> Any:
    from spawn_celery.activation import Commit

    return Commit(
        state=b"",
        changed=False,
        base_revision=0,
        reply=reply,
        deactivate_ms=60_000,
        snapshot_ms=60_000,
        parent="",
        timers="",
        stateful=False,
        item=item,
        batch=batch,
    )


def test_a_call_arriving_after_a_bounded_turn_runs_after_the_calls_that_turn_left(
    make: Callable[..., Settings], clients: Callable[[Settings], Client]
) -> None:
    # Given the worker's real runtime in this process with a spent turn budget (SPAWN_MAX_TURN_MS=0), and no worker
    # node (no housekeeper re-sends leftovers behind the test's back)
    from dataclasses import replace

    from spawn_celery.message import Message, Reply
    from spawn_celery.worker import register_actors
    from tests.reliability.apps import system as app

    settings = make(max_turn_ms=0)
    client = clients(settings)
    services, runtime = in_process(settings)
    register_actors(services, app)
    name = spawn_counter(client)
    acts, r = services.activations, services.redis
    # And a holder in an action that waits for the test, with 4 calls queued behind it
    slow = client.request(SYSTEM, name, "slow", gated(settings, f"gate:{name}"))
    holder = threading.Thread(target=runtime.handle, args=(Message("slow-5", slow),))
    holder.start()
    wait_for(lambda: r.exists(keys.lock(SYSTEM, name)), 10, "the runtime to lock the actor")
    queue = keys.queue(SYSTEM, "counter")
    for i in range(4):
        call = Message(f"{name}-q{i}", client.request(SYSTEM, name, "increment", async_mode=True))
        assert acts.begin(SYSTEM, name, call.id, invocation_doc(queue, call), i + 1).queued
    # When the holder's turn ends after its own call and one queued call (budget spent), leaving three
    open_gate(settings, f"gate:{name}")
    holder.join(30)
    assert r.llen(keys.mailbox(SYSTEM, name)) == 3 and not r.exists(keys.lock(SYSTEM, name))
    # And a new call then takes the free lock (on a runtime with a turn budget left)
    other, late_runtime = in_process(replace(settings, max_turn_ms=5_000))
    late = Message(f"{name}-late", client.request(SYSTEM, name, "increment"), reply_to=f"{name}-late")
    # Then it runs after the three calls left before it: the order in which calls reached the actor holds
    assert late_runtime.handle(late).status == "QUEUED"
    order = [f"{name}-q{i}" for i in range(4)] + [late.id]
    revisions = [Reply.from_json(acts.done(SYSTEM, name, i) or b"{}").revision for i in order]
    assert revisions == [2, 3, 4, 5, 6]
    assert client.services.transport.wait(late.id, 5).revision == 6  # its caller got its answer
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (6, 6)
    assert not r.exists(keys.mailbox(SYSTEM, name), keys.inflight(SYSTEM, name), keys.lock(SYSTEM, name))
    for s in (services, other):
        s.redis.close()
