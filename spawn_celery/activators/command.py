"""``spawn-celery activator``: run a cron or RabbitMQ activator from an Activator manifest, or check one.

Examples::

    spawn-celery activator cron -f activators/cron.yaml
    spawn-celery activator rabbitmq -f activators/rabbitmq.yaml
    spawn-celery activator check -f activators/rabbitmq.yaml

SIGTERM or SIGINT stops the process cleanly: the cron activator finishes the fires in progress; the RabbitMQ
activator closes its connection, and messages not yet acked are redelivered (and deduplicated) later.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from spawn_celery.activators.manifest import Manifest, ManifestError, load
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError

log = logging.getLogger(__name__)
_RUNS = {"cron": "cron", "rabbitmq": "amqp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``cron``, ``rabbitmq`` and ``check`` subcommands, each with ``-f FILE``."""
    sub = parser.add_subparsers(dest="activator_command", required=True, metavar="SUBCOMMAND")
    helps = {
        "cron": "run the cron schedules of a Cron manifest (safe with several replicas)",
        "rabbitmq": "consume the queues of an AMQP manifest",
        "check": "validate a manifest (and its cron expressions) and exit",
    }
    for name, text in helps.items():
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument("-f", "--file", required=True, metavar="FILE", help="the Activator manifest (YAML)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen subcommand.

    Raises:
        ManifestError: the manifest is invalid or of another type than the subcommand.
    """
    manifest = load(args.file, default_system=settings.actor_system)
    if args.activator_command == "check":
        check(manifest)
        print(f"{args.file}: valid {manifest.type} activator {manifest.name!r}")
        return 0
    wanted = _RUNS[args.activator_command]
    if manifest.type != wanted:
        other = {v: k for k, v in _RUNS.items()}.get(manifest.type)
        fix = f"run `spawn-celery activator {other} -f {args.file}`" if other else "the gateway's JSON route serves Api"
        raise ManifestError(manifest.origin, [("spec.activator.type", f"is {manifest.type}, not {wanted}; {fix}")])
    stop = threading.Event()
    _on_signals(stop)
    for noisy in ("pika", "apscheduler.executors", "apscheduler.scheduler"):  # a line per message/fire otherwise
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    if wanted == "cron":
        return _cron(manifest, settings, stop)
    return _rabbitmq(manifest, settings, stop)


def check(manifest: Manifest) -> None:
    """Check what needs the optional extras too (cron expressions).

    Raises:
        ManifestError: a cron expression is invalid.
    """
    if manifest.type == "cron":
        _need("apscheduler", "cron")
        from spawn_celery.activators.cron import build_trigger

        for i, source in enumerate(manifest.sources):
            build_trigger(source, where=f"spec.bindings.sources[{i}].expr", origin=manifest.origin)


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _need(module: str, extra: str) -> None:
    """Fail with an install hint when an optional extra is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError("extra", extra, f"{module} is not installed; pip install 'spawn-celery[{extra}]'")


def _client(settings: Settings) -> Any:
    from spawn_celery.client import Client
    from spawn_celery.services import Services

    return Client(services=Services.create(settings))


def _cron(manifest: Manifest, settings: Settings, stop: threading.Event) -> int:
    _need("apscheduler", "cron")
    from spawn_celery.activators.cron import CronActivator

    client = _client(settings)
    activator = CronActivator(manifest, client=client, lock=client.services.redis)
    activator.run(stop)
    return 0


def _rabbitmq(manifest: Manifest, settings: Settings, stop: threading.Event) -> int:
    _need("pika", "rabbitmq")
    from spawn_celery.activators.rabbitmq import RabbitActivator, RabbitOptions

    activator = RabbitActivator(
        manifest, client=_client(settings), options=RabbitOptions.of(manifest, settings), stop=stop
    )
    activator.run()
    return 0
