"""The cron activator: APScheduler 3 ``CronTrigger`` schedules that invoke actors, safe to run as several replicas.

- Expressions: standard crontab (5 fields, weekday 0 or 7 = Sunday, as cron; APScheduler 3 alone would read 0 as
  Monday), 6 fields with seconds first, or a macro (``@hourly``, ``@daily``, ...). Time zone per source, UTC default.
- Each fire time is sent once across replicas: a replica sends a sink's invocation only after winning a Redis
  ``SET NX`` on ``sp:act:cron:<activator>:<source>:<sink>:<fire time>``. The invocation id
  (``cron:<activator>:<source>:<sink>:<fire time ISO>``) makes even a second send harmless in the workers.
- A fire later than ``misfireGraceTime`` seconds (default 1) is skipped. A starting replica catches up the fire
  times since the last fire sent (``...:<source>:last`` in Redis), at most ``misfireGraceTime`` seconds back; the
  locks skip those another replica sent. A replica that was down does not replay more.
- Invocations are async by default; ``payload`` and ``metadata`` come from the sink; the actor also gets metadata
  ``activator``, ``activator-source`` and ``fire-time``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from spawn_celery.activators.manifest import Manifest, ManifestError, Sink, Source
from spawn_celery.client import Client
from spawn_celery.errors import SpawnError

log = logging.getLogger(__name__)
LOCK_PREFIX = "sp:act:cron:"
LAST_TTL_S = 7 * 24 * 3600
"""How long the time of the last fire sent is kept (for catching up after all replicas were down)."""
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def build_trigger(source: Source, *, where: str = "", origin: str = "<manifest>") -> Any:
    """Return the APScheduler ``CronTrigger`` of a cron source.

    Raises:
        ManifestError: the expression is not valid; the message names the source and the expression.
    """
    expr = MACROS.get(source.expr, source.expr)
    fields = expr.split()
    try:
        if len(fields) == 5:
            second, (minute, hour, day, month, dow) = "0", fields
        elif len(fields) == 6:
            second, minute, hour, day, month, dow = fields
        else:
            raise ValueError(f"it has {len(fields)} fields; use 5 (minute hour day month weekday) or 6 (second first)")
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(dow),
            timezone=source.timezone,
        )
    except ValueError as exc:
        path = where or f"source {source.name}"
        problem = f"source {source.name!r}: {source.expr!r} is not a valid cron expression: {exc}"
        raise ManifestError(origin, [(path, problem)]) from None


def _weekdays(field: str) -> str:
    """Translate crontab weekday numbers (0 or 7 = Sunday) into names, which APScheduler 3 reads unambiguously."""
    out: list[str] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        if not any(ch.isdigit() for ch in base):
            out.append(part)  # "*", names, or name ranges: already unambiguous
            continue
        try:
            lo, dash, hi = base.partition("-")
            start, step = int(lo), int(step_text or 1)
            end = int(hi) if dash else (6 if step_text else start)
        except ValueError:
            raise ValueError(f"weekday {part!r}: use numbers 0-7 or names sun-sat, not both") from None
        if not (0 <= start <= end <= 7 and step >= 1):
            raise ValueError(f"weekday {part!r} is outside 0-7 (0 and 7 are Sunday)")
        out.extend(_WEEKDAYS[d % 7] for d in range(start, end + 1, step))
    return ",".join(dict.fromkeys(out))


class _FireTimeExecutor(ThreadPoolExecutor):  # type: ignore[misc]
    """A thread pool executor that hands each job its scheduled fire time (APScheduler 3 does not pass it)."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        super()._do_submit_job(_AtFireTimes(job, run_times), run_times)


class _AtFireTimes:
    """Stands in for a job in ``run_job``: calls ``job.func(fire_time)`` once per run time, in order."""

    def __init__(self, job: Any, run_times: list[datetime]) -> None:
        times = iter(run_times)
        self.id, self.name, self._jobstore_alias = job.id, job.name, job._jobstore_alias
        self.misfire_grace_time = None  # lateness is judged by CronActivator.fire, per fire time
        self.func: Callable[[], Any] = lambda: job.func(next(times))
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def __str__(self) -> str:
        return str(self.name)


