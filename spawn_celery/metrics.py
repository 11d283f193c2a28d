"""Worker metrics: Prometheus (multiprocess) and the recent-invocations list the dashboard reads.

:func:`install` is called once by the worker's main process before Celery forks its pool. It

- builds the :class:`Recorder` the ``spawn.invoke`` task calls in every pool process: each invocation is counted
  and timed by system, actor type, action and status, and pushed on the capped Redis list :data:`keys.RECENT`
  (the dashboard's "recent invocations", always on; written in batches every 250 ms, see :class:`RecentList`).
  The task calls it itself rather than through Celery's ``task_prerun``/``task_postrun`` signals, whose
  dispatch cost a few % of a pool process's CPU per invocation;
- with ``SPAWN_METRICS_PORT`` set, points prometheus_client at a multiprocess directory (a fresh
  ``worker-<pid>`` folder under ``PROMETHEUS_MULTIPROC_DIR``, else a temporary directory) and serves
  ``GET /metrics`` from the main process on that port once the worker is ready, through a
  ``MultiProcessCollector`` plus gauges read from Redis at scrape time (active and dirty actors, snapshot lag,
  queue depth).

The runtime and the snapshotter report lock waits, activations and deactivations through an :class:`Observer`;
the base class does nothing, so the core runs unchanged without metrics.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis

from spawn_celery import keys
from spawn_celery.config import Settings

log = logging.getLogger(__name__)

RECENT_LIMIT = 200
"""How many invocations :data:`keys.RECENT` keeps."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Buckets (seconds) of the invocation and lock-wait histograms."""
_LABELS = ("system", "actor", "action", "status")


class Observer:
    """Hooks the runtime and the snapshotter call at notable moments. The base class ignores them."""

    def lock_wait(self, system: str, actor: str, seconds: float) -> None:
        """An invocation of an ``actor`` type waited ``seconds`` for another invocation to release the lock."""

    def queued(self, system: str, actor: str) -> None:
        """An invocation found an ``actor`` busy and went into its mailbox (the lock holder runs it)."""

    def activated(self, system: str, actor: str) -> None:
        """An actor of type ``actor`` became active (its hot state was created in Redis)."""

    def deactivated(self, system: str) -> None:
        """An idle actor was flushed and evicted from Redis."""


