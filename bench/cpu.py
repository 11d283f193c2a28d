"""CPU per invocation, by process, ours against raw Celery: ``python -m bench.cpu hot|distinct [N] [ROUNDS]``.

Throughput on this 2-CPU machine is bounded by CPU, so where the CPU goes says what to cut. Each round sends N
invocations fire-and-forget (raw Celery first, then ours, as ``bench.run`` does), waits until the queue drains and
divides the CPU time each process used meanwhile (``/proc/<pid>/stat``) by N: the worker's main process, its pool
processes, the Redis server and this sending process. ``hot``: one actor; ``distinct``: N new actors per round
(each a first activation; snapshots and, after 8 s, evictions happen during the round when it lasts that long).
``--no-events`` starts our worker and client with Celery task events off (``SPAWN_TASK_EVENTS=0``,
``SPAWN_SENT_EVENTS=0``), as raw Celery runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench import procs, scenarios
from bench.raw import QUEUE as RAW_QUEUE
from bench.raw import create_app
from bench.scenarios import OUR_QUEUE
from spawn_celery.client import Client
from spawn_celery.services import Services
from tests.support import WorkerProcess, make_settings

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def redis_pid() -> int:
    """The local Redis server's pid (the benchmark runs against the machine's Redis)."""
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out.split() else 0


def send(call: Callable[[str], None], targets: list[str], r: redis.Redis, queue: str) -> None:
    """Send to every target fire-and-forget, then wait until ``queue`` drains (and no mailbox holds calls)."""
    for target in targets:
        call(target)
    scenarios.drain(r, queue, mailboxes=queue == OUR_QUEUE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("scenario", choices=["hot", "distinct"])
    parser.add_argument("n", type=int, nargs="?", default=3000)
    parser.add_argument("rounds", type=int, nargs="?", default=2)
    parser.add_argument("--no-events", action="store_true", help="our task events off, as raw Celery runs")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (dbs 6 and 7 are flushed)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="spawn-cpu-"))
    settings = make_settings(tmp, redis_db=6, tick_ms=50, redis_url=f"{args.redis}/6")
    if args.no_events:
        settings = dataclasses.replace(settings, task_events=0, sent_events=0)
    raw_url = f"{args.redis}/7"
    ours_redis, raw_redis = redis.Redis.from_url(settings.redis_url), redis.Redis.from_url(raw_url)
    ours_redis.flushdb()
    raw_redis.flushdb()
    raw_worker = procs.RawWorker(raw_url, 2, tmp / "raw-worker.log").start()
    ours_worker = WorkerProcess(settings, app="bench.actors:system", concurrency=2, log_path=tmp / "worker.log").start()
    b = scenarios.Bench(
        client=Client(services=Services.create(settings)), ours_redis=ours_redis, raw_app=create_app(raw_url),
        raw_redis=raw_redis, ours_pids=ours_worker.pool_pids, raw_pids=raw_worker.pool_pids,
    )
    server = redis_pid()

    def snapshot(main_pid: int) -> dict[str, float]:
        return {"main": cpu_seconds(main_pid), "pool": sum(cpu_seconds(p) for p in procs.children(main_pid)),
                "redis": cpu_seconds(server), "client": time.process_time()}

    def measure(side: str, main_pid: int, run: Callable[[], None], n: int) -> None:
        before, start = snapshot(main_pid), time.perf_counter()
        run()
        elapsed, after = time.perf_counter() - start, snapshot(main_pid)
        per = {k: (after[k] - before[k]) / n * 1e6 for k in before}
        print(f"{args.scenario} {side:4} {n / elapsed:6.0f}/s  us of CPU per call: "
              + "  ".join(f"{k} {v:5.0f}" for k, v in per.items()) + f"  total {sum(per.values()):5.0f}", flush=True)

    try:
        b.spawn(["warm"])
        b.ours_sync("warm")
        for rnd in range(args.rounds):
            if args.scenario == "hot":
                actor = f"hot-{rnd}"
                b.spawn([actor])
                b.ours_sync(actor)
                b.raw_sync(f"raw:{actor}")
                ours_targets, raw_targets = [actor] * args.n, [f"raw:{actor}"] * args.n
            else:
                ours_targets = scenarios.names(f"d{rnd}", args.n)
                b.spawn(ours_targets)
                raw_targets = [f"raw:{a}" for a in ours_targets]

            assert raw_worker.proc is not None and ours_worker.proc is not None
            raw_pid, ours_pid = raw_worker.proc.pid, ours_worker.proc.pid
            measure("raw", raw_pid, lambda t=raw_targets: send(b.raw_async, t, raw_redis, RAW_QUEUE), args.n)
            measure("ours", ours_pid, lambda t=ours_targets: send(b.ours_async, t, ours_redis, OUR_QUEUE), args.n)
            scenarios.settle(b)
    finally:
        ours_worker.stop()
        raw_worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
