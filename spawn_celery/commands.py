"""Small CLI commands: ``invoke``, ``state``, ``restore`` and ``keygen``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spawn_celery import codec
from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError


def add_invoke_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery invoke``."""
    parser.add_argument("system")
    parser.add_argument("actor")
    parser.add_argument("action")
    parser.add_argument("--data", default=None, help="JSON payload (sent as JSONType unless --type is given)")
    parser.add_argument("--type", default="", help="full protobuf message name to build from --data (see --import)")
    parser.add_argument("--import", dest="imports", action="append", default=[], help="module to import first (_pb2)")
    parser.add_argument("--parent", default="", help="spawn the actor from this unnamed template first")
    parser.add_argument("--async", dest="async_mode", action="store_true", help="do not wait for the reply")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the reply")


def run_invoke(args: argparse.Namespace, settings: Settings) -> int:
    """Invoke an action and print the reply as JSON."""
    import importlib

    for name in args.imports:
        importlib.import_module(name)
    payload = None
    if args.data is not None:
        try:
            payload = json.loads(args.data)
        except ValueError as exc:
            raise ConfigError("--data", args.data, f"not JSON: {exc}") from None
    if args.type:
        payload = _message(args.type, payload)
    client = Client(settings)
    value = client.invoke(
        args.system,
        args.actor,
        args.action,
        payload,
        parent=args.parent,
        async_mode=args.async_mode,
        timeout=args.timeout,
    )
    print(json.dumps({"status": "ok", "value": codec.to_json(value)}, indent=None))
    return 0


def _message(type_name: str, data: Any) -> object:
    from google.protobuf import json_format

    cls = codec.message_class(type_name)
    if cls is None:
        raise ConfigError("--type", type_name, "unknown message type: pass --import with its _pb2 module")
    return json_format.ParseDict(data or {}, cls())


def add_state_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery state``."""
    parser.add_argument("system")
    parser.add_argument("actor")
    parser.add_argument("--import", dest="imports", action="append", default=[], help="module to import first")


def run_state(args: argparse.Namespace, settings: Settings) -> int:
    """Print an actor's current state, revision and tags as JSON."""
    import importlib

    for name in args.imports:
        importlib.import_module(name)
    view = Client(settings).state(args.system, args.actor)
    print(
        json.dumps(
            {
                "revision": view.revision,
                "active": view.active,
                "type": view.type_url,
                "tags": view.tags,
                "state": codec.to_json(view.value),
            }
        )
    )
    return 0


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery restore``."""
    parser.add_argument("system")
    parser.add_argument("actor")
    parser.add_argument("revision", type=int)


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Restore an actor's state to a stored revision (recorded as a new revision)."""
    value = Client(settings).restore(args.system, args.actor, args.revision)
    print(json.dumps({"status": "ok", "state": codec.to_json(value)}))
    return 0


def add_keygen_arguments(parser: argparse.ArgumentParser) -> None:
    """``spawn-celery keygen`` takes no arguments."""


def run_keygen(args: argparse.Namespace, settings: Settings) -> int:
    """Print a fresh base64 SPAWN_STATESTORE_KEY."""
    from spawn_celery.cipher import generate_key

    sys.stdout.write(generate_key() + "\n")
    return 0
