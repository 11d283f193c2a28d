"""The runtime: how a worker runs one invocation, exactly once, under the actor's lock.

One turn: ``begin`` (dedupe + lock + hot state, one Lua call) → load the latest snapshot from SQL if the actor is
not active → run ``init`` once on activation → run the action (in-process or on a remote host) → validate the
workflow → ``commit`` (fenced state write + dedupe record + unlock, one Lua call) → checkpoint to SQL if asked →
answer the caller and send the workflow. A failure before commit changes nothing.
"""

from __future__ import annotations

import logging
import time

from spawn_celery import keys
from spawn_celery.activation import Activations, Commit
from spawn_celery.actor import INIT_ACTIONS, KEEP_TIMERS_TAG, RESERVED_GET_ACTIONS, Kind
from spawn_celery.errors import ActorBusy, ActorError, ActorNotFound, SpawnError, StateConflict, StateStoreError
from spawn_celery.hosts.base import Host
from spawn_celery.hosts.python import PythonHost
from spawn_celery.hosts.remote import RemoteHost
from spawn_celery.message import Message, Reply
from spawn_celery.metrics import Observer
from spawn_celery.pool import PoolSlot
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry
from spawn_celery.routing import RESTORE_ACTION, Router
from spawn_celery.scheduler import TIMER_DEDUPE_TTL_S, Scheduler, is_timer_fire
from spawn_celery.snapshotter import snapshot_of, state_of
from spawn_celery.statestores.base import StateStore

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
        lock_lease_ms: int = 30_000,
        observer: Observer | None = None,
    ) -> None:
        """Compose the parts a worker needs."""
        self.router = router
        self.activations = activations
        self.statestore = statestore
        self.scheduler = scheduler
        self.python_host = python_host
        self.lock_wait_ms = lock_wait_ms
        self.host_timeout_s = host_timeout_s
        self.lock_lease_ms = lock_lease_ms
        self.observer = observer or Observer()
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
        keep = entry.definition.metadata.tags.get(KEEP_TIMERS_TAG) == "true"
        fire = is_timer_fire(message.id, system, name, message.action)
        idle_fire = fire and not keep  # a fire is not activity, unless timers keep the actor alive
        if idle_fire:  # timers stop once the actor is deactivated, or idle and about to be
            idle_at = self.activations.client.zscore(keys.ACTIVE, keys.member(system, name))
            if idle_at is None or idle_at <= time.time() * 1000:
                return Reply()
        timers = entry.timers  # a fire waits one period at most for a busy actor: fires never pile up
        deadline = time.monotonic() + min(self.lock_wait_ms, timers.get(message.action, 0) if fire else 1 << 40) / 1e3
        waited = 0.0
        while True:
            begun = self.activations.begin(system, name, message.id)
            if begun.done is not None:
                return self._replay(message, Reply.from_json(begun.done))
            if not begun.busy_ms:
                break
            if time.monotonic() > deadline:
                if fire:
                    return Reply()
                self.observer.lock_wait(system, entry.type_name, time.monotonic() - (waited or deadline))
                raise ActorBusy(f"actor {name} stayed busy for {self.lock_wait_ms} ms")
            waited = waited or time.monotonic()
            self.activations.wait(system, name, min(begun.busy_ms, 250))
        if waited:
            self.observer.lock_wait(system, entry.type_name, time.monotonic() - waited)
        token = begun.token
        if begun.state is None and idle_fire:  # deactivated since the check above
            self.activations.abort(system, name, message.id, token)
            return Reply()
        try:
            activated = begun.state is None
            pending = 0
            if activated:
                state, revision, restored, pending = self._load(entry)
            else:
                state, revision, restored = actor_pb2.ActorState.FromString(begun.state or b""), begun.revision, False
            restored = restored or message.request.action_name == RESTORE_ACTION
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
        # The plain sync case (no workflow, no checkpoint): the caller's reply is written by the commit round trip.
        folded = bool(message.reply_to) and not response.HasField("workflow") and not response.checkpoint
        commit = Commit(
            state=after if stateful else b"",
            changed=changed,
            base_revision=revision,
            reply=reply.to_json().encode(),
            deactivate_ms=int(settings.deactivation_strategy.timeout.timeout or 30_000),
            snapshot_ms=int(settings.snapshot_strategy.timeout.timeout or 2_000),
            parent=entry.parent,
            timers="" if keep else "\n".join(keys.timer_member(system, name, action) for action in timers),
            stateful=stateful,
            touch=not idle_fire,
            dedupe_ttl_s=TIMER_DEDUPE_TTL_S if fire else 0,
            answer=self.router.transport.reply_record(message.reply_to, reply) if folded else None,
        )
        committed = self.activations.commit(system, name, message.id, token, now, commit)
        if committed is None:
            raise StateConflict(f"lost the lock of {name} before commit")
        if committed[1]:
            self.observer.activated(system, entry.type_name)
        if committed[1] and timers:
            self.scheduler.add_timers(system, name, timers, now)
        if pending:
            self.router.registry.consume_revision(system, name, entry.parent, pending)
        failure = None
        if response.checkpoint and stateful and (changed or state.HasField("state")):
            try:
                self.statestore.save(snapshot_of(system, name, entry.parent, state, new_revision))
            except StateStoreError as exc:  # applied in Redis (written behind later), but the caller asked for SQL
                log.error("checkpoint of %s/%s at revision %d failed: %s", system, name, new_revision, exc)
                failure = Reply.failure(StateStoreError(f"applied as revision {new_revision}; checkpoint: {exc}"))
        if not folded:
            self.router.dispatch(message, response, reply, failure=failure)
        return reply

    def _pooled(self, entry: Entry, message: Message) -> Reply:
        recorded = self.activations.done(entry.system, entry.name, message.id)
        if recorded is not None:
            return self._replay(message, Reply.from_json(recorded))
        limit = entry.definition.settings.max_pool_size
        with PoolSlot(self.activations.client, entry, limit, self.lock_wait_ms, self.lock_lease_ms, message.id):
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

    def _load(self, entry: Entry) -> tuple[actor_pb2.ActorState, int, bool, int]:
        """Activation: ``(state, latest stored revision, restored?, pending spawn-time revision to clear or 0)``."""
        initial = actor_pb2.ActorState(tags=dict(entry.definition.state.tags))
        if not entry.definition.settings.stateful:
            return initial, 0, False, 0
        latest = self.statestore.load(entry.system, entry.name)
        pending = self.router.registry.pending_revision(entry.system, entry.name) if entry.parent else 0
        if latest is None:
            return initial, 0, False, pending
        snapshot, restored = latest, False
        if pending and pending != latest.revision:
            old = self.statestore.load_revision(entry.system, entry.name, pending)
            if old is None:
                log.warning("%s/%s has no stored revision %d; activating the latest (%d)",
                            entry.system, entry.name, pending, latest.revision)
            else:
                snapshot, restored = old, True
        return state_of(snapshot), latest.revision, restored, pending

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
        restored = state_of(snapshot)
        return _answer_with(entry, restored), restored

    def _host(self, entry: Entry) -> Host:
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
