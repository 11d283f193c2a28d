"""The worker: a Celery worker hosting Python actors in-process (and, with ``--remote``, remote SDK hosts' actors).

``spawn-celery worker --app mypkg.actors:system`` imports the user's ``Spawn`` builder, records its actors in the
registry, consumes their queues and runs the housekeeping loop in the main process. SIGTERM is Celery's warm
shutdown: stop taking work, finish in-flight invocations, then flush all dirty state to SQL.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from billiard import pool as billiard_pool
from celery import Celery
from celery.exceptions import Retry
from celery.signals import worker_ready, worker_shutdown

from spawn_celery import keys, metrics
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, PayloadDecodeError, TransportUnavailable
from spawn_celery.events import BatchedEventsConsumer
from spawn_celery.message import TASK_NAME, Message, Reply
from spawn_celery.services import Services
from spawn_celery.spawn import Spawn

log = logging.getLogger(__name__)


def load_app(spec: str) -> Spawn:
    """Import ``module:attr`` (the current directory is importable, as with celery) and return the ``Spawn``.

    Raises:
        ConfigError: the module or attribute is missing or not a ``Spawn``.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("--app", spec, "use MODULE:ATTR, e.g. mypkg.actors:system")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("--app", spec, f"cannot import {module_name}: {exc}") from None
    target = getattr(module, attr, None)
    if not isinstance(target, Spawn):
        raise ConfigError("--app", spec, f"{attr} is {type(target).__name__}, not a spawn_celery.Spawn")
    target.validate()
    return target


def install_task(app: Celery, runtime_factory: Callable[[], Any], recorder: metrics.Recorder | None = None) -> None:
    """Register the ``spawn.invoke`` task; each worker process builds its runtime on first use (after fork).

    With ``recorder``, every invocation is reported to it with its status and duration.
    """
    holder: dict[int, Any] = {}

    @app.task(name=TASK_NAME, bind=True, acks_late=True, ignore_result=True, max_retries=60)
    def invoke(task: Any, /, **kwargs: Any) -> str:
        started, status = time.perf_counter(), "FAILURE"
        try:
            status = _invoke(task, kwargs)
            return status
        except Retry:
            status = "RETRY"
            raise
        finally:
            if recorder is not None:
                recorder.record(task, kwargs, status, time.perf_counter() - started)

    def _invoke(task: Any, kwargs: dict[str, Any]) -> str:
        runtime = holder.get(os.getpid())
        if runtime is None:
            runtime = holder[os.getpid()] = runtime_factory()
        try:
            message = Message.from_kwargs(kwargs)
        except PayloadDecodeError as exc:  # a poison message: answer if we can, never crash or requeue forever
            log.error("dropping undecodable invocation %s: %s", kwargs.get("id"), exc)
            if kwargs.get("reply_to"):
                runtime.router.transport.store(str(kwargs["reply_to"]), Reply.failure(exc))
            return Reply.failure(exc).status
        try:
            return str(runtime.handle(message).status)  # shown by Flower as the result; read by metrics
        except (redis.ConnectionError, redis.TimeoutError, TransportUnavailable) as exc:
            log.warning("invocation %s: Redis unavailable (%s); retrying", message.id, exc)
            raise task.retry(countdown=1) from exc


def register_actors(services: Services, spawn: Spawn) -> None:
    """Record the ``Actor`` message of every Python actor in the shared registry."""
    system = spawn.system_name
    services.registry.register(
        system,
        [actor.to_proto(system) for actor in spawn.actors.values()],
        channels={a.name: [(c.topic, c.action) for c in a.settings.channels] for a in spawn.actors.values()},
    )


