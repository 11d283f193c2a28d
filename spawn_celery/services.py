"""The composition root: builds the parts a process needs from :class:`Settings`, once, and passes them down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import redis
from celery import Celery
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from spawn_celery.activation import Activations
from spawn_celery.actor import Actor
from spawn_celery.config import Settings
from spawn_celery.hosts.python import PythonHost
from spawn_celery.metrics import Observer
from spawn_celery.registry import Registry
from spawn_celery.routing import Router
from spawn_celery.scheduler import Scheduler
from spawn_celery.statestores.base import StateStore
from spawn_celery.transport import CeleryTransport, create_celery


@dataclass
class Services:
    """Lazily built, shared parts of one process (build one per process, after any fork)."""

    settings: Settings
    actors: Mapping[str, Actor] = field(default_factory=dict)
    celery_app: Celery | None = None

    @classmethod
    def create(
        cls, settings: Settings, *, actors: Mapping[str, Actor] | None = None, app: Celery | None = None
    ) -> Services:
        """Build services for ``settings``; ``actors`` are the Python actors hosted in this process."""
        return cls(settings, dict(actors or {}), app)

    @cached_property
    def redis(self) -> redis.Redis:
        """Redis client (bytes responses, pooled connections)."""
        return redis.Redis.from_url(
            self.settings.redis_url,
            health_check_interval=30,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), self.settings.redis_retries),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )

    @cached_property
    def app(self) -> Celery:
        """The Celery app."""
        return self.celery_app or create_celery(self.settings)

    @cached_property
    def transport(self) -> CeleryTransport:
        """Sends invocation messages and carries replies."""
        return CeleryTransport(
            app=self.app,
            folds_replies=self.settings.backend == self.settings.redis_url,
            event_flush_s=self.settings.event_flush_ms / 1000.0,
        )

    @cached_property
    def registry(self) -> Registry:
        """The shared actor registry."""
        return Registry(client=self.redis)

    @cached_property
    def scheduler(self) -> Scheduler:
        """Timers and scheduled invocations."""
        return Scheduler(client=self.redis)

    @cached_property
    def router(self) -> Router:
        """Resolves targets and sends invocations."""
        return Router(
            registry=self.registry,
            transport=self.transport,
            scheduler=self.scheduler,
            max_depth=self.settings.max_chain_depth,
        )

    @cached_property
    def activations(self) -> Activations:
        """Locks, hot state and dedupe."""
        return Activations(
            client=self.redis, lease_ms=self.settings.lock_lease_ms, dedupe_ttl_s=self.settings.dedupe_ttl_s
        )

    @cached_property
    def statestore(self) -> StateStore:
        """The encrypted SQL statestore."""
        from spawn_celery.statestores import open_statestore

        return open_statestore(self.settings)

    def runtime(self, *, observer: Observer | None = None) -> object:
        """The invocation runtime of a worker process (``observer`` receives metrics hooks)."""
        from spawn_celery.runtime import Runtime

        return Runtime(
            router=self.router,
            activations=self.activations,
            statestore=self.statestore,
            scheduler=self.scheduler,
            python_host=PythonHost(self.actors),
            lock_wait_ms=self.settings.lock_wait_ms,
            host_timeout_s=self.settings.host_timeout_ms / 1000.0,
            lock_lease_ms=self.settings.lock_lease_ms,
            observer=observer,
            batch_turns=bool(self.settings.batch_turns),
            max_action_ms=self.settings.action_timeout_ms,
            max_turn_ms=self.settings.max_turn_ms,
        )

    def housekeeper(self, *, observer: Observer | None = None) -> object:
        """A housekeeping loop over these services (``observer`` receives metrics hooks)."""
        from spawn_celery.housekeeper import Housekeeper
        from spawn_celery.snapshotter import Snapshotter

        snapshotter = Snapshotter(
            client=self.redis,
            statestore=self.statestore,
            lease_ms=self.settings.lock_lease_ms,
            retry_ms=self.settings.snapshot_retry_ms,
            observer=observer,
        )
        return Housekeeper(
            router=self.router,
            scheduler=self.scheduler,
            snapshotter=snapshotter,
            tick_ms=self.settings.tick_ms,
            activations=self.activations,
        )
