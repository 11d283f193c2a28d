"""kill -9 of worker nodes under load: exactly-once state effects across crashes and redeliveries."""

from __future__ import annotations

import time
from collections.abc import Callable

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.keys import queue
from tests.reliability.faults import SYSTEM, Load, Node, broker_settled, spawn_counter, wait_for

KILLS = 6
KILL_EVERY_S = 2.0


def test_kill_9_every_2_s_under_load_neither_doubles_nor_loses_an_increment(
    make: Callable[..., Settings], nodes: Callable[..., Node], clients: Callable[[Settings], Client]
) -> None:
    # Given two worker nodes, a short redelivery time and a short lock lease (a dead holder blocks ~2 s at most)
    settings = make(visibility_timeout_s=5, lock_lease_ms=2_000)
    a, b = nodes(settings, "a").start(), nodes(settings, "b").start()
    client = clients(settings)
    name = spawn_counter(client)
    # When 8 clients keep incrementing (each call with its own invocation id, waiting at most 4 s for its reply)
    # while every ~2 s one node is SIGKILLed (main and pool processes) and restarted, or, every third time, only
    # its pool process is (the main process requeues the task at once: task_reject_on_worker_lost)
    load = Load(settings, name, threads=8, timeout=4.0).start()
    for i in range(KILLS):
        time.sleep(KILL_EVERY_S)
        victim = (a, b)[i % 2]
        if i % 3 == 2:
            victim.kill_pool_process()
            continue
        victim.kill()
        victim.start()
    load.stop()
    load.join()
    # Then no call failed with an error: calls either got their reply or timed out (crash, redelivery pending)
    assert not load.errors, load.errors[:3]
    # And the kills hit in-flight work: some calls lost their worker (no reply in time), or calls queued in a
    # killed holder's mailbox had to be re-sent by a survivor's housekeeper
    recovered = sum(n.log().count("invocations from mailboxes whose lock holder stopped") for n in (a, b))
    assert load.unacked or recovered, "the kills did not hit in-flight work"
    # When each unanswered invocation id is sent once more (its first copy may or may not have been applied,
    # and may still be redelivered after the visibility timeout)
    applied_unacked = sum(client.services.activations.done(SYSTEM, name, i) is not None for i in load.unacked)
    answers = dict(load.acked)
    for invocation_id in load.unacked:
        answers[invocation_id] = client.invoke(SYSTEM, name, "increment", invocation_id=invocation_id, timeout=30).value
    # Then every id was applied exactly once: the replies are exactly 1..N, one per id, no gaps, no repeats
    total = load.sent
    assert sorted(answers.values()) == list(range(1, total + 1))
    # And once every redelivery has run, nothing was applied twice: the state is exactly N at revision N
    wait_for(lambda: broker_settled(settings, queue(SYSTEM, "counter")), 30, "redeliveries to settle")
    view = client.state(SYSTEM, name)
    assert (view.value.value, view.revision) == (total, total)
    # And the write-behind snapshot caught up with it in SQL
    wait_for(lambda: (s := client.services.statestore.load(SYSTEM, name)) and s.revision == total, 10, "snapshot")
    print(
        f"sent {total}, acknowledged {len(load.acked)}, re-sent {len(load.unacked)} "
        f"({applied_unacked} of them applied before the re-send); mailbox recoveries: {recovered}"
    )
