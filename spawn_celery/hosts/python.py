"""In-process host for Python actors: no HTTP hop, no extra encoding of the reply."""

from __future__ import annotations

from collections.abc import Mapping

from spawn_celery import codec
from spawn_celery.actor import Actor
from spawn_celery.context import ActorRefId, Context
from spawn_celery.errors import ActionNotFound, ActorError, ActorNotFound, DefinitionError, SpawnError
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.value import ReplyKind, Value


class PythonHost:
    """Runs actions of the Python actors given, by actor type name."""

    def __init__(self, actors: Mapping[str, Actor]) -> None:
        """Host ``actors`` (type name -> :class:`Actor`)."""
        self.actors = dict(actors)

    def call(self, invocation: protocol_pb2.ActorInvocation) -> protocol_pb2.ActorInvocationResponse:
        """Run the action and convert its :class:`Value` to Spawn's response message."""
        actor_id = invocation.actor
        actor = self.actors.get(actor_id.parent or actor_id.name)
        if actor is None:
            raise ActorNotFound(actor_id.system, actor_id.name)
        if not actor.has_action(invocation.action_name):
            raise ActionNotFound(actor_id.system, actor_id.name, invocation.action_name)
        current = invocation.current_context
        request = codec.unpack(invocation.value) if invocation.HasField("value") else None
        caller = invocation.caller if invocation.HasField("caller") else None
        ctx = Context(
            state=codec.unpack(current.state) if current.HasField("state") else None,
            caller=caller.name if caller else "",
            metadata=dict(current.metadata),
            tags=dict(current.tags),
            self_id=ActorRefId(actor_id.name, actor_id.system, actor_id.parent),
            caller_id=ActorRefId(caller.name, caller.system, caller.parent) if caller else None,
        )
        try:
            value = actor.call(invocation.action_name, request, ctx)
        except SpawnError:
            raise
        except Exception as exc:  # the action's own failure becomes an ERROR answer
            raise ActorError(str(exc) or type(exc).__name__, type(exc).__name__) from exc
        return to_response(value, actor_id, current)


def to_response(
    value: Value, actor_id: actor_pb2.ActorId, current: protocol_pb2.Context
) -> protocol_pb2.ActorInvocationResponse:
    """Build the ``ActorInvocationResponse`` a Spawn host would send for ``value``."""
    response = protocol_pb2.ActorInvocationResponse(actor_name=actor_id.name, actor_system=actor_id.system)
    ctx = response.updated_context
    if value.has_state():
        packed = codec.pack(value.get_state())
        if packed is not None:
            ctx.state.CopyFrom(packed)
    metadata = value.get_metadata()
    if metadata is not None and metadata.get_tags():
        ctx.tags.update(metadata.get_tags())
    else:
        ctx.tags.update(current.tags)
    if metadata is not None:
        ctx.metadata.update(metadata.get_metadata())
    payload = codec.pack(value.get_response()) if value.get_reply_kind() is ReplyKind.REPLY else None
    if payload is not None:
        response.value.CopyFrom(payload)
    else:
        response.noop.SetInParent()
    _workflow(value, actor_id, response.workflow)
    response.checkpoint = value.has_checkpoint()
    return response


def _workflow(value: Value, actor_id: actor_pb2.ActorId, workflow: protocol_pb2.Workflow) -> None:
    broadcast = value.get_broadcast()
    if broadcast is not None:
        if not broadcast.channel:
            raise DefinitionError("Broadcast needs a channel")
        workflow.broadcast.channel_group = broadcast.channel
        workflow.broadcast.action_name = broadcast.action_name or ""
        packed = codec.pack(broadcast.value)
        if packed is not None:
            workflow.broadcast.value.CopyFrom(packed)
        else:
            workflow.broadcast.noop.SetInParent()
    for effect in value.get_effects():
        if not effect.actor:
            raise DefinitionError("Effect needs a target actor")
        system = effect.system or actor_id.system
        request = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=effect.actor, system=system, parent=effect.parent or "")),
            action_name=effect.action,
            caller=actor_id,
            scheduled_to=effect.scheduled_to,
            register_ref=effect.parent or "",
        )
        request.metadata.update(effect.metadata)
        setattr(request, "async", True)
        packed = codec.pack(effect.payload)
        if packed is not None:
            request.value.CopyFrom(packed)
        else:
            request.noop.SetInParent()
        workflow.effects.append(protocol_pb2.SideEffect(request=request))
    forward, pipe = value.get_forward(), value.get_pipe()
    if forward is not None:
        workflow.forward.actor, workflow.forward.action_name = forward.actor, forward.action
    elif pipe is not None:
        workflow.pipe.actor, workflow.pipe.action_name = pipe.actor, pipe.action
