"""Fixtures of the activator tests: Redis database 5, one worker hosting ``tests.activators.apps``, real
activator subprocesses (``spawn-celery activator ...``) and a real RabbitMQ on 127.0.0.1:5672."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.services import Services
from tests.support import ROOT, WorkerProcess, env_of, make_settings

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture(scope="package")
def act_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("activators")


@pytest.fixture(scope="package")
def act_settings(act_dir: Path) -> Settings:
    # Not flushed: every test names its own actors, queues and activators, so two runs of this package at once
    # (sharing database 5) do not disturb each other.
    return make_settings(act_dir, redis_db=5)


@pytest.fixture(scope="package")
def act_worker(act_settings: Settings, act_dir: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(act_settings, app="tests.activators.apps:system", concurrency=4, log_path=act_dir / "worker.log")
    yield w.start()
    w.stop()


@pytest.fixture(scope="package")
def act_client(act_settings: Settings, act_worker: WorkerProcess) -> Client:
    return Client(services=Services.create(act_settings))


@dataclass
class ActivatorProcess:
    """A real ``spawn-celery activator <kind> -f FILE`` subprocess."""

    settings: Settings
    kind: str
    manifest: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> ActivatorProcess:
        args = [sys.executable, "-m", "spawn_celery.cli", "activator", self.kind, "-f", str(self.manifest)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, env=env_of(self.settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        return self

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"activator exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"{text!r} x{count} not seen in {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


Start = Callable[[str, str], ActivatorProcess]
"""Starts an activator process: ``start(kind, manifest_text)``."""


@pytest.fixture
def activators(act_settings: Settings, tmp_path: Path) -> Iterator[Start]:
    """Start activator processes from manifest text; all are stopped at the end of the test."""
    started: list[ActivatorProcess] = []

    def start(kind: str, manifest_text: str) -> ActivatorProcess:
        path = tmp_path / f"{kind}-{len(started)}.yaml"
        path.write_text(manifest_text)
        proc = ActivatorProcess(act_settings, kind, path, tmp_path / f"{kind}-{len(started)}.log").spawn()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)


class Rabbit:
    """The real RabbitMQ: publish, read dead letters, drop an activator's connection; deletes its queues after."""

    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.channel = self.connection.channel()
        self.queues: list[str] = []

    def queue(self, prefix: str = "act") -> str:
        name = unique(prefix)
        self.queues.append(name)
        return name

    def publish(self, queue: str, body: bytes, **props: Any) -> None:
        self.channel.basic_publish("", queue, body, properties=pika.BasicProperties(delivery_mode=2, **props))

    def depth(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def drain(self, queue: str) -> list[tuple[Any, bytes]]:
        out: list[tuple[Any, bytes]] = []
        while True:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    def close_connections(self, connection_name: str) -> int:
        """Close, from the server side, every connection whose client named itself ``connection_name``."""
        listing = subprocess.run(
            ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        closed = 0
        for line in listing.splitlines():
            pid, _, properties = line.partition("\t")
            if f'{{"connection_name","{connection_name}"}}' in properties:
                subprocess.run(
                    ["rabbitmqctl", "close_connection", pid, "test: dropped"], capture_output=True, check=True
                )
                closed += 1
        return closed

    def close(self) -> None:
        for name in self.queues:
            for queue in (name, f"{name}.dlq"):
                self.channel.queue_delete(queue)
            self.channel.exchange_delete(f"{name}.dlx")
        self.connection.close()


@pytest.fixture
def rabbit() -> Iterator[Rabbit]:
    helper = Rabbit()
    yield helper
    helper.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
