"""Gateway metrics: HTTP metrics from prometheus-flask-exporter plus invocation counters and latency histograms.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn with several workers) the exporter runs in multiprocess mode and
``/metrics`` aggregates every worker; ``web/gunicorn.conf.py`` marks dead workers. Without it, each app gets its
own registry (several apps in one process do not clash). HTTP metrics are grouped by endpoint, never by path,
so actor names cannot explode label cardinality.

Spawn exports ``spawn_invoke_stop_duration`` without labels (spawn-protocol.md section 9); we export it as a
histogram in seconds with labels ``system``, ``actor`` (the actor type: template name for spawned instances),
``action`` and ``status``, and ``spawn_invocations_total`` with the same labels.
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram

from spawn_celery.config import Settings

LABELS = ("system", "actor", "action", "status")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    """The metrics of one gateway app."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        """Install the HTTP exporter (serving ``/metrics``) on ``app`` and create the invocation metrics."""
        registry: CollectorRegistry | None
        if settings.metrics_dir:
            from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

            self.exporter: object = GunicornInternalPrometheusMetrics(app, group_by="endpoint")
            registry = None  # multiprocess values live in files, collected at /metrics
        else:
            from prometheus_flask_exporter import PrometheusMetrics

            registry = CollectorRegistry(auto_describe=True)
            self.exporter = PrometheusMetrics(app, registry=registry, group_by="endpoint")
        self.invocations = Counter(
            "spawn_invocations_total", "Invocations answered by the gateway", LABELS, registry=registry
        )
        self.duration = Histogram(
            "spawn_invoke_stop_duration_seconds",
            "Gateway invocation latency (request decoded to reply ready)",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )

    def observe(self, system: str, actor: str, action: str, status: str, seconds: float) -> None:
        """Count one invocation and record its latency."""
        self.invocations.labels(system, actor, action, status).inc()
        self.duration.labels(system, actor, action, status).observe(seconds)


def reset_multiprocess_dir(settings: Settings) -> None:
    """Remove a previous run's multiprocess metric files (gunicorn ``on_starting``); they would be added in."""
    if settings.metrics_dir:
        from pathlib import Path

        for stale in Path(settings.metrics_dir).glob("*.db"):
            stale.unlink()


def mark_process_dead(settings: Settings, pid: int) -> None:
    """Drop a dead gunicorn worker's live gauges (gunicorn ``child_exit``)."""
    if settings.metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, settings.metrics_dir)  # type: ignore[no-untyped-call]
