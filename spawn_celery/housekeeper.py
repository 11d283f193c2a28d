"""The housekeeping loop: fire timers and scheduled invocations, write snapshots, deactivate idle actors.

Every worker runs one in its main process (a thread); ``spawn-celery housekeeper`` runs one alone. Any number can
run at once: each step claims its work atomically in Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from typing import cast

import redis

from spawn_celery import keys
from spawn_celery.activation import Activations
from spawn_celery.config import Settings
from spawn_celery.errors import SpawnError
from spawn_celery.message import Message
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.routing import Router
from spawn_celery.scheduler import Scheduler, timer_invocation_id
from spawn_celery.snapshotter import Snapshotter

log = logging.getLogger(__name__)


class Housekeeper:
    """One housekeeping loop."""

    def __init__(
        self,
        *,
        router: Router,
        scheduler: Scheduler,
        snapshotter: Snapshotter,
        tick_ms: int,
        activations: Activations,
    ) -> None:
        """Compose the parts; ``tick_ms`` is the polling period; ``activations`` serves mailbox recovery."""
        self.activations = activations
        self.router = router
        self.scheduler = scheduler
        self.snapshotter = snapshotter
        self.tick_ms = tick_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._quiet_until: dict[str, float] = {}

    def tick(self, now_ms: int | None = None) -> None:
        """Do one round of every duty; a failing duty is logged and does not stop the others."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        duties = (
            self.recover_mailboxes,
            self.fire_scheduled,
            self.fire_timers,
            self.snapshotter.flush_due,
            self.snapshotter.deactivate_idle,
        )
        for duty in duties:
            name = getattr(duty, "__name__", str(duty))
            try:
                duty(now)
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # retried next tick: one line per 5 s
                if time.monotonic() >= self._quiet_until.get(name, 0.0):
                    self._quiet_until[name] = time.monotonic() + 5.0
                    log.warning("housekeeping step %s failed, Redis unreachable (retrying every tick): %s", name, exc)
            except Exception:  # keep the loop alive; the log says what failed
                log.exception("housekeeping step %s failed", name)

    def recover_mailboxes(self, now_ms: int) -> int:
        """Re-send invocations queued in the mailbox of an actor whose lock holder died (via the scheduler)."""
        moved = self.activations.recover(now_ms, grace_ms=1000)
        if moved:
            log.warning("re-sent %d invocations from mailboxes whose lock holder stopped", moved)
        return moved

    def fire_scheduled(self, now_ms: int) -> int:
        """Send scheduled invocations that are due."""
        sent = 0
        for queue, message in self.scheduler.claim_scheduled(now_ms):
            self.router.transport.send(message, queue)
            self.scheduler.sent(message.id)
            sent += 1
        return sent

    def fire_timers(self, now_ms: int) -> int:
        """Send due timer actions as async invocations from the actor to itself."""
        sent = 0
        for due in self.scheduler.claim_timers(now_ms):
            system, name, action = due.member.split(keys.SEP, 2)
            me = actor_pb2.ActorId(name=name, system=system)
            request = protocol_pb2.InvocationRequest(
                system=actor_pb2.ActorSystem(name=system),
                actor=actor_pb2.Actor(id=me),
                action_name=action,
                caller=me,
                noop=protocol_pb2.Noop(),
            )
            setattr(request, "async", True)
            try:
                self.router.submit(Message(timer_invocation_id(system, name, action, due.due_ms), request))
                sent += 1
            except SpawnError as exc:
                log.warning("timer %s.%s of %s not sent: %s", name, action, system, exc)
        return sent

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="spawn-housekeeper", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.tick_ms / 1000.0)

    def stop(self, *, flush: bool = True) -> None:
        """Stop the loop and, with ``flush``, write every dirty actor to SQL."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if flush:
            try:
                count = self.snapshotter.flush_all(int(time.time() * 1000))
                log.info("flushed %d dirty actors on shutdown", count)
            except Exception:
                log.exception("flushing dirty state on shutdown failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery housekeeper``."""
    parser.add_argument("--once", action="store_true", help="run one round and exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``spawn-celery housekeeper``: run the loop in the foreground until SIGTERM/SIGINT."""
    import signal

    from spawn_celery.services import Services

    services = Services.create(settings)
    keeper = cast(Housekeeper, services.housekeeper())
    if args.once:
        keeper.tick()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: keeper._stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        keeper.run()
    keeper.stop(flush=True)
    return 0
