"""Side effects: sent only after the caller's state change is committed, never when the action failed."""

from __future__ import annotations

import time

import pytest
import redis

from spawn_celery import ActorNotFound
from spawn_celery.client import Client
from spawn_celery.errors import PayloadEncodeError
from tests.semantics.conftest import SYSTEM, notes, wait_for


def sink_got(side: redis.Redis, n: int) -> list[dict]:
    return [d for d in notes(side, "sink") if d["payload"] == {"n": n}]


def test_effect_is_sent_after_the_state_change_is_committed(client: Client, side: redis.Redis) -> None:
    n = client.invoke(SYSTEM, "source", "bump_and_notify", metadata={"k": "request", "m": "kept"})
    doc = wait_for(lambda: sink_got(side, n), timeout=5)[0]
    assert doc["source_revision"] == n  # the source's new state was committed when the effect arrived
    assert doc["caller"] == "source"
    assert doc["metadata"] == {"k": "effect", "m": "kept"}  # spawn-protocol 3.13: merged, the effect wins


def test_no_effect_when_the_action_fails(client: Client, side: redis.Redis) -> None:
    with pytest.raises(PayloadEncodeError):
        client.invoke(SYSTEM, "source", "notify_then_fail")
    time.sleep(0.3)
    assert sink_got(side, -1) == []


def test_forward_to_an_unknown_actor_fails_clearly_and_applies_nothing(client: Client, side: redis.Redis) -> None:
    before = client.state(SYSTEM, "source").revision
    with pytest.raises(ActorNotFound, match="forward from source.notify_and_forward_nowhere to nobody.anything"):
        client.invoke(SYSTEM, "source", "notify_and_forward_nowhere")
    time.sleep(0.3)
    assert client.state(SYSTEM, "source").revision == before  # no state change
    assert sink_got(side, -2) == []  # and no effect


def test_effect_on_an_unknown_template_fails_before_anything_is_applied(client: Client) -> None:
    before = client.state(SYSTEM, "source").revision
    with pytest.raises(ActorNotFound, match="side effect of source.notify_via_unknown_template: .*no_template"):
        client.invoke(SYSTEM, "source", "notify_via_unknown_template")
    assert client.state(SYSTEM, "source").revision == before
