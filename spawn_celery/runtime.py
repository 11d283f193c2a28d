"""The runtime: how a worker runs one invocation, exactly once, under the actor's lock.

One turn: ``begin`` (dedupe + lock + hot state, one Lua call) → load the latest snapshot from SQL if the actor is
not active → run ``init`` once on activation → run the action (in-process or on a remote host) → validate the
workflow → ``commit`` (fenced state write + dedupe record + unlock, one Lua call) → checkpoint to SQL if asked →
answer the caller and send the workflow. A failure before commit changes nothing.
"""

from __future__ import annotations

import logging
import time

from google.protobuf import any_pb2

from spawn_celery.activation import Activations, Commit
from spawn_celery.actor import INIT_ACTIONS, RESERVED_GET_ACTIONS, Kind
from spawn_celery.errors import ActorBusy, ActorError, ActorNotFound, SpawnError, StateConflict
from spawn_celery.hosts.base import Host
from spawn_celery.hosts.python import PythonHost
from spawn_celery.hosts.remote import RemoteHost
from spawn_celery.message import Message, Reply
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry
from spawn_celery.routing import RESTORE_ACTION, Router
from spawn_celery.scheduler import Scheduler
from spawn_celery.statestores.base import Snapshot, StateStore

log = logging.getLogger(__name__)


