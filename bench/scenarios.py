"""The scenarios of issue 8. Each returns plain data; :mod:`bench.run` turns it into rows and JSON."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from bench import procs, stats
from bench.raw import QUEUE as RAW_QUEUE
from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.examples.domain_pb2 import Increment

SYSTEM, TEMPLATE, ACTION = "bench", "counter", "incr"
OUR_QUEUE = keys.queue(SYSTEM, TEMPLATE)


@dataclass
class Bench:
    """Everything a scenario needs: both sides' clients and Redis connections, and worker pool pids."""

    client: Client
    ours_redis: redis.Redis
    raw_app: Celery
    raw_redis: redis.Redis
    ours_pids: Callable[[], list[int]]
    raw_pids: Callable[[], list[int]]
    spawned: int = 0
    notes: list[str] = field(default_factory=list)

    def ours_sync(self, name: str) -> None:
        self.client.invoke(SYSTEM, name, ACTION, Increment(by=1))

    def raw_sync(self, key: str) -> None:
        self.raw_app.send_task("bench.raw_incr", args=[key, 1]).get(timeout=20)

    def ours_async(self, name: str) -> None:
        self.client.invoke(SYSTEM, name, ACTION, Increment(by=1), async_mode=True)

    def raw_async(self, key: str) -> None:
        self.raw_app.send_task("bench.raw_incr", args=[key, 1], ignore_result=True)

    def spawn(self, names: list[str]) -> None:
        """Spawn instances of the template the fast way: one pipelined HSETNX per name into the registry hash.

        Writes exactly what ``Registry.spawn`` writes for a template without channels.
        """
        pipe = self.ours_redis.pipeline(transaction=False)
        for i, name in enumerate(names, 1):
            pipe.hsetnx(keys.instances(SYSTEM), name, f"{TEMPLATE}{keys.SEP}0")
            if i % 5000 == 0:
                pipe.execute()
        pipe.execute()
        self.spawned += len(names)


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


def timed(call: Callable[[str], None], targets: list[str]) -> list[float]:
    samples = []
    for target in targets:
        start = time.perf_counter()
        call(target)
        samples.append(time.perf_counter() - start)
    return samples


