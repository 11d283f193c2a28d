"""Redis commands per sync invocation, counted with MONITOR: a load-independent measure of round trips.

Counts every command the clients send per database (ours: db 6, raw: db 7) during N sequential sync calls, minus
the idle rate of the same database (worker polling, the housekeeping loop). Commands run inside Lua scripts are
counted apart: they cost no round trip.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis


class Monitor:
    """Counts commands per (db, kind) while running; kind is ``lua`` or the command name."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self.counts: Counter[tuple[int, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._client.monitor() as mon:
            self._ready.set()
            while not self._stop.is_set():
                cmd = mon.next_command()
                kind = "lua" if cmd.get("client_type") == "lua" else str(cmd["command"]).split(" ", 1)[0].upper()
                self.counts[(int(cmd["db"]), kind)] += 1

    def __enter__(self) -> Monitor:
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(5)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.ping()
        self._thread.join(5)

    def snapshot(self) -> Counter[tuple[int, str]]:
        return Counter(self.counts)


def per_call(before: Counter[tuple[int, str]], after: Counter[tuple[int, str]], db: int, calls: int,
             idle: dict[str, float], seconds: float) -> dict[str, float]:
    """Commands per call on ``db`` by kind, minus the idle rate over ``seconds``."""
    out: dict[str, float] = {}
    for (d, kind), n in (after - before).items():
        if d == db:
            out[kind] = max((n - idle.get(kind, 0.0) * seconds) / calls, 0.0)
    return {k: round(v, 2) for k, v in sorted(out.items()) if v >= 0.05}


def count(url: str, dbs: dict[str, int], calls: dict[str, Callable[[], None]], n: int) -> dict[str, Any]:
    """For each side: commands per sync call on its db (client + worker), Lua-internal ones apart."""
    result: dict[str, Any] = {}
    with Monitor(url) as mon:
        idle_s = 2.0
        start = mon.snapshot()
        time.sleep(idle_s)
        idle_counts = mon.snapshot() - start
        for side, call in calls.items():
            db = dbs[side]
            idle = {kind: c / idle_s for (d, kind), c in idle_counts.items() if d == db}
            before = mon.snapshot()
            t0 = time.monotonic()
            for _ in range(n):
                call()
            time.sleep(0.3)  # let acks and events land
            seconds = time.monotonic() - t0
            kinds = per_call(before, mon.snapshot(), db, n, idle, seconds)
            lua = kinds.pop("lua", 0.0)
            total = round(sum(kinds.values()), 1)
            result[side] = {"commands_per_call": total, "lua_per_call": lua, "by_command": kinds}
    return result
