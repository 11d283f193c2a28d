"""The runtime: how a worker runs one invocation, exactly once, under the actor's lock.

One turn: ``begin`` (dedupe + lock + hot state, one Lua call) → load the latest snapshot from SQL if the actor is
not active → run ``init`` once on activation → run the action (in-process or on a remote host) → validate the
workflow → ``commit`` (fenced state write + dedupe record + unlock, one Lua call) → checkpoint to SQL if asked →
answer the caller and send the workflow. A failure before commit changes nothing.

A call that finds the actor locked goes into its mailbox (inside ``begin``); the holder's ``commit`` hands it the
next mailbox item under the same lock, so one turn runs every call queued meanwhile, each with its own commit,
reply and revision (see docs/semantics.md, "A busy actor: the mailbox").
"""

from __future__ import annotations

import contextlib
import logging
import time

import redis

from spawn_celery import keys
from spawn_celery.activation import Activations, Begun, Commit, Committed
from spawn_celery.actor import KEEP_TIMERS_TAG, Kind
from spawn_celery.errors import ActorBusy, ActorError, SpawnError, StateConflict, StateStoreError
from spawn_celery.executor import Executor
from spawn_celery.hosts.python import PythonHost
from spawn_celery.lease import Leases
from spawn_celery.message import Message, Reply
from spawn_celery.metrics import Observer
from spawn_celery.pool import PoolSlot
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry, pending_of
from spawn_celery.routing import RESTORE_ACTION, Router
from spawn_celery.scheduler import TIMER_DEDUPE_TTL_S, Scheduler, invocation_doc, invocation_of, is_timer_fire
from spawn_celery.snapshotter import snapshot_of, state_of
from spawn_celery.statestores.base import StateStore
from spawn_celery.turn import Turn

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
        batch_turns: bool = True,
        max_action_ms: int = 300_000,
        max_turn_ms: int = 1_000,
    ) -> None:
        """Compose the parts a worker needs; ``batch_turns`` runs a busy actor's queued calls in the holder's turn."""
        self.router = router
        self.activations = activations
        self.statestore = statestore
        self.scheduler = scheduler
        self.leases = Leases(activations, max_hold_ms=max_action_ms)
        self.executor = Executor(statestore=statestore, python_host=python_host, host_timeout_s=host_timeout_s)
        self.lock_wait_ms = lock_wait_ms
        self.lock_lease_ms = lock_lease_ms
        self.batch_turns = batch_turns
        self.max_turn_ms = max_turn_ms
        self.observer = observer or Observer()

    def handle(self, message: Message) -> Reply:
        """Run ``message`` and deliver its reply; errors become error replies, never lost messages."""
        try:
            entry = self.router.resolve(message.request, sent=True)
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
        # a busy actor's invocations go to its mailbox and run in the lock holder's turn (no process waits)
        doc = "" if fire or not self.batch_turns else invocation_doc(entry.queue, message)
        waited = 0.0
        while True:
            begun = self.activations.begin(
                system, name, message.id, doc, int(time.time() * 1000), instance=bool(entry.parent)
            )
            if begun.done is not None:
                return self._replay(message, Reply.from_json(begun.done))
            if begun.queued:
                self.observer.queued(system, entry.type_name)
                return Reply(status="QUEUED")
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
        self.leases.hold(system, name, token)
        try:
            return self._held(entry, message, begun, Turn(token=token, touch=not idle_fire, fire=fire, keep=keep))
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis failed mid-turn (the task retries the call): unlock now if the link is back, rather than leave
            # the actor locked for a whole lease. Fenced, and recording nothing: a commit that did run left its
            # record, so the retry is answered from it; items taken from the mailbox are re-sent.
            with contextlib.suppress(redis.RedisError):
                self.activations.abort(system, name, message.id, token)
            raise
        finally:
            self.leases.release(system, name)

    def _held(self, entry: Entry, message: Message, begun: Begun, turn: Turn) -> Reply:
        """Run ``message`` under the lock ``begun`` took, then every invocation queued in the mailbox meanwhile."""
        token = turn.token
        try:
            turn.activated = begun.state is None
            if turn.activated:
                state, turn.revision, turn.restored, turn.pending = self._load(entry, pending_of(begun.instance))
            else:
                state, turn.revision = actor_pb2.ActorState.FromString(begun.state or b""), begun.revision
            turn.before = state.SerializeToString()
            if turn.activated:
                state = self.executor.run_init(entry, state)
        except BaseException as exc:
            self._abort(entry, message, token, exc)
            raise
        if begun.next_item is not None:  # calls queued before this one run first; it waits its turn in the mailbox
            self.observer.queued(entry.system, entry.type_name)
            turn.after = turn.before
            self._drain(entry, turn, Committed(turn.revision, False, begun.next_item, begun.next_record))
            return Reply(status="QUEUED")
        reply, committed = self._turn(entry, message, state, turn)
        self._drain(entry, turn, committed)
        return reply

    def _abort(self, entry: Entry, message: Message, token: int, exc: BaseException) -> None:  # noqa: D401
        """Unlock after a failure before any action ran; deterministic failures are recorded for dedupe."""
        record = "" if isinstance(exc, SpawnError) and exc.retryable else Reply.failure(exc).to_json()
        self.activations.abort(entry.system, entry.name, message.id, token, record.encode())

    def _turn(
        self, entry: Entry, message: Message, state: actor_pb2.ActorState, turn: Turn
    ) -> tuple[Reply, Committed]:
        """Run one invocation under the held lock and commit it; return its reply and the commit's outcome."""
        system, name = entry.system, entry.name
        self.leases.hold(system, name, turn.token)  # each action gets its own renewal budget
        if turn.recorded is not None:  # a mailbox item applied before (its holder died): answer from the record
            self._replay(message, Reply.from_json(turn.recorded))
            return Reply.from_json(turn.recorded), self._commit(entry, message, state, turn, Reply(), None, b"")
        restored = turn.restored or message.request.action_name == RESTORE_ACTION
        try:
            response, state = self.executor.run(entry, message, state, turn.revision)
            self.router.check(message, response)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            failure = Reply.failure(exc if isinstance(exc, SpawnError) else ActorError(str(exc), type(exc).__name__))
            retryable = isinstance(exc, SpawnError) and exc.retryable
            if not turn.item and (retryable or turn.activated):  # as if it never started (init runs again)
                self._abort(entry, message, turn.token, exc)
                if isinstance(exc, SpawnError):
                    raise
                raise ActorError(str(exc) or type(exc).__name__, type(exc).__name__) from exc
            record = b"" if retryable else failure.to_json().encode()
            committed = self._commit(
                entry, message, actor_pb2.ActorState.FromString(turn.before), turn, failure, None, record
            )
            if turn.item:  # a queued invocation: its caller is answered here, the batch goes on
                self.router.answer(message, failure)
                return failure, committed
            self._drain(entry, turn, committed)  # the mailbox runs before this failure is raised
            if isinstance(exc, SpawnError):
                raise
            raise ActorError(str(exc) or type(exc).__name__, type(exc).__name__) from exc
        stateful = entry.definition.settings.stateful
        after = state.SerializeToString()
        changed = stateful and (after != turn.before or restored)
        new_revision = turn.revision + 1 if changed else turn.revision
        reply = Reply(
            payload=response.value.SerializeToString() if response.HasField("value") else None,
            revision=new_revision,
            workflow=response.SerializeToString() if response.HasField("workflow") else None,
        )
        # The plain sync case (no workflow, no checkpoint): the caller's reply is written by the commit round trip.
        folded = (
            bool(message.reply_to)
            and not response.HasField("workflow")
            and not response.checkpoint
            and self.router.transport.folds_replies
        )
        turn.changed, turn.after = changed, after
        committed = self._commit(entry, message, state, turn, reply, folded, reply.to_json().encode())
        late_failure = None
        if response.checkpoint and stateful and (changed or state.HasField("state")):
            try:
                self.statestore.save(snapshot_of(system, name, entry.parent, state, new_revision))
            except StateStoreError as exc:  # applied in Redis (written behind later), but the caller asked for SQL
                log.error("checkpoint of %s/%s at revision %d failed: %s", system, name, new_revision, exc)
                late_failure = Reply.failure(StateStoreError(f"applied as revision {new_revision}; checkpoint: {exc}"))
        if not folded:
            self.router.dispatch(message, response, reply, failure=late_failure)
        return reply, committed

    def _commit(
        self,
        entry: Entry,
        message: Message,
        state: actor_pb2.ActorState,
        turn: Turn,
        reply: Reply,
        folded: bool | None,
        record: bytes,
    ) -> Committed:
        """Commit one invocation of the turn (fenced); the outcome names the next mailbox item to run, if any."""
        system, name = entry.system, entry.name
        settings = entry.definition.settings
        stateful = settings.stateful
        now = int(time.time() * 1000)
        after = turn.after if turn.after is not None else turn.before
        commit = Commit(
            state=after if stateful else b"",
            changed=turn.changed,
            base_revision=turn.revision,
            reply=record,
            deactivate_ms=int(settings.deactivation_strategy.timeout.timeout or 30_000),
            snapshot_ms=int(settings.snapshot_strategy.timeout.timeout or 2_000),
            parent=entry.parent,
            timers="" if turn.keep else "\n".join(keys.timer_member(system, name, a) for a in entry.timers),
            stateful=stateful,
            touch=turn.touch,
            dedupe_ttl_s=TIMER_DEDUPE_TTL_S if turn.fire else 0,
            item=turn.item,
            # the first queued call is always taken; then for SPAWN_MAX_TURN_MS at most, then the lock goes
            batch=self.batch_turns and (not turn.item or time.monotonic() < turn.until),
            answer=self.router.transport.reply_record(message.reply_to, reply) if folded else None,
        )
        committed = self.activations.commit(system, name, message.id, turn.token, now, commit)
        if committed is None and record and self.activations.done(system, name, message.id) == record:
            # Our commit ran and unlocked, but its reply was lost on the way back (a broken connection; sent again,
            # it found the lock gone). The record it wrote is ours: it counts as committed, so the caller (a mailbox
            # item's too, whose document the commit removed) is answered below, and nothing runs twice.
            log.warning("commit of %s on %s applied; its reply from Redis was lost", message.id, name)
            revision = turn.revision + 1 if turn.changed else turn.revision
            committed = Committed(revision=revision, activated=turn.activated)
        if committed is None:
            raise StateConflict(f"lost the lock of {name} before commit")
        turn.revision, turn.after = committed.revision, after
        if committed.activated:
            self.observer.activated(system, entry.type_name)
            if entry.timers:
                self.scheduler.add_timers(system, name, entry.timers, now)
        if turn.pending:
            self.router.registry.consume_revision(system, name, entry.parent, turn.pending)
            turn.pending = 0
        return committed

    def _drain(self, entry: Entry, turn: Turn, committed: Committed) -> None:
        """Run the invocations queued in the mailbox while ``turn`` held the lock, each committed on its own."""
        until = time.monotonic() + self.max_turn_ms / 1000.0
        while committed.next_item is not None:
            item = Turn(
                token=turn.token,
                revision=turn.revision,
                before=turn.after or b"",
                item=committed.next_item,
                recorded=committed.next_record,
                until=until,
            )
            state = actor_pb2.ActorState.FromString(item.before)
            _, committed = self._turn(entry, invocation_of(item.item)[1], state, item)
            turn.revision, turn.after = item.revision, item.after

    def _pooled(self, entry: Entry, message: Message) -> Reply:
        recorded = self.activations.done(entry.system, entry.name, message.id)
        if recorded is not None:
            return self._replay(message, Reply.from_json(recorded))
        limit = entry.definition.settings.max_pool_size
        with PoolSlot(self.activations.client, entry, limit, self.lock_wait_ms, self.lock_lease_ms, message.id):
            response, _ = self.executor.run(entry, message, actor_pb2.ActorState(), 0)
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

    def _load(self, entry: Entry, pending: int) -> tuple[actor_pb2.ActorState, int, bool, int]:
        """Activation: ``(state, latest stored revision, restored?, pending spawn-time revision to clear or 0)``.

        ``pending`` is the spawn-time restore revision that ``begin`` read from the instance's record.
        """
        initial = actor_pb2.ActorState(tags=dict(entry.definition.state.tags))
        if not entry.definition.settings.stateful:
            return initial, 0, False, 0
        latest = self.statestore.load(entry.system, entry.name)
        if latest is None:
            return initial, 0, False, pending
        snapshot, restored = latest, False
        if pending and pending != latest.revision:
            old = self.statestore.load_revision(entry.system, entry.name, pending)
            if old is None:
                log.warning(
                    "%s/%s has no stored revision %d; activating the latest (%d)",
                    entry.system,
                    entry.name,
                    pending,
                    latest.revision,
                )
            else:
                snapshot, restored = old, True
        return state_of(snapshot), latest.revision, restored, pending