class WorkerMetrics(Observer):
    """The Prometheus metrics of one worker (all its processes write to one multiprocess directory)."""

    def __init__(self) -> None:
        """Create the metrics; ``PROMETHEUS_MULTIPROC_DIR`` must already point at the directory."""
        from prometheus_client import Counter, Histogram

        self.invocations = Counter("spawn_invocations", "Invocations run by this worker.", _LABELS, registry=None)
        # Spawn's [:spawn, :invoke, :stop] duration, in seconds and labelled (the gateway uses the same name).
        self.latency = Histogram(
            "spawn_invoke_stop_duration_seconds",
            "Worker time per invocation (task start to reply).",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.lock_waits = Counter(
            "spawn_lock_waits", "Invocations that waited for a busy actor.", ("system", "actor"), registry=None
        )
        self.lock_wait_seconds = Histogram(
            "spawn_lock_wait_seconds",
            "Time invocations waited for a busy actor.",
            ("system", "actor"),
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.queued_calls = Counter(
            "spawn_mailbox_queued",
            "Invocations queued in a busy actor's mailbox and run in its holder's turn.",
            ("system", "actor"),
            registry=None,
        )
        self.activations = Counter(
            "spawn_actor_activations", "Actors activated (hot state created).", ("system", "actor"), registry=None
        )
        self.deactivations = Counter(
            "spawn_actor_deactivations", "Idle actors flushed and evicted.", ("system",), registry=None
        )

    def invocation(self, system: str, actor: str, action: str, status: str, seconds: float) -> None:
        """Record one finished invocation."""
        self.invocations.labels(system, actor, action, status).inc()
        self.latency.labels(system, actor, action, status).observe(seconds)

    def lock_wait(self, system: str, actor: str, seconds: float) -> None:
        """Count a lock wait and observe its duration."""
        self.lock_waits.labels(system, actor).inc()
        self.lock_wait_seconds.labels(system, actor).observe(seconds)

    def queued(self, system: str, actor: str) -> None:
        """Count an invocation queued in a mailbox."""
        self.queued_calls.labels(system, actor).inc()

    def activated(self, system: str, actor: str) -> None:
        """Count an activation."""
        self.activations.labels(system, actor).inc()

    def deactivated(self, system: str) -> None:
        """Count a deactivation."""
        self.deactivations.labels(system).inc()


class RedisGauges:
    """A Prometheus collector of cluster-wide gauges read from Redis at scrape time (cheap, O(log N) reads)."""

    def __init__(self, *, client: redis.Redis, queues: Sequence[str]) -> None:
        """Read from ``client``; report the depth of ``queues`` (the worker's own)."""
        self._redis = client
        self._queues = list(queues)

    def collect(self) -> Iterator[Any]:
        """Yield the gauge families; a Redis error skips them (the scrape still succeeds)."""
        from prometheus_client.core import GaugeMetricFamily

        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(keys.ACTIVE)
            pipe.zcard(keys.DIRTY)
            pipe.zrange(keys.DIRTY, 0, 0, withscores=True)
            for queue in self._queues:
                pipe.llen(queue)
            active, dirty, oldest, *depths = pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: Redis gauges unavailable: %s", exc)
            return
        lag = max(0.0, time.time() - oldest[0][1] / 1000.0) if oldest else 0.0
        yield GaugeMetricFamily("spawn_active_actors", "Actors active in Redis (hot-state size).", value=active)
        yield GaugeMetricFamily("spawn_dirty_actors", "Active actors with state not yet written to SQL.", value=dirty)
        yield GaugeMetricFamily(
            "spawn_snapshot_lag_seconds", "Seconds since the oldest dirty actor's snapshot became due.", value=lag
        )
        family = GaugeMetricFamily(
            "spawn_actor_message_queue_len",
            "Invocations waiting in an actor queue.",
            labels=["queue", "system", "actor"],
        )
        for queue, depth in zip(self._queues, depths, strict=True):
            parts = queue.split(".", 2)  # spawn.<system>.<actor type>
            system, actor = (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "spawn" else ("", "")
            family.add_metric([queue, system, actor], depth)
        yield family


def multiprocess_dir(settings: Settings) -> str:
    """Create this worker's multiprocess directory and export it for the pool processes.

    Returns:
        A fresh ``worker-<pid>`` folder under ``PROMETHEUS_MULTIPROC_DIR`` (so a worker never mixes its files
        with another process sharing that directory, e.g. a gunicorn gateway), else a new temporary directory.
        The worker removes it at shutdown.
    """
    if settings.metrics_dir:
        path = os.path.join(settings.metrics_dir, f"worker-{os.getpid()}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    else:
        path = tempfile.mkdtemp(prefix="spawn-metrics-")
    # prometheus_client reads the variable itself when it creates a value (in every pool process), so it is
    # exported here; and its value class was chosen at import time, maybe before the variable was set.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    from prometheus_client import values

    value_class: Any = values.MultiProcessValue  # untyped in prometheus_client
    values.ValueClass = value_class()
    return path


def install(settings: Settings, *, queues: Iterable[str] = ()) -> tuple[Observer, Recorder]:
    """Hook metrics into this worker (call in the main process before the pool starts).

    Returns:
        The observer to pass to the runtime and the snapshotter (a no-op one when metrics are off), and the
        recorder the invocation task reports each invocation to.
    """
    from celery.signals import worker_ready, worker_shutdown

    metrics: WorkerMetrics | None = None
    path = ""
    if settings.metrics_port:
        path = multiprocess_dir(settings)
        metrics = WorkerMetrics()
    recorder = Recorder(settings.redis_url, metrics)
    if metrics is None:
        return Observer(), recorder
    server: list[Any] = []
    watched = list(dict.fromkeys(queues))

    def on_ready(**_: Any) -> None:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            server.extend(serve(settings.metrics_port, path, client=client, queues=watched))
        except OSError as exc:  # the worker still works; say loudly why it cannot be scraped
            log.error("metrics: cannot listen on port %d (SPAWN_METRICS_PORT): %s", settings.metrics_port, exc)
            return
        log.info("metrics on :%d/metrics (multiprocess dir %s)", settings.metrics_port, path)

    def on_shutdown(**_: Any) -> None:
        if server:
            server[0].shutdown()
        shutil.rmtree(path, ignore_errors=True)

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    return metrics, recorder


def serve(port: int, path: str, *, client: redis.Redis, queues: Sequence[str]) -> tuple[Any, Any]:
    """Serve ``/metrics`` on ``port``: every process's metrics in ``path`` plus the Redis gauges.

    Returns:
        The WSGI server and its thread (``server.shutdown()`` stops it).
    """
    from prometheus_client import CollectorRegistry, ProcessCollector, start_wsgi_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    collector: Any = MultiProcessCollector  # untyped in prometheus_client
    collector(registry, path=path)
    ProcessCollector(registry=registry)  # the main process's memory and CPU (pool processes are not included)
    registry.register(RedisGauges(client=client, queues=queues))
    server, thread = start_wsgi_server(port, registry=registry)
    return server, thread


class RecentList:
    """The dashboard's "recent invocations" list, written in batches.

    A batch is written every ``flush_s`` seconds or every ``batch`` entries: one round trip per batch instead of
    one per invocation. A process killed in between loses its last unwritten entries (a dashboard list, not a
    record).
    """

    def __init__(self, client: Callable[[], redis.Redis], *, batch: int = 32, flush_s: float = 0.25) -> None:
        """Write through ``client()`` (a per-process client)."""
        self._client = client
        self._batch = batch
        self._flush_s = flush_s
        self._pending: list[str] = []
        self._guard = threading.Lock()
        self._owner = 0

    def add(self, doc: str) -> None:
        """Queue one entry; write the batch now when it is full."""
        with self._guard:
            self._pending.append(doc)
            full = len(self._pending) >= self._batch
            if self._owner != os.getpid():  # first use in this (forked) process: start its flusher
                self._owner = os.getpid()
                threading.Thread(target=self._run, name="spawn-recent", daemon=True).start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the queued entries (oldest first, so the newest ends up at the head) and trim the list."""
        with self._guard:
            docs, self._pending = self._pending, []
        if not docs:
            return
        pipe = self._client().pipeline(transaction=False)
        pipe.lpush(keys.RECENT, *docs)
        pipe.ltrim(keys.RECENT, 0, RECENT_LIMIT - 1)
        pipe.execute()

    def _run(self) -> None:
        while self._owner == os.getpid():
            time.sleep(self._flush_s)
            try:
                self.flush()
            except Exception as exc:  # Redis away: drop this batch, keep the thread
                log.warning("metrics: writing recent invocations failed: %s", exc)


class Recorder:
    """Counts and times each invocation inside a pool process, and lists it for the dashboard."""

    def __init__(self, redis_url: str, metrics: WorkerMetrics | None) -> None:
        """Write the recent list to ``redis_url``; count into ``metrics`` when Prometheus metrics are on."""
        self._redis_url = redis_url
        self._metrics = metrics
        self._client: tuple[int, redis.Redis] | None = None
        self._recent = RecentList(self._redis)

    def record(self, task: Any, kwargs: dict[str, Any], status: str, seconds: float) -> None:
        """Record one invocation of ``task`` (its message ``kwargs``) that ended with ``status`` after ``seconds``.

        ``status`` is the reply's status, ``RETRY`` or ``FAILURE``. Never raises: metrics must not fail an
        invocation.
        """
        system, actor, action = (str(kwargs.get(k, "")) for k in ("system", "actor", "action"))
        try:
            if self._metrics is not None:
                self._metrics.invocation(system, _actor_type(task, system, actor), action, status, seconds)
            entry = {
                "t": int(time.time() * 1000),
                "system": system,
                "actor": actor,
                "action": action,
                "id": str(kwargs.get("id", "")),
                "status": status,
                "ms": round(seconds * 1000, 2),
                "worker": str(getattr(task.request, "hostname", "") or ""),
            }
            self._recent.add(json.dumps(entry, separators=(",", ":")))
        except Exception as exc:
            log.warning("metrics: recording invocation %s failed: %s", kwargs.get("id"), exc)

    def _redis(self) -> redis.Redis:
        """A client per process (pool processes are forked after install)."""
        if self._client is None or self._client[0] != os.getpid():
            self._client = (os.getpid(), redis.Redis.from_url(self._redis_url, socket_timeout=2))
        return self._client[1]


def _actor_type(task: Any, system: str, actor: str) -> str:
    """The actor type of an invocation: its queue is ``spawn.<system>.<type>`` (instances share the template's)."""
    info = getattr(task.request, "delivery_info", None) or {}
    queue = str(info.get("routing_key") or "")
    prefix = keys.queue(system, "")
    return queue[len(prefix) :] if queue.startswith(prefix) and len(queue) > len(prefix) else actor