def drain(r: redis.Redis, queue: str, timeout: float = 600.0, *, mailboxes: bool = False) -> None:
    """Wait until ``queue`` is empty and no message is unacked (every task finished and acked); with
    ``mailboxes``, also until no actor has calls queued in its mailbox (their tasks end before they run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipe = r.pipeline(transaction=False)
        pipe.llen(queue)
        pipe.hlen("unacked")
        if mailboxes:
            pipe.zcard(keys.MAILBOXES)
        if not any(pipe.execute()):
            return
        time.sleep(0.002)
    raise TimeoutError(f"{queue} did not drain in {timeout} s")


def paired(first: Callable[[], None], second: Callable[[], None], calls: int) -> tuple[list[float], list[float]]:
    """Time ``first`` and ``second`` alternately, call by call, so both see the same machine load."""
    a: list[float] = []
    b: list[float] = []
    clock = time.perf_counter
    for i in range(calls):
        for call, out in ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a)):
            start = clock()
            call()
            out.append(clock() - start)
    return a, b


def sync_latency(b: Bench, calls: int) -> dict[str, Any]:
    """Sequential sync invocations of one hot actor vs raw ``delay().get()``, alternating call by call."""
    actor, key = "sync-1", "raw:sync-1"
    b.spawn([actor])
    paired(lambda: b.ours_sync(actor), lambda: b.raw_sync(key), 100)
    ours, raw = paired(lambda: b.ours_sync(actor), lambda: b.raw_sync(key), calls)
    return {"ours": stats.latency(ours), "raw": stats.latency(raw)}


def raw_with_events(b: Bench, calls: int, hot: int = 0) -> dict[str, Any]:
    """Raw Celery with task events on (what Flower needs; our workers always run with ``-E``), paired with ours;
    with ``hot``, also the hot-actor throughput against that baseline."""
    b.raw_app.control.enable_events()
    b.raw_app.conf.task_send_sent_event = True
    time.sleep(0.5)
    try:
        paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), 50)
        ours, raw = paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), calls)
        return {"ours": stats.latency(ours), "raw": stats.latency(raw), "hot": hot_actor(b, hot) if hot else None}
    finally:
        b.raw_app.conf.task_send_sent_event = False
        b.raw_app.control.disable_events()


def pipelined(b: Bench, ours_targets: list[str], raw_targets: list[str]) -> dict[str, Any]:
    """Send every invocation fire-and-forget, then wait for the queue to drain; calls/s from first send."""
    start = time.perf_counter()
    for key in raw_targets:
        b.raw_async(key)
    raw_sent = time.perf_counter() - start
    drain(b.raw_redis, RAW_QUEUE)
    raw_s = time.perf_counter() - start
    start = time.perf_counter()
    for name in ours_targets:
        b.ours_async(name)
    ours_sent = time.perf_counter() - start
    drain(b.ours_redis, OUR_QUEUE, mailboxes=True)
    ours_s = time.perf_counter() - start
    n_ours, n_raw = len(ours_targets), len(raw_targets)
    return {
        "ours": {"n": n_ours, "seconds": ours_s, "send_seconds": ours_sent, "per_s": n_ours / ours_s},
        "raw": {"n": n_raw, "seconds": raw_s, "send_seconds": raw_sent, "per_s": n_raw / raw_s},
    }


def hot_actor(b: Bench, count: int) -> dict[str, Any]:
    """One actor, ``count`` pipelined updates; checks no update was lost (raw Celery loses some: no lock)."""
    actor, key = f"hot-{uuid.uuid4().hex[:6]}", f"raw:hot-{uuid.uuid4().hex[:6]}"
    b.spawn([actor])
    b.ours_sync(actor)
    b.raw_sync(key)
    result = pipelined(b, [actor] * count, [key] * count)
    result["ours"]["final_value"] = b.client.invoke(SYSTEM, actor, "get").value
    result["ours"]["expected"] = count + 1
    result["raw"]["final_value"] = int(b.raw_redis.get(key) or 0)
    result["raw"]["expected"] = count + 1
    return result


def distinct_actors(b: Bench, count: int) -> dict[str, Any]:
    """``count`` distinct actors, one pipelined update each (every one is a first activation)."""
    actors = names(f"d{uuid.uuid4().hex[:4]}", count)
    b.spawn(actors)
    return pipelined(b, actors, [f"raw:{a}" for a in actors])


def quiesce(b: Bench, timeout: float = 60.0) -> None:
    """Wait until the snapshotter has written every dirty actor (so it does not compete with what is measured)."""
    deadline = time.monotonic() + timeout
    while b.ours_redis.zcard(keys.DIRTY) and time.monotonic() < deadline:
        time.sleep(0.1)


def settle(b: Bench, timeout: float = 60.0) -> None:
    """Wait until the actors of earlier scenarios have been written and evicted (a wave of thousands of
    deactivations, 8 s after the distinct-actors scenario, would otherwise land in the middle of a measurement)."""
    quiesce(b, timeout)
    deadline = time.monotonic() + timeout
    while b.ours_redis.zcard(keys.ACTIVE) > 10 and time.monotonic() < deadline:
        time.sleep(0.2)


def scale(b: Bench, total: int, sample: int) -> dict[str, Any]:
    """Spawn actors up to ``total``; p50 of ``sample`` random actors among them (first activation, then warm),
    each call paired with one to the hot actor ``sync-1``."""
    settle(b)
    extra = max(total - b.spawned, 0)
    start = time.perf_counter()
    pool = names(f"s{uuid.uuid4().hex[:4]}", extra)
    b.spawn(pool)
    spawn_s = time.perf_counter() - start
    picked = random.sample(pool, min(sample, len(pool)))
    # each sample of the hot actor alternates with one of the N actors (as in ``paired``): both see the same load
    targets = iter(picked)
    cold_one, cold = paired(lambda: b.ours_sync("sync-1"), lambda: b.ours_sync(next(targets)), len(picked))
    random.shuffle(picked)
    targets = iter(picked)
    one, warm = paired(lambda: b.ours_sync("sync-1"), lambda: b.ours_sync(next(targets)), len(picked))
    active = int(b.ours_redis.zcard(keys.ACTIVE))
    return {"actors": b.spawned, "spawn_seconds": spawn_s, "spawned_now": extra, "active_in_redis": active,
            "one": stats.latency(one), "cold": stats.latency(cold), "cold_one": stats.latency(cold_one),
            "warm": stats.latency(warm)}


def rss_growth(b: Bench, total: int, chunk: int, actors: int = 100) -> dict[str, Any]:
    """Worker pool RSS while ``total`` invocations run over ``actors`` actors; slope after the first chunk."""
    group = names(f"m{uuid.uuid4().hex[:4]}", actors)
    b.spawn(group)
    points: list[tuple[float, float]] = []
    done = 0
    start = time.perf_counter()
    rss0 = procs.rss_bytes(b.ours_pids())
    while done < total:
        for i in range(chunk):
            b.ours_async(group[(done + i) % actors])
        drain(b.ours_redis, OUR_QUEUE, mailboxes=True)
        done += chunk
        points.append((done, procs.rss_bytes(b.ours_pids())))
    per_call = stats.slope(points[1:])
    return {"invocations": done, "seconds": time.perf_counter() - start, "rss_start": rss0,
            "rss_end": points[-1][1], "points": points, "bytes_per_invocation": per_call,
            "mib_per_million": per_call * 1e6 / 2**20}


def events_off(b: Bench, calls: int, hot: int) -> dict[str, Any]:
    """Ours with Celery events off (no Flower attached; Flower turns them on itself), paired with raw Celery."""
    app = b.client.services.app
    app.conf.task_send_sent_event = False  # first the caller's task-sent event alone
    try:
        paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), 50)
        no_sent, raw_a = paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), calls)
        app.control.disable_events()
        time.sleep(0.5)
        paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), 50)
        ours, raw = paired(lambda: b.ours_sync("sync-1"), lambda: b.raw_sync("raw:sync-1"), calls)
        return {"ours": stats.latency(ours), "raw": stats.latency(raw), "hot": hot_actor(b, hot),
                "no_sent_event": {"ours": stats.latency(no_sent), "raw": stats.latency(raw_a)}}
    finally:
        app.conf.task_send_sent_event = True
        app.control.enable_events()


def keys_after_deactivation(b: Bench, timeout: float) -> dict[str, Any]:
    """Wait until no actor is active or dirty, then count what is left in Redis by key family."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        pipe = b.ours_redis.pipeline(transaction=False)
        pipe.zcard(keys.ACTIVE)
        pipe.zcard(keys.DIRTY)
        if pipe.execute() == [0, 0]:
            break
        time.sleep(0.25)
    waited = time.monotonic() - start
    time.sleep(2.5)  # wake lists of the last evictions live 2 s (PEXPIRE in the evict script)
    families: dict[str, int] = {}
    for raw_key in b.ours_redis.scan_iter(count=5000):
        key = raw_key.decode(errors="replace")
        family = key.split(":")[0] + ":" + key.split(":")[1] if key.startswith("sp:") else key.split("-")[0][:24]
        families[family] = families.get(family, 0) + 1
    per_actor = sum(
        families.get(f, 0) for f in ("sp:st", "sp:lk", "sp:lo", "sp:wk", "sp:wt", "sp:pl", "sp:mb", "sp:if")
    )
    info = b.ours_redis.info("memory")
    inst_bytes = b.ours_redis.memory_usage(keys.instances(SYSTEM)) or 0
    return {"waited_s": waited, "active": int(b.ours_redis.zcard(keys.ACTIVE)), "families": families,
            "per_actor_keys": per_actor, "dedupe_records": families.get("sp:dn", 0),
            "used_memory": info["used_memory"], "instances_hash_bytes": inst_bytes}
