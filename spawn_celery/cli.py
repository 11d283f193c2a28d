"""The ``spawn-celery`` command line.

Each subcommand lives in the module that owns its noun. A command module exposes
``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace, settings: Settings) -> int``; it imports optional extras (pika, apscheduler,
kubernetes) inside ``run`` only, so ``spawn-celery --help`` works without them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, SpawnError

COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("spawn_celery.dev", "run everything on this machine: Redis (embedded if needed), worker, gateway"),
    "worker": ("spawn_celery.worker", "run a Celery worker hosting actors"),
    "invoke": ("spawn_celery.commands", "invoke an actor action and print the reply"),
    "state": ("spawn_celery.commands", "show an actor's current state and revision"),
    "restore": ("spawn_celery.commands", "restore an actor's state to a stored revision"),
    "keygen": ("spawn_celery.commands", "print a new SPAWN_STATESTORE_KEY"),
    "housekeeper": ("spawn_celery.housekeeper", "run timers, scheduled calls, snapshots, deactivation alone"),
    "gateway": ("spawn_celery.gateway.server", "serve Spawn's HTTP/protobuf protocol (development server)"),
    "activator": ("spawn_celery.activators.command", "run a cron or RabbitMQ activator from a manifest"),
    "k8s": ("spawn_celery.k8s.command", "render Kubernetes manifests"),
    "operator": ("spawn_celery.k8s.operator", "run the Kubernetes operator for the spawn-eigr.io CRDs"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="spawn-celery", description="Spawn actors on Celery and Redis")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a part that is not installed still shows in --help
            sub.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            continue
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        adder(command_parser)
        runner = getattr(module, f"run_{name}", None) or module.run
        command_parser.set_defaults(_run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spawn-celery`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"spawn-celery: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"
    )
    runner = getattr(args, "_run", None)
    if runner is None:
        parser.error(f"command {args.command!r} is not available in this installation")
    try:
        return int(runner(args, settings) or 0)
    except ConfigError as exc:
        print(f"spawn-celery: configuration error: {exc}", file=sys.stderr)
        return 2
    except SpawnError as exc:
        print(f"spawn-celery: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
