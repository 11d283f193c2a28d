"""Activations against the real Redis: a process waiting for a lock is woken by the unlock, not by its timeout."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import pytest
import redis

from spawn_celery import keys
from spawn_celery.activation import Activations, Commit
from tests.support import ReplyDropper


def _commit(state: bytes) -> Commit:
    return Commit(state=state, changed=True, base_revision=0, reply=b"", deactivate_ms=30_000, snapshot_ms=2_000,
                  parent="", timers="", stateful=True)


def test_a_waiter_is_woken_by_the_unlock_and_only_a_waiter_gets_a_wake() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    acts = Activations(client=client, lease_ms=30_000, dedupe_ttl_s=60)
    system, name = "acttests", f"w-{uuid.uuid4().hex[:8]}"
    # Given an unlock with nobody waiting: no wake is pushed
    first = acts.begin(system, name, "i-1")
    assert first.token and acts.commit(system, name, "i-1", first.token, int(time.time() * 1000), _commit(b"a"))
    assert not client.exists(keys.wake(system, name))
    # And a holder, and a second process that finds the actor busy and waits up to 10 s
    held = acts.begin(system, name, "i-2")
    busy = acts.begin(system, name, "i-3")
    assert busy.busy_ms > 0 and client.exists(keys.waiting(system, name))
    woke: list[float] = []

    def wait() -> None:
        start = time.monotonic()
        acts.wait(system, name, 10_000)
        woke.append(time.monotonic() - start)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    assert acts.begin(system, name, "i-3").busy_ms > 0  # says again that it waits (the flag lives 1 s)
    # When the holder commits
    assert acts.commit(system, name, "i-2", held.token, int(time.time() * 1000), _commit(b"b"))
    waiter.join(15)
    # Then the waiter woke long before its timeout, the flag is gone, and it now takes the lock
    assert woke and woke[0] < 5.0
    assert not client.exists(keys.waiting(system, name))
    again = acts.begin(system, name, "i-3")
    assert again.token > held.token and again.state is not None and again.revision == 2
    client.delete(*client.keys(f"sp:*:{system}:{name}*"))
    client.zrem(keys.ACTIVE, keys.member(system, name))
    client.zrem(keys.DIRTY, keys.member(system, name))


def test_a_commit_run_twice_writes_once_and_hands_the_taken_item_back() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    acts = Activations(client=client, lease_ms=30_000, dedupe_ttl_s=60)
    system, name = "acttests", f"c-{uuid.uuid4().hex[:8]}"
    # Given a holder at revision 1 and two calls queued in the actor's mailbox
    first = acts.begin(system, name, "c-1")
    assert acts.commit(system, name, "c-1", first.token, int(time.time() * 1000), _commit(b"one"))
    held = acts.begin(system, name, "c-2")
    for i in (3, 4):
        assert acts.begin(system, name, f"c-{i}", f'{{"q":"q","k":{{"id":"c-{i}"}}}}', 1).queued
    # When its commit runs, takes the next item, and runs again (its first reply lost: a retried call)
    commit = replace(_commit(b"two"), base_revision=1, reply=b"{}", batch=True)
    once = acts.commit(system, name, "c-2", held.token, int(time.time() * 1000), commit)
    assert once is not None and once.revision == 2 and once.next_item is not None and "c-3" in once.next_item
    again = acts.commit(system, name, "c-2", held.token, int(time.time() * 1000), commit)
    # Then the second run wrote nothing: same revision and state; it ended the turn instead
    assert again is not None and again.revision == 2 and again.next_item is None
    assert client.hget(keys.state(system, name), "r") == b"2" and client.hget(keys.state(system, name), "s") == b"two"
    assert not client.exists(keys.lock(system, name))
    # And both queued calls wait in the mailbox in their order, marked for re-sending
    assert client.lrange(
        keys.mailbox(system, name), 0, -1
    ) == [b'{"q":"q","k":{"id":"c-3"}}', b'{"q":"q","k":{"id":"c-4"}}']
    assert client.llen(keys.inflight(system, name)) == 0
    assert client.zscore(keys.MAILBOXES, keys.member(system, name)) == 0
    client.delete(*client.keys(f"sp:*:{system}:{name}*"))
    for family in (keys.ACTIVE, keys.DIRTY, keys.MAILBOXES):
        client.zrem(family, keys.member(system, name))


@pytest.mark.parametrize("mailbox", [False, True], ids=["waiting", "mailbox"])
def test_a_begin_whose_reply_was_lost_gets_the_lock_it_took_when_sent_again(
    dropper: ReplyDropper, mailbox: bool
) -> None:
    client = redis.Redis(host="127.0.0.1", port=dropper.port, db=12)
    direct = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    acts = Activations(client=client, lease_ms=30_000, dedupe_ttl_s=60)
    system, name = "acttests", f"b-{uuid.uuid4().hex[:8]}"
    doc = f'{{"q":"q","k":{{"id":"{name}-2"}}}}' if mailbox else ""
    # Given an actor at revision 1 (its scripts loaded, the kept connection open)
    first = acts.begin(system, name, "b-1", doc, 1)
    assert acts.commit(system, name, "b-1", first.token, int(time.time() * 1000), _commit(b"one"))
    # When a begin runs in Redis but its reply is lost on the way back (redis-py sends it again on a new connection)
    dropper.armed.set()
    begun = acts.begin(system, name, "b-2", doc, 1)
    # Then that first run had taken the lock, and the call sent again got that same lock, not "busy" or "queued"
    assert len(dropper.dropped) == 1 and dropper.dropped[0].startswith(b"*5\r\n:0\r\n:")
    assert begun.token and begun.token == int(direct.get(keys.lock(system, name)) or 0)
    assert dropper.dropped[0].split(b"\r\n")[2] == f":{begun.token}".encode()
    assert begun.state == b"one" and begun.revision == 1 and not begun.queued and not begun.busy_ms
    # And another call still finds the actor busy while it is held
    other = acts.begin(system, name, "b-3", doc, 1)
    assert other.queued if mailbox else other.busy_ms > 0
    # And the commit writes revision 2 and removes the lock with its owner
    now = int(time.time() * 1000)
    done = acts.commit(system, name, "b-2", begun.token, now, replace(_commit(b"two"), base_revision=1))
    assert done is not None and done.revision == 2
    assert not direct.exists(keys.lock(system, name)) and not direct.exists(keys.owner(system, name))
    direct.delete(*direct.keys(f"sp:*:{system}:{name}*"))
    for family in (keys.ACTIVE, keys.DIRTY, keys.MAILBOXES):
        direct.zrem(family, keys.member(system, name))
    client.close()


def test_a_call_that_finds_calls_left_in_the_mailbox_runs_after_them() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    acts = Activations(client=client, lease_ms=30_000, dedupe_ttl_s=60)
    system, name = "acttests", f"f-{uuid.uuid4().hex[:8]}"

    def doc(i: str) -> str:
        return f'{{"q":"q","k":{{"id":"{name}-{i}"}}}}'

    # Given an active actor whose last turn ended with two calls still in its mailbox (its budget was spent)
    first = acts.begin(system, name, f"{name}-0", doc("0"), 1)
    assert acts.commit(system, name, f"{name}-0", first.token, int(time.time() * 1000), _commit(b"zero"))
    held = acts.begin(system, name, f"{name}-1", doc("1"), 1)
    assert acts.begin(system, name, f"{name}-2", doc("2"), 2).queued
    assert acts.begin(system, name, f"{name}-3", doc("3"), 3).queued
    now = int(time.time() * 1000)
    assert acts.commit(system, name, f"{name}-1", held.token, now, replace(_commit(b"one"), base_revision=1))
    assert client.lrange(keys.mailbox(system, name), 0, -1) == [doc("2").encode(), doc("3").encode()]
    # When a new call takes the free lock
    late = acts.begin(system, name, f"{name}-4", doc("4"), 4)
    # Then it got the lock with the mailbox's head to run first, and went to the mailbox's tail itself
    assert late.token and late.next_item == doc("2") and late.next_record is None and late.state == b"one"
    assert client.lrange(keys.inflight(system, name), 0, -1) == [doc("2").encode()]
    assert client.lrange(keys.mailbox(system, name), 0, -1) == [doc("3").encode(), doc("4").encode()]
    # And a timer fire (no mailbox document) just takes the lock, leaving the mailbox as it is
    acts.abort(system, name, f"{name}-4", late.token)
    fire = acts.begin(system, name, "t.fire", "", 5)
    assert fire.token and fire.next_item is None
    acts.abort(system, name, "t.fire", fire.token)
    client.delete(*client.keys(f"sp:*:{system}:{name}*"))
    for family in (keys.ACTIVE, keys.DIRTY, keys.MAILBOXES):
        client.zrem(family, keys.member(system, name))
