"""Celery task events, published in batches: the worker's (received, started, succeeded) and the callers' task-sent.

Flower shows every invocation from these events (docs/monitoring.md). Celery publishes nearly one message per
event: the worker flushes its buffer after every turn of its event loop, a caller publishes each task-sent event
as it sends the task. Under load that was a third of a worker main process's CPU and a quarter of a caller's per
invocation. Here both publish what accumulated at most ``flush_s`` after the first event (at once when 24 are
buffered), as Celery's own ``task-multi`` messages, which Flower and every Celery event receiver read.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from celery import Celery
from celery.events.dispatcher import EventDispatcher
from celery.worker.consumer import Consumer as _CeleryConsumer

log = logging.getLogger(__name__)

_Consumer: Any = _CeleryConsumer  # celery-types does not declare the consumer's event-loop members


class BatchedEventsConsumer(_Consumer):  # type: ignore[misc]
    """Celery's worker consumer, publishing buffered task events on a timer instead of after every loop turn."""

    flush_s = 0.1
    """Set from ``SPAWN_EVENT_FLUSH_MS`` by the worker before it starts; 0 keeps Celery's behaviour."""
    _flush_at = 0.0  # when the scheduled flush is due; 0 when none is

    def on_send_event_buffered(self) -> None:
        """Schedule one flush for everything buffered until then."""
        if not self.hub or self.flush_s <= 0:
            super().on_send_event_buffered()
            return
        now = time.monotonic()
        # one flush at a time; a timer lost with the event loop (a broker reconnection) is replaced after 1 s
        if not self._flush_at or now > self._flush_at + 1.0:
            self._flush_at = now + self.flush_s
            self.hub.call_later(self.flush_s, self._flush_buffered)

    def _flush_buffered(self) -> None:
        self._flush_at = 0.0
        self._flush_events()

    def shutdown(self) -> None:
        """Publish what is buffered, then shut down as Celery does."""
        try:
            self._flush_events()
        except Exception:  # monitoring only: never hold up a shutdown
            log.debug("flushing task events at shutdown failed", exc_info=True)
        super().shutdown()


class SentEvents:
    """Stands in for Celery's event dispatcher when a caller sends a task: task-sent events go to a buffer.

    Pass it as ``event_dispatcher`` to ``send_task``. Each process (it notices forks) gets its own dispatcher,
    connection and daemon thread that publishes the buffer every ``flush_s``; what is left is published at exit.
    Thread-safe: Celery's dispatcher publishes under its own lock.
    """

    def __init__(self, app: Celery, flush_s: float) -> None:
        """Buffer events of ``app``'s tasks, publishing at most ``flush_s`` after they were sent."""
        self._app = app
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._pid = 0
        self._dispatcher: EventDispatcher | None = None
        self._stop = threading.Event()

    def publish(self, type: str, fields: dict[str, Any], producer: Any = None, **_: Any) -> None:  # noqa: A002
        """Buffer one event (Celery's ``EventDispatcher.publish`` signature; the producer is not used)."""
        self._current().send(type, **fields)

    def flush(self) -> None:
        """Publish what is buffered now."""
        dispatcher = self._dispatcher
        if dispatcher is not None and self._pid == os.getpid():
            dispatcher.flush()

    def close(self) -> None:
        """Publish what is buffered and stop the thread."""
        self._stop.set()
        self.flush()

    def _current(self) -> EventDispatcher:
        dispatcher = self._dispatcher
        if dispatcher is not None and self._pid == os.getpid():
            return dispatcher
        with self._lock:
            if self._dispatcher is None or self._pid != os.getpid():
                self._stop = threading.Event()
                self._dispatcher = self._app.events.Dispatcher(
                    self._app.connection_for_write(), enabled=True, buffer_group=["task"]
                )
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="spawn-sent-events", daemon=True).start()
                atexit.register(self.close)
            return self._dispatcher

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self._flush_s):
            try:
                self.flush()
            except Exception:  # monitoring only; the dispatcher keeps events it could not publish
                log.debug("publishing task-sent events failed", exc_info=True)
