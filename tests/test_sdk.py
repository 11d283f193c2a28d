"""The Python SDK's declarations and values (pure logic, no services)."""

from __future__ import annotations

import pytest

import spawn_celery
from spawn_celery import Actor, ActorSettings, Broadcast, Context, DefinitionError, Forward, Kind, Pipe, Value
from spawn_celery.codec import pack, unpack
from spawn_celery.examples.domain_pb2 import CounterState
from spawn_celery.hosts.python import to_response
from spawn_celery.proto import actor_pb2, protocol_pb2


def test_public_api_is_pinned() -> None:
    assert set(spawn_celery.__all__) >= {
        "Actor", "ActorSettings", "Kind", "Context", "Value", "Metadata", "Broadcast", "Effect", "Forward", "Pipe",
        "Spawn", "ActorRef", "Client", "SpawnError", "ActorNotFound", "ActionNotFound",
    }


def test_handlers_take_request_and_ctx_or_ctx_only() -> None:
    actor = Actor(ActorSettings(name="a"))

    @actor.action("two")
    def two(request, ctx):  # type: ignore[no-untyped-def]  # annotations are optional
        return Value().response(request)

    @actor.action("one")
    def one(ctx: Context) -> Value:
        return Value().response("one")

    assert actor.call("two", None, Context()).get_response() is None  # noop payload: request=None, no TypeError
    assert actor.call("one", "ignored", Context()).get_response() == "one"


def test_declaration_errors_are_raised_where_declared() -> None:
    actor = Actor(ActorSettings(name="a"))
    with pytest.raises(DefinitionError, match="positive"):
        actor.timer_action(every=0)
    actor.action("x")(lambda ctx: Value())
    with pytest.raises(DefinitionError, match="twice"):
        actor.action("x")(lambda ctx: Value())
    with pytest.raises(DefinitionError, match="takes"):
        actor.action("y")(lambda a, b, c: Value())
    with pytest.raises(DefinitionError):
        ActorSettings(name="bad", deactivate_timeout=0)


def test_value_cannot_pipe_and_forward() -> None:
    with pytest.raises(DefinitionError):
        Value().forward(Forward("a", "b")).pipe(Pipe("c", "d"))


def test_reply_without_response_is_noop_and_tags_are_kept() -> None:
    me = actor_pb2.ActorId(name="a", system="s")
    current = protocol_pb2.Context(tags={"k": "v"})
    response = to_response(Value().reply(), me, current)
    assert response.WhichOneof("payload") == "noop" and dict(response.updated_context.tags) == {"k": "v"}


def test_workflow_is_encoded_gen1() -> None:
    me = actor_pb2.ActorId(name="a", system="s")
    value = Value().broadcast(Broadcast("news", "on_news", {"x": 1})).forward(Forward("b", "go"))
    wf = to_response(value, me, protocol_pb2.Context()).workflow
    assert wf.broadcast.channel_group == "news" and wf.broadcast.action_name == "on_news"
    assert wf.forward.actor == "b" and wf.forward.action_name == "go"


def test_json_and_protobuf_payloads_round_trip() -> None:
    assert unpack(pack({"a": [1, 2]})) == {"a": [1, 2]}
    assert unpack(pack(CounterState(value=3))) == CounterState(value=3)
    assert pack(None) is None


def test_actor_proto_describes_settings_and_timers() -> None:
    actor = Actor(ActorSettings(name="t", kind=Kind.UNNAMED, channel="c", deactivate_timeout=5, snapshot_timeout=7))
    actor.timer_action(every=250)(lambda ctx: Value())
    proto = actor.to_proto("sys")
    assert proto.settings.kind == 2 and proto.metadata.channel_group == "c"
    assert proto.timer_actions[0].seconds == 250  # milliseconds on the wire, as Spawn
    assert proto.settings.deactivation_strategy.timeout.timeout == 5
