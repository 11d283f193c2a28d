"""Scheduler claims against the real Redis, through a link that loses a reply."""

from __future__ import annotations

import time
import uuid

import redis

from spawn_celery import keys
from spawn_celery.message import Message
from spawn_celery.proto import protocol_pb2
from spawn_celery.scheduler import Scheduler
from tests.support import ReplyDropper


def _message(invocation_id: str) -> Message:
    request = protocol_pb2.InvocationRequest(action_name="increment")
    request.actor.id.system, request.actor.id.name = "schedtests", "a"
    return Message(id=invocation_id, request=request)


def test_a_claim_whose_reply_was_lost_still_returns_what_it_claimed_once(dropper: ReplyDropper) -> None:
    client = redis.Redis(host="127.0.0.1", port=dropper.port, db=12)
    direct = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    scheduler = Scheduler(client=client, claim_lease_ms=30_000)
    ids = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    now = int(time.time() * 1000)
    # Given three scheduled calls that are due
    for invocation_id in ids:
        scheduler.schedule(_message(invocation_id), "spawn.schedtests.a", now - 10)
    client.ping()  # the link's connection is open: the next reply through it is the claim's
    # When the claim runs in Redis but its reply is lost on the way back
    dropper.armed.set()
    claimed = [m.id for _, m in scheduler.claim_scheduled(now) if m.id in ids]
    # Then the claim, sent once more with its nonce, returned the three calls it had claimed (they are not left
    # pushed a lease ahead, to be sent 30 s late)
    assert len(dropper.dropped) == 1
    assert sorted(claimed) == sorted(ids)
    # And a new claim does not take them again
    assert not [m.id for _, m in scheduler.claim_scheduled(now) if m.id in ids]
    for invocation_id in ids:
        scheduler.sent(invocation_id)
    assert not direct.zscore(keys.SCHEDULED, ids[0])
    client.close()
