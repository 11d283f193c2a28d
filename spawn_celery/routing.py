"""Routing: resolve targets and send invocations, scheduled calls and workflow steps.

Workflow steps get ids derived from the source invocation id (``<id>.e0``, ``<id>.b.<name>``, ``<id>.f``), so a
replayed source (redelivered after a crash) re-sends them harmlessly: each target dedupes by id.
"""

from __future__ import annotations

import logging
import time

from spawn_celery.actor import RESERVED_GET_ACTIONS, Kind
from spawn_celery.errors import ActionNotFound, ActorNotFound, ChainTooDeep, RequestError, SpawnError
from spawn_celery.message import Message, Reply
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry, Registry
from spawn_celery.scheduler import Scheduler
from spawn_celery.transport import CeleryTransport

log = logging.getLogger(__name__)
RESTORE_ACTION = "__restore__"
"""Internal action: restore the actor's state to the revision in metadata ``revision``."""


class Router:
    """Sends invocation messages to the right queue, now or at their scheduled time."""

    def __init__(self, *, registry: Registry, transport: CeleryTransport, scheduler: Scheduler, max_depth: int) -> None:
        """Compose the registry, transport and scheduler."""
        self.registry = registry
        self.transport = transport
        self.scheduler = scheduler
        self.max_depth = max_depth

    def resolve(self, request: protocol_pb2.InvocationRequest, *, sent: bool = False) -> Entry:
        """Find the target of ``request`` and check the action exists (spawning ``register_ref`` instances).

        ``sent``: the request is one :meth:`submit` sent, so an instance's ``parent`` in it is the registry's and
        the instance record need not be read again (the worker's case).

        Raises:
            ActorNotFound: unknown actor, an unnamed instance never spawned, or an unnamed template itself.
            ActionNotFound: unknown action.
        """
        system = request.actor.id.system or request.system.name
        name = request.actor.id.name
        if request.register_ref:
            try:
                entry = self.registry.lookup(system, name)
            except ActorNotFound:  # check the template's actions before creating anything
                template = self.registry.lookup(system, request.register_ref)
                action = request.action_name
                if action not in template.actions and action not in RESERVED_GET_ACTIONS:
                    raise ActionNotFound(system, name, action) from None
                entry = self.registry.spawn(system, name, request.register_ref)
        elif sent and request.actor.id.parent:
            entry = self.registry.instance(system, name, request.actor.id.parent)
        else:
            entry = self.registry.lookup(system, name)
        if entry.kind is Kind.UNNAMED and not entry.parent:
            exc = ActorNotFound(system, name)
            exc.args = (f"{name} on ActorSystem {system} is an unnamed template: spawn an instance and invoke that",)
            raise exc
        action = request.action_name
        if action not in entry.actions and action not in RESERVED_GET_ACTIONS and action != RESTORE_ACTION:
            raise ActionNotFound(system, name, action)
        return entry

    def submit(self, message: Message, entry: Entry | None = None) -> Entry:
        """Resolve and send (or schedule) ``message``; return the target entry."""
        entry = entry or self.resolve(message.request)
        request = message.request
        request.actor.id.system = entry.system
        request.system.name = entry.system
        request.actor.id.parent = entry.parent  # the worker trusts it (``resolve(sent=True)``)
        at = request.scheduled_to
        if at and at > int(time.time() * 1000):
            request.scheduled_to = 0
            self.scheduler.schedule(message, entry.queue, at)
        else:
            request.scheduled_to = 0
            self.transport.send(message, entry.queue)
        return entry

    def check(self, source: Message, response: protocol_pb2.ActorInvocationResponse) -> None:
        """Validate a reply's workflow before its state change is committed (nothing is half-applied).

        Raises:
            ActorNotFound / ActionNotFound: a forward, pipe or effect names an unknown target.
            ChainTooDeep: one more hop would pass the depth limit.
        """
        wf = response.workflow
        routing = wf.WhichOneof("routing")
        where = f"{source.actor}.{source.action}"
        if routing:
            step = wf.forward if routing == "forward" else wf.pipe
            try:
                if source.depth + 1 > self.max_depth:
                    raise ChainTooDeep(source.depth + 1, self.max_depth)
                self.resolve(self._hop_request(source, step.actor, step.action_name))
            except RequestError as exc:
                exc.args = (f"{routing} from {where} to {step.actor}.{step.action_name}: {exc}",)
                raise
        for effect in wf.effects:
            request = self._effect_request(source, effect.request)
            try:
                if request.register_ref:  # spawned when sent; its template must exist now
                    self.registry.template(request.system.name, request.register_ref)
                else:
                    self.resolve(request)
            except RequestError as exc:
                exc.args = (f"side effect of {where}: {exc}",)
                raise

    def dispatch(
        self,
        source: Message,
        response: protocol_pb2.ActorInvocationResponse,
        reply: Reply,
        *,
        failure: Reply | None = None,
    ) -> None:
        """Answer the caller (or hand the caller on to the next hop) and send effects and broadcasts.

        Args:
            source: the invocation that produced ``response``.
            response: the host's response with its workflow.
            reply: the reply for the caller when there is no forward/pipe.
            failure: an error answer for the caller instead of ``reply`` and of any forward/pipe (the state change
                was committed but something the caller asked for, e.g. a checkpoint, failed); effects and
                broadcasts are still sent since the change they follow is committed.
        """
        wf = response.workflow
        routing = wf.WhichOneof("routing") if response.HasField("workflow") else None
        if failure is not None:
            self.answer(source, failure)
        elif routing:
            step = wf.forward if routing == "forward" else wf.pipe
            hop = self._hop_request(source, step.actor, step.action_name)
            if routing == "pipe":
                hop.ClearField("value")
                if response.HasField("value"):
                    hop.value.CopyFrom(response.value)
                else:
                    hop.noop.SetInParent()
            nxt = Message(f"{source.id}.f", hop, source.reply_to, source.depth + 1)
            try:
                self.submit(nxt)
            except SpawnError as exc:  # the target vanished after check(): the caller still gets an answer
                self.answer(source, Reply.failure(exc))
        else:
            self.answer(source, reply)
        if not response.HasField("workflow"):
            return
        for i, effect in enumerate(wf.effects):
            self._safely(Message(f"{source.id}.e{i}", self._effect_request(source, effect.request)))
        if wf.HasField("broadcast") and wf.broadcast.channel_group:
            self.broadcast(source, wf.broadcast)

    def answer(self, source: Message, reply: Reply) -> None:
        """Store the final reply for a waiting caller (no-op for async calls)."""
        if source.reply_to:
            self.transport.store(source.reply_to, reply)

    def broadcast(self, source: Message, broadcast: protocol_pb2.Broadcast) -> None:
        """Send the broadcast to every subscriber of its channel; one failing subscriber does not stop the rest."""
        system = source.system
        me = source.request.actor.id
        for name, channel_action in self.registry.subscribers(system, broadcast.channel_group):
            request = protocol_pb2.InvocationRequest(
                system=actor_pb2.ActorSystem(name=system),
                actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=name, system=system)),
                action_name=broadcast.action_name or channel_action,
                caller=actor_pb2.ActorId(name=me.name, system=me.system, parent=me.parent),
            )
            setattr(request, "async", True)
            if broadcast.HasField("value"):
                request.value.CopyFrom(broadcast.value)
            else:
                request.noop.SetInParent()
            self._safely(Message(f"{source.id}.b.{name}", request))

    def _safely(self, message: Message) -> None:
        try:
            self.submit(message)
        except SpawnError as exc:
            log.warning("workflow step %s to %s.%s not sent: %s", message.id, message.actor, message.action, exc)

    def _hop_request(self, source: Message, actor: str, action: str) -> protocol_pb2.InvocationRequest:
        src = source.request
        hop = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=source.system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=source.system)),
            action_name=action,
            caller=actor_pb2.ActorId(name=src.actor.id.name, system=source.system, parent=src.actor.id.parent),
        )
        hop.metadata.update(src.metadata)
        if src.HasField("value"):
            hop.value.CopyFrom(src.value)
        else:
            hop.noop.SetInParent()
        return hop

    def _effect_request(
        self, source: Message, request: protocol_pb2.InvocationRequest
    ) -> protocol_pb2.InvocationRequest:
        effect = protocol_pb2.InvocationRequest()
        effect.CopyFrom(request)
        system = request.actor.id.system or request.system.name or source.system
        effect.system.name = system
        effect.actor.id.system = system
        merged = dict(source.request.metadata)
        merged.update(request.metadata)
        effect.metadata.clear()
        effect.metadata.update(merged)
        if not effect.HasField("caller"):
            src = source.request.actor.id
            effect.caller.CopyFrom(actor_pb2.ActorId(name=src.name, system=source.system, parent=src.parent))
        setattr(effect, "async", True)
        return effect
