"""The raw Celery baseline: a plain Celery task doing the same work as the actor, on the same Redis.

Same work: read-modify-write of a counter held in Redis (GET, then SET) and a JSON reply. Same delivery: acks_late,
prefetch 1, JSON, Redis broker and result backend, the same prefork concurrency. No lock, no dedupe, no state
history: this is what the actor layer is measured against.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

QUEUE = "bench.raw"
_client: dict[int, redis.Redis] = {}


def create_app(url: str) -> Celery:
    """The baseline app on Redis ``url`` (broker and results)."""
    app = Celery("bench_raw", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=3600,
        broker_transport_options={"visibility_timeout": 10},
        result_backend_transport_options={"visibility_timeout": 10},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=QUEUE,
        enable_utc=True,
    )

    @app.task(name="bench.raw_incr")
    def raw_incr(key: str, by: int = 1) -> dict[str, int]:
        """Read-modify-write a counter in Redis and reply with the new value."""
        client = _client.get(os.getpid())
        if client is None:
            client = _client[os.getpid()] = redis.Redis.from_url(url)
        value = int(client.get(key) or 0) + by
        client.set(key, value)
        return {"value": value}

    return app


app = create_app(os.environ.get("BENCH_RAW_REDIS_URL", "redis://127.0.0.1:6379/7"))
