"""The mailbox A/B: one hot actor, N pipelined async updates, with ``SPAWN_BATCH_TURNS`` 1 and 0 alternately.

``.venv/bin/python -m bench.mailbox [N] [ROUNDS]`` (defaults 4000 and 2). Each round starts a fresh worker
(2 prefork processes, Redis db 6), sends N updates to one actor, waits until the queue, the unacked messages and
every mailbox are empty, and checks the final value is exactly N+1.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.services import Services
from tests.support import WorkerProcess, flush_redis, make_settings


def one_round(n: int, batch: int) -> float:
    """Updates per second of one hot actor with ``SPAWN_BATCH_TURNS=batch``."""
    tmp = Path(tempfile.mkdtemp(prefix="spawn-mailbox-"))
    settings = make_settings(tmp, redis_db=6, batch_turns=batch)
    flush_redis(settings)
    worker = WorkerProcess(settings, app="bench.actors:system", concurrency=2, log_path=tmp / "w.log").start()
    try:
        client = Client(services=Services.create(settings))
        client.spawn("bench", "h-1", "counter")
        client.invoke("bench", "h-1", "incr", Increment(by=1))
        r, queue = client.services.redis, keys.queue("bench", "counter")
        start = time.perf_counter()
        for _ in range(n):
            client.invoke("bench", "h-1", "incr", Increment(by=1), async_mode=True)
        while r.llen(queue) or r.hlen("unacked") or r.zcard(keys.MAILBOXES):
            time.sleep(0.002)
        rate = n / (time.perf_counter() - start)
        final = client.invoke("bench", "h-1", "get").value
        if final != n + 1:
            raise AssertionError(f"final value {final}, expected {n + 1}")
        return rate
    finally:
        worker.stop()


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 4000
    rounds = int(argv[1]) if len(argv) > 1 else 2
    print("| SPAWN_BATCH_TURNS | " + " | ".join(f"run {i + 1}" for i in range(rounds)) + " |")
    print("|---|" + "---|" * rounds)
    rates: dict[int, list[float]] = {1: [], 0: []}
    for _ in range(rounds):
        for batch in (1, 0):
            rates[batch].append(one_round(n, batch))
    for batch in (1, 0):
        print(f"| {batch} | " + " | ".join(f"{x:.0f}/s" for x in rates[batch]) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