class CronActivator:
    """Runs the schedules of a cron manifest and sends each fire to its sinks, once across replicas."""

    def __init__(self, manifest: Manifest, *, client: Client, lock: redis.Redis, replica: str = "") -> None:
        """Serve ``manifest`` through ``client``; ``lock`` is the Redis holding the fire locks."""
        self.manifest = manifest
        self.client = client
        self.lock = lock
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        self.triggers = {
            s.name: build_trigger(s, where=f"spec.bindings.sources[{i}].expr", origin=manifest.origin)
            for i, s in enumerate(manifest.sources)
        }
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": _FireTimeExecutor(max_workers=8)},
            job_defaults={"coalesce": False, "max_instances": 4, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Catch up the fires since the last one sent (at most a grace period back), then start the schedules."""
        now = datetime.now(UTC)
        for source in self.manifest.sources:
            trigger = self.triggers[source.name]
            last = self._last(source)
            if last is not None:  # never fired before: nothing was missed
                since = max(last + timedelta(microseconds=1), now - timedelta(seconds=source.misfire_grace_time))
                at = trigger.get_next_fire_time(None, since)
                while at is not None and at <= now:
                    self.fire(source, at)
                    at = trigger.get_next_fire_time(at, at + timedelta(microseconds=1))
            self.scheduler.add_job(
                self._job(source), trigger, id=source.name, name=f"{self.manifest.name}/{source.name}"
            )
        self.scheduler.start()
        log.info(
            "cron activator %s started on replica %s: %s",
            self.manifest.name,
            self.replica,
            "; ".join(f"{s.name} {s.expr!r} ({s.timezone})" for s in self.manifest.sources),
        )

    def shutdown(self) -> None:
        """Stop scheduling and wait for fires in progress."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def run(self, stop: threading.Event) -> None:
        """Start, wait for ``stop``, shut down."""
        self.start()
        try:
            stop.wait()
        finally:
            self.shutdown()

    def _job(self, source: Source) -> Callable[..., int]:
        def job(at: datetime | None = None) -> int:  # the default satisfies APScheduler's signature check
            return self.fire(source, at or datetime.now(UTC))

        return job

    def fire(self, source: Source, at: datetime) -> int:
        """Send the fire of ``source`` at ``at`` to each bound sink this replica wins; return how many it sent."""
        late = (datetime.now(UTC) - at).total_seconds()
        if late > source.misfire_grace_time:
            log.warning(
                "%s: fire of %s at %s skipped: %.1f s late (misfireGraceTime %d s)",
                self.manifest.name,
                source.name,
                at.isoformat(),
                late,
                source.misfire_grace_time,
            )
            return 0
        return sum(self._send(source, sink, at) for sink in self.manifest.sinks_of(source.name))

    def _send(self, source: Source, sink: Sink, at: datetime) -> int:
        stamp = at.astimezone(UTC)
        key = f"{LOCK_PREFIX}{self.manifest.name}:{source.name}:{sink.name}:{int(stamp.timestamp())}"
        ttl_s = max(2 * source.misfire_grace_time, 60) + 60
        try:
            if not self.lock.set(key, self.replica, nx=True, ex=ttl_s):
                log.debug("%s: fire %s of %s taken by another replica", self.manifest.name, stamp, sink.name)
                return 0
        except redis.RedisError as exc:
            log.error(
                "%s: fire of %s at %s not sent: Redis unavailable (%s)", self.manifest.name, source.name, stamp, exc
            )
            return 0
        iso = stamp.isoformat().replace("+00:00", "Z")
        metadata = {"activator": self.manifest.name, "activator-source": source.name, "fire-time": iso, **sink.metadata}
        try:
            self.client.invoke(
                sink.system,
                sink.actor,
                sink.action,
                sink.payload,
                async_mode=sink.async_mode,
                metadata=metadata,
                invocation_id=f"cron:{self.manifest.name}:{source.name}:{sink.name}:{iso}",
                timeout=sink.timeout_s,
            )
        except (SpawnError, redis.RedisError) as exc:
            log.error(
                "%s: fire of %s at %s to %s.%s failed: %s: %s",
                self.manifest.name,
                source.name,
                iso,
                sink.actor,
                sink.action,
                type(exc).__name__,
                exc,
            )
            self._release(key)
            return 0
        with contextlib.suppress(redis.RedisError):
            last_key = f"{LOCK_PREFIX}{self.manifest.name}:{source.name}:last"
            self.lock.set(last_key, int(stamp.timestamp()), ex=LAST_TTL_S)
        log.info("%s: fired %s at %s -> %s.%s", self.manifest.name, source.name, iso, sink.actor, sink.action)
        return 1

    def _last(self, source: Source) -> datetime | None:
        """When any replica last sent a fire of ``source`` (``None``: never, or Redis unavailable)."""
        try:
            raw = self.lock.get(f"{LOCK_PREFIX}{self.manifest.name}:{source.name}:last")
        except redis.RedisError:
            return None
        return datetime.fromtimestamp(int(raw), UTC) if raw else None

    def _release(self, key: str) -> None:
        """Give the fire back so another replica may still send it within the grace period."""
        try:
            if self.lock.get(key) == self.replica.encode():
                self.lock.delete(key)
        except redis.RedisError:
            pass