def serve(
    spawn: Spawn | None,
    settings: Settings,
    *,
    concurrency: int = 0,
    pool: str = "prefork",
    queues: list[str] | None = None,
    remote: bool = False,
    hostname: str = "",
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker in the foreground until it is stopped."""
    actors = dict(spawn.actors) if spawn else {}
    services = Services.create(settings, actors=actors)
    services.statestore.ping()  # refuse to start on a bad key or an unreachable database, before registering
    all_queues = list(queues or [])
    if spawn is not None:
        register_actors(services, spawn)
        if not queues:  # --queues restricts a worker group to some of the app's queues
            all_queues += [keys.queue(spawn.system_name, name) for name in spawn.actors]
    if remote:
        all_queues += sorted(services.registry.remote_queues())
    if not all_queues:
        all_queues = ["spawn.idle"]
    app = services.app
    if logging.getLevelName(loglevel.upper()) == logging.INFO:
        # Celery logs two lines per task at INFO, "Task ... received" in the main process and "Task ...
        # succeeded" in the pool process: one each per invocation, a few % of either process's CPU. Failures
        # (ERROR) still show; DEBUG shows them all again; Flower and the dashboard list every invocation.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)
    BatchedEventsConsumer.flush_s = settings.event_flush_ms / 1000.0
    app.conf.worker_consumer = f"{BatchedEventsConsumer.__module__}:{BatchedEventsConsumer.__qualname__}"
    observer, recorder = metrics.install(settings, queues=all_queues)
    install_task(app, lambda: Services.create(settings, actors=actors).runtime(observer=observer), recorder)
    node = hostname or f"spawn-{os.getpid()}@{socket.gethostname()}"
    keeper: Any = services.housekeeper(observer=observer)

    def on_ready(**_: Any) -> None:
        keeper.start()
        if remote:
            threading.Thread(target=_watch_remote, args=(services, node, set(all_queues)), daemon=True).start()

    def on_shutdown(**_: Any) -> None:
        keeper.stop(flush=True)

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    argv = [
        "worker",
        "-Q",
        ",".join(dict.fromkeys(all_queues)),
        "-P",
        pool,
        "-l",
        loglevel,
        "-n",
        node,
        *(["-E"] if settings.task_events else []),
        "--without-mingle",
        "--without-gossip",
    ]
    conc = concurrency or settings.worker_concurrency
    if conc:
        argv += ["-c", str(conc)]
    # A pool process whose task ends during warm shutdown waits for the main process to read its result, which
    # it no longer does: billiard's 30 s wait only delays the stop (the unacked message is restored and answered
    # from the dedupe record). A recycled process is read at once, so 2 s is plenty (docs/reliability.md).
    billiard_pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = 20
    app.worker_main(argv)


def _watch_remote(services: Services, node: str, consumed: set[str]) -> None:
    """Start consuming queues of remote hosts that register after the worker started."""
    stop = threading.Event()
    while not stop.wait(1.0):
        try:
            for queue in sorted(services.registry.remote_queues() - consumed):
                services.app.control.add_consumer(queue, destination=[node])
                consumed.add(queue)
                log.info("now consuming %s", queue)
        except Exception:
            log.exception("watching remote registrations failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery worker``."""
    parser.add_argument("--app", help="MODULE:ATTR of a spawn_celery.Spawn with the actors to host")
    parser.add_argument(
        "--queues", default="", help="consume only these queues (comma-separated; default: all of the app's actors)"
    )
    parser.add_argument("--remote", action="store_true", help="also serve actors of remote SDK hosts")
    parser.add_argument("--concurrency", "-c", type=int, default=0, help="worker processes (default: CPUs)")
    parser.add_argument("--pool", "-P", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--hostname", "-n", default="", help="Celery node name")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``spawn-celery worker``."""
    spawn = load_app(args.app) if args.app else None
    if spawn is None and not args.remote and not args.queues:
        raise ConfigError("--app", "", "give --app MODULE:ATTR, --remote, or --queues")
    queues = [q for q in args.queues.split(",") if q]
    serve(
        spawn,
        settings,
        concurrency=args.concurrency,
        pool=args.pool,
        queues=queues,
        remote=args.remote,
        hostname=args.hostname,
        loglevel=settings.log_level,
    )
    return 0
