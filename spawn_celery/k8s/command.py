r"""``spawn-celery k8s render``: print the Kubernetes manifests of a configuration as multi-document YAML.

Example::

    spawn-celery k8s render --system shop --image registry.example/spawn-celery:0.1.0 \\
        --app shop.actors:system --worker-group default --worker-group hot=cart,checkout \\
        --workers-min 2 --workers-max 20 --activator k8s/base/files/cron-activator.yaml | kubectl apply -f -

The ConfigMap comes from flags and the current settings; the Secret (statestore key, database URL) is printed only
with ``--with-secret``, from ``SPAWN_STATESTORE_KEY`` and ``SPAWN_DATABASE_URL`` (development clusters).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError
from spawn_celery.k8s import objects as o
from spawn_celery.k8s.objects import ACTIVATOR_IMAGE, GATEWAY_IMAGE, WORKER_IMAGE
from spawn_celery.k8s.render import (
    DEFAULT_APP,
    StackConfig,
    WorkerGroup,
    render_stack,
    to_yaml,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``k8s`` subcommands."""
    sub = parser.add_subparsers(dest="k8s_command", required=True, metavar="SUBCOMMAND")
    render = sub.add_parser("render", help="print the manifests of the whole stack as YAML")
    render.add_argument("--system", default="", help="actor system name (default PROXY_ACTOR_SYSTEM_NAME)")
    render.add_argument("--namespace", default="spawn", help="namespace of every object")
    render.add_argument("--image", default="", help="one image for every process (overrides the three below)")
    render.add_argument("--gateway-image", default=GATEWAY_IMAGE)
    render.add_argument("--worker-image", default=WORKER_IMAGE)
    render.add_argument("--activator-image", default=ACTIVATOR_IMAGE)
    render.add_argument("--app", default=DEFAULT_APP, help="MODULE:ATTR of the actors the workers host")
    render.add_argument("--redis-url", default="redis://redis:6379/0", help="SPAWN_REDIS_URL inside the cluster")
    render.add_argument("--no-redis", action="store_true", help="omit the development Redis (use a managed one)")
    render.add_argument("--gateway-replicas", type=int, default=2)
    render.add_argument(
        "--worker-group",
        action="append",
        default=[],
        metavar="NAME[=ACTOR,...]",
        help="a worker Deployment consuming those actors' queues (none listed: all); repeatable",
    )
    render.add_argument("--workers-min", type=int, default=1, help="HPA minReplicas of each worker group")
    render.add_argument("--workers-max", type=int, default=10, help="HPA maxReplicas of each worker group")
    render.add_argument("--concurrency", type=int, default=0, help="worker processes per pod (0 = CPUs)")
    render.add_argument("--cpu-percent", type=int, default=80, help="HPA CPU Utilization target")
    render.add_argument("--memory-percent", type=int, default=80, help="HPA memory Utilization target")
    render.add_argument(
        "--activator",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="an Activator manifest (Cron or AMQP) to deploy; repeatable",
    )
    render.add_argument(
        "--with-secret",
        action="store_true",
        help="also print the Secret from SPAWN_STATESTORE_KEY and SPAWN_DATABASE_URL (dev only)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the manifests to stdout.

    Raises:
        ConfigError: a flag or a manifest file is wrong; the message names it.
    """
    docs = render_stack(stack_config(args, settings))
    sys.stdout.write(to_yaml(docs))
    return 0


def stack_config(args: argparse.Namespace, settings: Settings) -> StackConfig:
    """Build the :class:`StackConfig` from the flags and settings.

    Raises:
        ConfigError: a flag or a manifest file is wrong.
    """
    if args.workers_min < 1 or args.workers_max < args.workers_min:
        raise ConfigError(
            "--workers-min/--workers-max", f"{args.workers_min}/{args.workers_max}", "need 1 <= min <= max"
        )
    groups = tuple(
        WorkerGroup(
            name=name,
            actors=actors,
            min_replicas=args.workers_min,
            max_replicas=args.workers_max,
            concurrency=args.concurrency,
            cpu_percent=args.cpu_percent,
            memory_percent=args.memory_percent,
        )
        for name, actors in (_parse_group(text) for text in args.worker_group or ["default"])
    )
    system = args.system or settings.actor_system
    config = {
        "PROXY_ACTOR_SYSTEM_NAME": system,
        "PROXY_HTTP_PORT": str(settings.http_port),
        "SPAWN_REDIS_URL": args.redis_url,
        "SPAWN_METRICS_PORT": str(o.METRICS_PORT),
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus",
        "SPAWN_LOG_LEVEL": settings.log_level,
    }
    secret: dict[str, str] | None = None
    if args.with_secret:
        if not settings.statestore_key:
            raise ConfigError("SPAWN_STATESTORE_KEY", "", "is required with --with-secret (spawn-celery keygen)")
        secret = {"SPAWN_STATESTORE_KEY": settings.statestore_key, "SPAWN_DATABASE_URL": settings.database_url}
    return StackConfig(
        system=system,
        namespace=args.namespace,
        gateway_image=args.image or args.gateway_image,
        worker_image=args.image or args.worker_image,
        activator_image=args.image or args.activator_image,
        app=args.app,
        config=config,
        secret_data=secret,
        gateway_replicas=args.gateway_replicas,
        workers=groups,
        activators=tuple(_load_activator(path) for path in args.activator),
        with_redis=not args.no_redis,
    )


def _parse_group(text: str) -> tuple[str, tuple[str, ...]]:
    name, _, actors = text.partition("=")
    if not name or not name.replace("-", "").isalnum() or name != name.lower():
        raise ConfigError("--worker-group", text, "the name must be lower-case letters, digits and '-'")
    return name, tuple(a.strip() for a in actors.split(",") if a.strip())


def _load_activator(path: Path) -> dict[str, Any]:
    try:
        manifest = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("--activator", str(path), f"cannot read the manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "Activator":
        raise ConfigError("--activator", str(path), "is not an Activator manifest (kind: Activator)")
    if not (manifest.get("metadata") or {}).get("name"):
        raise ConfigError("--activator", str(path), "needs metadata.name")
    return manifest
