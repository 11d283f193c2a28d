"""Test support: real worker processes and settings for tests (no mocks: real Redis, real Celery workers)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from spawn_celery.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def make_settings(tmp: Path, *, redis_db: int = 1, **overrides: object) -> Settings:
    """Settings for a test run: its own Redis database number, a SQLite statestore under ``tmp``, a fresh key."""
    values: dict[str, object] = {
        "redis_url": f"redis://127.0.0.1:6379/{redis_db}",
        "database_url": f"sqlite:///{tmp / 'spawn.db'}",
        "statestore_key": base64.b64encode(os.urandom(32)).decode(),
        "visibility_timeout_s": 10,
        "tick_ms": 20,
        "invoke_timeout_ms": 20_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def env_of(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAWN_", "PROXY_", "USER_FUNCTION_"))}
    env.update(settings.to_env())
    env["PYTHONPATH"] = str(ROOT)
    return env


def hold(request: dict[str, object] | None, default_s: float = 1.0) -> None:
    """What a test actor's slow action does: sleep ``request["s"]`` seconds or, with ``request["gate"]`` (a Redis
    list at ``request["url"]``), wait until the test opens that gate (:func:`open_gate`), ``s`` seconds at most.

    A gated action holds its actor's lock exactly as long as the test needs, on a slow machine and a fast one."""
    doc = request or {}
    seconds = float(doc.get("s", default_s))  # type: ignore[arg-type]
    if not doc.get("gate"):
        time.sleep(seconds)
        return
    client = redis.Redis.from_url(str(doc["url"]))
    try:
        client.blpop([str(doc["gate"])], timeout=seconds)
    finally:
        client.close()


def gated(settings: Settings, gate: str, seconds: float = 30.0) -> dict[str, object]:
    """The request of a slow action that waits for ``gate`` (``seconds`` at most) on the Redis of ``settings``."""
    return {"s": seconds, "gate": gate, "url": settings.redis_url}


def open_gate(settings: Settings, gate: str, times: int = 1) -> None:
    """Let ``times`` gated actions (waiting or still to come) finish."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.rpush(gate, *["1"] * times)
        client.expire(gate, 120)
    finally:
        client.close()


def flush_redis(settings: Settings) -> None:
    """Empty the test's Redis database."""
    redis.Redis.from_url(settings.redis_url).flushdb()


class ReplyDropper:
    """A TCP proxy to the real Redis that loses replies: the command reaches Redis and runs, but the connection is
    dropped instead of passing the reply back, as when a network link breaks at the wrong moment.

    ``armed`` set: the next reply is lost. ``every`` > 0: every ``every``-th reply (counted over all connections) is
    lost. ``refuse`` > 0: that many next commands are lost before they reach Redis (the link breaks the other
    way: nothing ran). ``dropped`` holds the replies that were lost.
    """

    def __init__(self, upstream_port: int = 6379, every: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.upstream_port, self.every = upstream_port, every
        self.armed = threading.Event()
        self.dropped: list[bytes] = []
        self.refuse = 0
        self._replies = 0
        self._count = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(downstream, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, True), daemon=True).start()

    def _lose(self) -> bool:
        with self._count:
            self._replies += 1
            if self.armed.is_set() or (self.every and self._replies % self.every == 0):
                self.armed.clear()
                return True
            return False

    def _refused(self) -> bool:
        with self._count:
            if self.refuse > 0:
                self.refuse -= 1
                return True
            return False

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._lose():
                    self.dropped.append(data)
                    break
                if not replies and self._refused():
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # a bare close would wait for the other direction's blocked recv
            end.close()

    def close(self) -> None:
        """Stop accepting connections (open ones run on until either end closes)."""
        self.server.close()


@dataclass
class WorkerProcess:
    """A real ``spawn-celery worker`` subprocess."""

    settings: Settings
    app: str = "tests.apps:system"
    concurrency: int = 2
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start the worker and wait until it consumes."""
        args = [sys.executable, "-m", "spawn_celery.cli", "worker", "-c", str(self.concurrency), *self.extra_args]
        if self.app:
            args += ["--app", self.app]
        if self.log_path is None:
            import tempfile

            self.log_path = Path(tempfile.mkstemp(prefix="spawn-worker-", suffix=".log")[1])
        start_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                args, env=env_of(self.settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log: {self.log_path}")
            if b" ready." in self.log_path.read_bytes()[start_size:]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout} s; log: {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for exit; return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        """SIGKILL the worker's main process and its pool children."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = _children(self.proc.pid)
        self.proc.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def pool_pids(self) -> list[int]:
        """PIDs of the pool processes."""
        return _children(self.proc.pid) if self.proc else []


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]
