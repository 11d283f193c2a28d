"""Leases: keep the activation locks this process holds alive while their actions run.

A lock's lease (``SPAWN_LOCK_LEASE_MS``) bounds how long a dead or frozen holder blocks its actor. An action may
legitimately run longer than that; without renewal it would lose the lock mid-action, be fenced off at commit and
run again, forever. One daemon thread per worker process renews the lease of every lock held for more than a
third of a lease, every third of a lease, for at most ``max_hold_ms`` per action (a hung action then loses the
lock and is fenced off, as a dead holder would). A frozen process (SIGSTOP, a long GC pause) freezes this thread
too, so its lease runs out and fencing works as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from spawn_celery.activation import Activations

log = logging.getLogger(__name__)


class Leases:
    """The locks held by this process, renewed in the background while held."""

    def __init__(self, activations: Activations, *, max_hold_ms: int) -> None:
        """Renew through ``activations``; stop renewing one action's lock after ``max_hold_ms``."""
        self._activations = activations
        self._period_s = max(activations.lease_ms, 30) / 3000.0
        self._max_hold_s = max_hold_ms / 1000.0
        self._held: dict[tuple[str, str], tuple[int, float]] = {}
        self._guard = threading.Lock()
        self._owner = 0  # the pid whose thread runs: a forked child starts its own

    def hold(self, system: str, name: str, token: int) -> None:
        """Start (or restart, for the next action of a turn) renewing the lock ``token`` of ``system/name``."""
        with self._guard:
            self._held[(system, name)] = (token, time.monotonic())
            if self._owner != os.getpid():
                self._owner = os.getpid()
                threading.Thread(target=self._run, name="spawn-leases", daemon=True).start()

    def release(self, system: str, name: str) -> None:
        """Stop renewing the lock of ``system/name`` (committed, aborted or lost)."""
        with self._guard:
            self._held.pop((system, name), None)

    def renew_due(self, now: float | None = None) -> int:
        """Renew every lock held for a third of a lease or more; return how many were renewed."""
        now = time.monotonic() if now is None else now
        with self._guard:
            due = [(key, token, since) for key, (token, since) in self._held.items() if now - since >= self._period_s]
        renewed = 0
        for (system, name), token, since in due:
            if now - since > self._max_hold_s:
                log.warning("%s/%s: action running for %.0f s; no longer renewing its lock", system, name, now - since)
                self.release(system, name)
            elif self._activations.renew(system, name, token):
                renewed += 1
            else:
                self.release(system, name)  # lost (expired while this process was frozen): fencing takes over
        return renewed

    def _run(self) -> None:
        while True:
            time.sleep(self._period_s)
            if self._owner != os.getpid():
                return
            try:
                self.renew_due()
            except Exception:  # Redis down: the lease runs out and fencing protects the state; keep trying
                log.exception("renewing activation leases failed")
