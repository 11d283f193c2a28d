"""Broadcast: every subscriber of the channel, activated or not, once each; a failing one stops no other."""

from __future__ import annotations

import time

import redis

from spawn_celery.client import Client
from spawn_celery.proto import actor_pb2
from spawn_celery.services import Services
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for


def test_broadcast_reaches_every_healthy_subscriber_exactly_once(client: Client, side: redis.Redis) -> None:
    # Given subscribers of "news": two never activated (Gen-1 string, Gen-2 Channel list), one spawned instance of
    # a template subscribed with action "heard", and one that raises
    instance = unique("listener")
    client.spawn(SYSTEM, instance, "listener")
    assert not side.exists("sp:st:semtests:sub_gen1") and not side.exists("sp:st:semtests:sub_gen2")
    # When news broadcasts once
    assert client.invoke(SYSTEM, "news", "publish", {"channel": "news", "payload": {"headline": "hi"}}) == "published"
    # Then each healthy subscriber gets it once, with its own channel action, from caller "news"
    wait_for(lambda: all(notes(side, f"bc:{n}") for n in ("sub_gen1", "sub_gen2", instance)), timeout=5)
    time.sleep(0.3)
    got = {n: notes(side, f"bc:{n}") for n in ("sub_gen1", "sub_gen2", instance)}
    assert {n: [d["action"] for d in docs] for n, docs in got.items()} == {
        "sub_gen1": ["receive"], "sub_gen2": ["on_news"], instance: ["heard"],
    }
    assert all(docs[0]["payload"] == {"headline": "hi"} and docs[0]["caller"] == "news" for docs in got.values())
    assert all(docs[0]["metadata"] == {} for docs in got.values())  # spawn-protocol 3.13: no metadata
    assert client.state(SYSTEM, "sub_gen1").value == {"n": 1}


def test_broadcast_with_an_action_name_invokes_that_action(client: Client, side: redis.Redis) -> None:
    client.invoke(SYSTEM, "news", "publish", {"channel": "alerts", "action": "alert", "payload": "fire"})
    docs = wait_for(lambda: notes(side, "bc:sub_alerts"), timeout=5)
    assert [(d["action"], d["payload"]) for d in docs] == [("alert", "fire")]


def test_broadcast_to_a_channel_without_subscribers_is_fine(client: Client) -> None:
    assert client.invoke(SYSTEM, "news", "publish", {"channel": unique("empty"), "payload": 1}) == "published"


def test_re_registration_replaces_subscriptions(services: Services) -> None:
    name, old, new = unique("mover"), unique("old"), unique("new")
    proto = actor_pb2.Actor(id=actor_pb2.ActorId(name=name, system=SYSTEM))
    proto.actions.append(actor_pb2.Action(name="receive"))
    proto.metadata.channel_group = old
    services.registry.register(SYSTEM, [proto], host="http://127.0.0.1:1")
    proto.metadata.channel_group = new
    services.registry.register(SYSTEM, [proto], host="http://127.0.0.1:1")
    assert services.registry.subscribers(SYSTEM, old) == []
    assert services.registry.subscribers(SYSTEM, new) == [(name, "receive")]