class Runtime:
    """Runs invocations inside a worker process."""

    def __init__(
        self,
        *,
        router: Router,
        activations: Activations,
        statestore: StateStore,
        scheduler: Scheduler,
        python_host: PythonHost | None = None,
        lock_wait_ms: int = 60_000,
        host_timeout_s: float = 60.0,
    ) -> None:
        """Compose the parts a worker needs."""
        self.router = router
        self.activations = activations
        self.statestore = statestore
        self.scheduler = scheduler
        self.python_host = python_host
        self.lock_wait_ms = lock_wait_ms
        self.host_timeout_s = host_timeout_s
        self._remote: dict[str, RemoteHost] = {}

    def handle(self, message: Message) -> Reply:
        """Run ``message`` and deliver its reply; errors become error replies, never lost messages."""
        try:
            entry = self.router.resolve(message.request)
        except SpawnError as exc:
            reply = Reply.failure(exc)
            self.router.answer(message, reply)
            return reply
        for _ in range(3):
            try:
                if entry.kind is Kind.POOLED:
                    return self._pooled(entry, message)
                return self._locked(entry, message)
            except StateConflict:
                log.warning("invocation %s lost the lock of %s; running it again", message.id, entry.name)
            except SpawnError as exc:
                reply = Reply.failure(exc)
                self.router.answer(message, reply)
                return reply
        reply = Reply.failure(StateConflict(f"invocation {message.id} kept losing the lock of {entry.name}"))
        self.router.answer(message, reply)
        return reply

    def _locked(self, entry: Entry, message: Message) -> Reply:
        system, name = entry.system, entry.name
        deadline = time.monotonic() + self.lock_wait_ms / 1000.0
        while True:
            begun = self.activations.begin(system, name, message.id)
            if begun.done is not None:
                return self._replay(message, Reply.from_json(begun.done))
            if not begun.busy_ms:
                break
            if time.monotonic() > deadline:
                raise ActorBusy(f"actor {name} stayed busy for {self.lock_wait_ms} ms")
            self.activations.wait(system, name, min(begun.busy_ms, 250))
        token = begun.token
        try:
            activated = begun.state is None
            if activated:
                state, revision, restored = self._load(entry)
            else:
                state, revision, restored = actor_pb2.ActorState.FromString(begun.state or b""), begun.revision, False
            before = state.SerializeToString()
            if activated:
                state = self._run_init(entry, state)
            response, state = self._run(entry, message, state, revision)
            self.router.check(message, response)
        except BaseException as exc:
            record = "" if isinstance(exc, SpawnError) and exc.retryable else Reply.failure(exc).to_json()
            self.activations.abort(system, name, message.id, token, record.encode())
            if isinstance(exc, SpawnError):
                raise
            if isinstance(exc, Exception):
                raise ActorError(str(exc) or type(exc).__name__, type(exc).__name__) from exc
            raise
        stateful = entry.definition.settings.stateful
        after = state.SerializeToString()
        changed = stateful and (after != before or restored)
        new_revision = revision + 1 if changed else revision
        reply = Reply(
            payload=response.value.SerializeToString() if response.HasField("value") else None,
            revision=new_revision,
            workflow=response.SerializeToString() if response.HasField("workflow") else None,
        )
        now = int(time.time() * 1000)
        settings = entry.definition.settings
        keep = entry.definition.metadata.tags.get("spawn-celery/keep-timers") == "true"
        timers = {t.action.name: max(int(t.seconds), 1) for t in entry.definition.timer_actions}
        commit = Commit(
            state=after if stateful else b"",
            changed=changed,
            base_revision=revision,
            reply=reply.to_json().encode(),
            deactivate_ms=int(settings.deactivation_strategy.timeout.timeout or 30_000),
            snapshot_ms=int(settings.snapshot_strategy.timeout.timeout or 2_000),
            parent=entry.parent,
            timers="" if keep else "\n".join(timers),
            stateful=stateful,
        )
        committed = self.activations.commit(system, name, message.id, token, now, commit)
        if committed is None:
            raise StateConflict(f"lost the lock of {name} before commit")
        if committed[1] and timers:
            self.scheduler.add_timers(system, name, timers, now)
        if response.checkpoint and stateful and changed:
            self._checkpoint(entry, state, new_revision)
        self.router.dispatch(message, response, reply)
        return reply

    def _pooled(self, entry: Entry, message: Message) -> Reply:
        recorded = self.activations.done(entry.system, entry.name, message.id)
        if recorded is not None:
            return self._replay(message, Reply.from_json(recorded))
        limit = entry.definition.settings.max_pool_size
        with _PoolSlot(self.activations, entry, limit, self.lock_wait_ms):
            response, _ = self._run(entry, message, actor_pb2.ActorState(), 0)
            self.router.check(message, response)
        reply = Reply(
            payload=response.value.SerializeToString() if response.HasField("value") else None,
            workflow=response.SerializeToString() if response.HasField("workflow") else None,
        )
        self.activations.record(entry.system, entry.name, message.id, reply.to_json().encode())
        self.router.dispatch(message, response, reply)
        return reply

    def _replay(self, message: Message, reply: Reply) -> Reply:
        """A redelivered invocation: answer from the record and re-send its (deduplicated) workflow."""
        if reply.workflow is not None:
            response = protocol_pb2.ActorInvocationResponse.FromString(reply.workflow)
            self.router.dispatch(message, response, reply)
        else:
            self.router.answer(message, reply)
        return reply

    def _load(self, entry: Entry) -> tuple[actor_pb2.ActorState, int, bool]:
        """Activation: the latest snapshot (or the spawn-time revision), else the registered initial state."""
        initial = actor_pb2.ActorState(tags=dict(entry.definition.state.tags))
        if not entry.definition.settings.stateful:
            return initial, 0, False
        latest = self.statestore.load(entry.system, entry.name)
        if latest is None:
            return initial, 0, False
        snapshot, restored = latest, False
        if entry.revision and entry.revision != latest.revision:
            old = self.statestore.load_revision(entry.system, entry.name, entry.revision)
            if old is not None:
                snapshot, restored = old, True
        return _state_of(snapshot), latest.revision, restored

    def _run_init(self, entry: Entry, state: actor_pb2.ActorState) -> actor_pb2.ActorState:
        init = next((a for a in INIT_ACTIONS if a in entry.actions), None)
        if init is None:
            return state
        me = actor_pb2.ActorId(name=entry.name, system=entry.system, parent=entry.parent)
        request = protocol_pb2.InvocationRequest(action_name=init, caller=me, noop=protocol_pb2.Noop())
        request.actor.id.CopyFrom(me)
        _, state = self._run(entry, Message("init", request), state, 0)
        return state

    def _run(
        self, entry: Entry, message: Message, state: actor_pb2.ActorState, revision: int
    ) -> tuple[protocol_pb2.ActorInvocationResponse, actor_pb2.ActorState]:
        """Run the action; return the host's response and the actor's new state."""
        request = message.request
        me = actor_pb2.ActorId(name=entry.name, system=entry.system, parent=entry.parent)
        action = request.action_name
        if action == RESTORE_ACTION:
            return self._restore(entry, state, request)
        if action in RESERVED_GET_ACTIONS and action not in entry.actions:
            response = protocol_pb2.ActorInvocationResponse(actor_name=entry.name, actor_system=entry.system)
            response.updated_context.SetInParent()
            if state.HasField("state"):
                response.value.CopyFrom(state.state)
            else:
                response.noop.SetInParent()
            return response, state
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
        response = self._host(entry).call(invocation)
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
        restored = _state_of(snapshot)
        response = protocol_pb2.ActorInvocationResponse(actor_name=entry.name, actor_system=entry.system)
        response.updated_context.SetInParent()
        if restored.HasField("state"):
            response.value.CopyFrom(restored.state)
        else:
            response.noop.SetInParent()
        return response, restored

    def _host(self, entry: Entry) -> Host:
        if not entry.host:
            if self.python_host is None or entry.type_name not in self.python_host.actors:
                raise ActorNotFound(entry.system, entry.name)
            return self.python_host
        host = self._remote.get(entry.host)
        if host is None:
            host = self._remote[entry.host] = RemoteHost(entry.host, timeout_s=self.host_timeout_s)
        return host

    def _checkpoint(self, entry: Entry, state: actor_pb2.ActorState, revision: int) -> None:
        """Persist now (``checkpoint=True``); the write-behind snapshotter retries if this fails."""
        self.statestore.save(_snapshot_of(entry.system, entry.name, entry.parent, state, revision))


