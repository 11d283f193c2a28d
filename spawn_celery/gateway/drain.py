"""Graceful shutdown of the gateway.

On SIGTERM readiness turns 503 at once, new work is refused with 503, in-flight requests are answered, then the
process exits.

:class:`Drain` counts in-flight requests (a WSGI wrapper) and, once draining, waits for ``drain_delay_ms`` (so
load balancers see readiness fail) and for the in-flight count to reach zero (at most ``drain_timeout_ms``) before
calling the server's own stop. :func:`install_gunicorn` hooks it into a gunicorn worker (``post_worker_init``);
the development server calls :meth:`Drain.begin` from its SIGTERM handler.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

from spawn_celery.errors import Draining

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Drain:
    """The drain state of one gateway process."""

    def __init__(self, *, delay_ms: int, timeout_ms: int) -> None:
        """Wait at least ``delay_ms`` and at most ``timeout_ms`` once draining before stopping."""
        self.delay_s = delay_ms / 1000.0
        self.timeout_s = timeout_ms / 1000.0
        self._draining = threading.Event()
        self._idle = threading.Condition()
        self._inflight = 0

    @property
    def draining(self) -> bool:
        """Whether SIGTERM was received."""
        return self._draining.is_set()

    @property
    def inflight(self) -> int:
        """Requests being served right now."""
        return self._inflight

    def check(self) -> None:
        """Refuse new work while draining.

        Raises:
            Draining: the process is shutting down.
        """
        if self._draining.is_set():
            raise Draining("the gateway is shutting down and takes no new requests; retry on another instance")

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Wrap a WSGI app so that requests are counted until their response is closed."""

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self._enter()
            try:
                result = app(environ, start_response)
            except BaseException:
                self._leave()
                raise
            return ClosingIterator(result, [self._leave])

        return counted

    def begin(self, then: Callable[[], None]) -> None:
        """Start draining; in a background thread, wait for the delay and the in-flight requests, then ``then()``."""
        if self._draining.is_set():
            return
        self._draining.set()
        log.info("draining: readiness is 503; %d requests in flight", self._inflight)
        threading.Thread(target=self._finish, args=(then,), name="spawn-drain", daemon=True).start()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no request is in flight (or ``timeout_s`` passes); return whether it is idle."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _finish(self, then: Callable[[], None]) -> None:
        started = time.monotonic()
        time.sleep(self.delay_s)
        idle = self.wait_idle(max(self.timeout_s - (time.monotonic() - started), 0.0))
        if not idle:
            log.warning("drain timeout: stopping with %d requests in flight", self._inflight)
        log.info("drained in %.2f s; stopping", time.monotonic() - started)
        then()

    def _enter(self) -> None:
        with self._idle:
            self._inflight += 1

    def _leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight <= 0:
                self._idle.notify_all()


def install_gunicorn(worker: Any) -> None:
    """Make a gunicorn worker drain on SIGTERM (call from ``post_worker_init``).

    The worker's own SIGTERM handler (stop accepting, finish, exit) runs only once the drain is done, so the
    gateway keeps answering readiness (503) and refusing new invocations (503) meanwhile. gunicorn's
    ``graceful_timeout`` must exceed ``drain_timeout_ms``.
    """
    gateway = worker.wsgi.extensions["spawn_celery"]
    stop = worker.handle_exit

    def on_sigterm(signum: int, frame: Any) -> None:
        gateway.drain.begin(lambda: stop(signum, frame))

    signal.signal(signal.SIGTERM, on_sigterm)
