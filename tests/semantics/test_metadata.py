"""Metadata, tags and caller propagation on every path (spawn-protocol.md 3.13)."""

from __future__ import annotations

import redis

from spawn_celery import codec
from spawn_celery.client import Client
from spawn_celery.proto import actor_pb2
from spawn_celery.services import Services
from tests.semantics.conftest import SYSTEM, notes, unique, wait_for


def probe_saw(side: redis.Redis, payload: str) -> dict:
    return wait_for(lambda: [d for d in notes(side, "probe") if d["payload"] == payload], timeout=5)[0]


def test_external_call_passes_metadata_and_its_caller(client: Client) -> None:
    seen = client.invoke(SYSTEM, "probe", "look", "plain", metadata={"a": "1"})
    assert (seen["caller"], seen["caller_id"], seen["metadata"]) == ("", None, {"a": "1"})
    request = client.request(SYSTEM, "probe", "look", "called", caller=actor_pb2.ActorId(name="cli", system="ext"))
    reply = client.send(request)
    reply.raise_for_error()
    seen = codec.unpack(reply.payload_any())
    assert (seen["caller"], seen["caller_id"]) == ("cli", ["cli", "ext", ""])


def test_forward_passes_the_source_metadata_and_the_source_as_caller(client: Client, side: redis.Redis) -> None:
    client.invoke(SYSTEM, "front", "fwd_probe", "forwarded", metadata={"trace": "t1"})
    seen = probe_saw(side, "forwarded")
    assert (seen["caller_id"], seen["metadata"]) == (["front", SYSTEM, ""], {"trace": "t1"})


def test_effect_merges_metadata_and_names_the_source_as_caller(client: Client, side: redis.Redis) -> None:
    client.invoke(SYSTEM, "prober", "effect_probe", metadata={"k": "request", "z": "1"})
    seen = probe_saw(side, "effect")
    assert (seen["caller"], seen["metadata"]) == ("prober", {"k": "effect", "z": "1"})


def test_broadcast_carries_no_metadata_and_the_broadcaster_as_caller(client: Client, side: redis.Redis) -> None:
    client.invoke(SYSTEM, "prober", "broadcast_probe", metadata={"x": "y"})
    seen = probe_saw(side, "broadcast")
    assert (seen["caller"], seen["metadata"]) == ("prober", {})


def test_init_runs_with_self_as_caller_and_no_metadata(client: Client, side: redis.Redis) -> None:
    client.invoke(SYSTEM, "probe", "look", "wake", metadata={"a": "1"})
    init = notes(side, "init:probe")
    assert len(init) == 1 and (init[0]["caller"], init[0]["metadata"]) == ("probe", {})


def test_tags_returned_by_an_action_replace_the_actors_tags_and_persist(client: Client, services: Services) -> None:
    client.invoke(SYSTEM, "probe", "tag", {"color": "red", "run": unique("r")})
    assert client.invoke(SYSTEM, "probe", "look", "after-tag")["tags"]["color"] == "red"
    assert client.state(SYSTEM, "probe").tags["color"] == "red"
    saved = wait_for(lambda: services.statestore.load(SYSTEM, "probe"), timeout=15)  # snapshot_timeout 2 s
    assert saved.tags["color"] == "red"