class _PoolSlot:
    """Bounds concurrent invocations of a pooled actor with a Redis counter (``max_pool_size``; 0 = unbounded)."""

    def __init__(self, activations: Activations, entry: Entry, limit: int, wait_ms: int) -> None:
        self._redis = activations.client
        self._key = f"sp:pl:{entry.system}:{entry.name}"
        self._limit, self._wait_ms, self._name = limit, wait_ms, entry.name

    def __enter__(self) -> None:
        if self._limit <= 0:
            return
        deadline = time.monotonic() + self._wait_ms / 1000.0
        while True:
            if int(self._redis.incr(self._key)) <= self._limit:
                self._redis.pexpire(self._key, max(self._wait_ms * 2, 60_000))
                return
            self._redis.decr(self._key)
            if time.monotonic() > deadline:
                raise ActorBusy(f"pooled actor {self._name} has all {self._limit} slots busy")
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self._limit > 0:
            self._redis.decr(self._key)


def _state_of(snapshot: Snapshot) -> actor_pb2.ActorState:
    state = actor_pb2.ActorState(tags=dict(snapshot.tags))
    if snapshot.type_url:
        state.state.CopyFrom(any_pb2.Any(type_url=snapshot.type_url, value=snapshot.data))
    return state


def _snapshot_of(system: str, name: str, parent: str, state: actor_pb2.ActorState, revision: int) -> Snapshot:
    """The SQL snapshot of an ``ActorState`` at ``revision``."""
    return Snapshot(
        system=system,
        actor=name,
        revision=revision,
        type_url=state.state.type_url if state.HasField("state") else "",
        data=state.state.value if state.HasField("state") else b"",
        tags=dict(state.tags),
        parent=parent,
    )
