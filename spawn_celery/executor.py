"""The executor: runs one action of an actor on its host (in-process Python or a remote SDK host over HTTP).

It builds the ``ActorInvocation`` from the actor's state and the request, calls the host and returns the new state;
the reserved ``get`` and restore actions are answered here without a host.
"""

from __future__ import annotations

from spawn_celery.actor import INIT_ACTIONS, RESERVED_GET_ACTIONS
from spawn_celery.errors import ActorError, ActorNotFound
from spawn_celery.hosts.base import Host
from spawn_celery.hosts.python import PythonHost
from spawn_celery.hosts.remote import RemoteHost
from spawn_celery.message import Message
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry
from spawn_celery.routing import RESTORE_ACTION
from spawn_celery.snapshotter import state_of
from spawn_celery.statestores.base import StateStore


class Executor:
    """Runs actions on their hosts; remote hosts are kept (with their pooled connections) per address."""

    def __init__(self, *, statestore: StateStore, python_host: PythonHost | None, host_timeout_s: float) -> None:
        """``statestore`` serves restores; ``python_host`` the actors of this process; remote calls time out."""
        self.statestore = statestore
        self.python_host = python_host
        self.host_timeout_s = host_timeout_s
        self._remote: dict[str, RemoteHost] = {}

    def run_init(self, entry: Entry, state: actor_pb2.ActorState) -> actor_pb2.ActorState:
        """Run the actor's ``init`` action (if it has one) on activation; return the state it leaves."""
        init = next((a for a in INIT_ACTIONS if a in entry.actions), None)
        if init is None:
            return state
        me = actor_pb2.ActorId(name=entry.name, system=entry.system, parent=entry.parent)
        request = protocol_pb2.InvocationRequest(action_name=init, caller=me, noop=protocol_pb2.Noop())
        request.actor.id.CopyFrom(me)
        _, state = self.run(entry, Message("init", request), state, 0)
        return state

    def run(
        self, entry: Entry, message: Message, state: actor_pb2.ActorState, revision: int
    ) -> tuple[protocol_pb2.ActorInvocationResponse, actor_pb2.ActorState]:
        """Run the action; return the host's response and the actor's new state."""
        request = message.request
        me = actor_pb2.ActorId(name=entry.name, system=entry.system, parent=entry.parent)
        action = request.action_name
        if action == RESTORE_ACTION:
            return self._restore(entry, state, request)
        if action in RESERVED_GET_ACTIONS and action not in entry.actions:
            return _answer_with(entry, state), state
        invocation = protocol_pb2.ActorInvocation(actor=me, action_name=action)
        ctx = invocation.current_context
        if state.HasField("state"):
            ctx.state.CopyFrom(state.state)
        ctx.metadata.update(request.metadata)
        ctx.tags.update(state.tags)
        ctx.self.CopyFrom(me)
        if request.HasField("caller"):
            ctx.caller.CopyFrom(request.caller)
            invocation.caller.CopyFrom(request.caller)
        if request.HasField("value"):
            invocation.value.CopyFrom(request.value)
        else:
            invocation.noop.SetInParent()
        response = self.host(entry).call(invocation)
        updated = response.updated_context
        new = actor_pb2.ActorState()
        new.tags.update(updated.tags)
        if updated.HasField("state") and entry.definition.settings.stateful:
            new.state.CopyFrom(updated.state)
        elif state.HasField("state"):
            new.state.CopyFrom(state.state)
        return response, new

    def _restore(
        self, entry: Entry, state: actor_pb2.ActorState, request: protocol_pb2.InvocationRequest
    ) -> tuple[protocol_pb2.ActorInvocationResponse, actor_pb2.ActorState]:
        revision = int(request.metadata.get("revision", "0") or 0)
        snapshot = self.statestore.load_revision(entry.system, entry.name, revision)
        if snapshot is None:
            raise ActorError(f"actor {entry.name} has no stored revision {revision}")
        restored = state_of(snapshot)
        return _answer_with(entry, restored), restored

    def host(self, entry: Entry) -> Host:
        """The host of ``entry``: this process for Python actors, else the remote SDK host it registered from."""
        if not entry.host:
            if self.python_host is None or entry.type_name not in self.python_host.actors:
                raise ActorNotFound(entry.system, entry.name)
            return self.python_host
        host = self._remote.get(entry.host)
        if host is None:
            host = self._remote[entry.host] = RemoteHost(entry.host, timeout_s=self.host_timeout_s)
        return host


def _answer_with(entry: Entry, state: actor_pb2.ActorState) -> protocol_pb2.ActorInvocationResponse:
    """A response made by the runtime whose payload is ``state``'s value (reserved ``get`` and restore)."""
    response = protocol_pb2.ActorInvocationResponse(actor_name=entry.name, actor_system=entry.system)
    response.updated_context.SetInParent()
    if state.HasField("state"):  # else no payload: the caller gets None
        response.value.CopyFrom(state.state)
    return response
