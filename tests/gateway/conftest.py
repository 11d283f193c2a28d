"""Gateway test fixtures: a real gateway (gunicorn or the dev server) on a real port, real workers, a real SDK
host process. All on Redis database 4."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from spawn_celery.config import Settings
from tests.support import ROOT, WorkerProcess, env_of, flush_redis, make_settings

PB = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = env_of(settings)
    env.update(settings.to_env())
    env.update(extra)
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}; log: {log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not up in {timeout} s; log: {log}")


@dataclass
class Proc:
    """A real child process serving HTTP on ``port``."""

    args: list[str]
    env: dict[str, str]
    port: int
    health: str = "/health"
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="spawn-gw-", suffix=".log")[1]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_http(self.url + self.health, self.proc, self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def dev_gateway(settings: Settings, **extra: str) -> Proc:
    port = free_port()
    args = [sys.executable, "-m", "spawn_celery.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    return Proc(args, child_env(settings, **extra), port)


def gunicorn_gateway(settings: Settings, metrics_dir: Path, **extra: str) -> Proc:
    port = free_port()
    metrics_dir.mkdir(parents=True, exist_ok=True)
    values = {"PROXY_HTTP_HOST": "127.0.0.1", "PROXY_HTTP_PORT": str(port),
              "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "SPAWN_GATEWAY_WORKERS": "2",
              "SPAWN_GATEWAY_IMPORTS": "spawn_celery.examples.domain_pb2", **extra}
    env = child_env(settings, **values)
    args = [sys.executable, "-m", "gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:app"]
    return Proc(args, env, port)


def sdk_host(settings: Settings, port: int, proxy: str) -> Proc:
    args = [sys.executable, "-m", "tests.gateway.sdkhost", "--port", str(port), "--proxy", proxy]
    return Proc(args, child_env(settings), port, health="/nothing")


@pytest.fixture(scope="package")
def gw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="package")
def host_port() -> int:
    return free_port()


@pytest.fixture(scope="package")
def gw_settings(gw_dir: Path, host_port: int) -> Settings:
    s = make_settings(gw_dir, redis_db=4, user_function_port=host_port, max_body_bytes=256 * 1024,
                      drain_delay_ms=300, drain_timeout_ms=10_000)
    flush_redis(s)
    return s


@pytest.fixture(scope="package")
def worker(gw_settings: Settings, gw_dir: Path) -> Iterator[WorkerProcess]:
    """The Python actors of tests.apps."""
    w = WorkerProcess(gw_settings, log_path=gw_dir / "worker.log").start()
    yield w
    w.stop()


@pytest.fixture(scope="package")
def remote_worker(gw_settings: Settings, gw_dir: Path) -> Iterator[WorkerProcess]:
    """``spawn-celery worker --remote`` alone: serves the actors of remote SDK hosts as they register."""
    settings = gw_settings.replace(host_timeout_ms=1500)
    w = WorkerProcess(settings, app="", log_path=gw_dir / "remote-worker.log", extra_args=["--remote"]).start()
    yield w
    w.stop()


@pytest.fixture(scope="package")
def gateway(gw_settings: Settings, gw_dir: Path, worker: WorkerProcess) -> Iterator[Proc]:
    """The gateway under gunicorn (2 gthread workers, multiprocess metrics)."""
    g = gunicorn_gateway(gw_settings, gw_dir / "metrics").start()
    yield g
    g.stop(signal.SIGINT)  # quick shutdown: draining is tested on its own


@pytest.fixture(scope="package")
def host(gw_settings: Settings, gateway: Proc, host_port: int, remote_worker: WorkerProcess) -> Iterator[Proc]:
    """The SDK-like remote host, registered with the gateway."""
    h = sdk_host(gw_settings, host_port, gateway.url).start()
    deadline = time.monotonic() + 20
    while b"registered" not in h.log.read_bytes():
        assert time.monotonic() < deadline, h.log.read_text()
        time.sleep(0.05)
    yield h
    h.stop()


@pytest.fixture()
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
