"""Fixtures of the monitoring tests: one real worker with metrics on (Redis database 8), a client, free ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.services import Services
from tests.support import WorkerProcess, flush_redis, make_settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], object], timeout: float = 15.0, what: str = "condition", fail: bool = True
) -> object:
    """Poll ``check`` until it returns something truthy (returned); on timeout fail the test, or return None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (requests.ConnectionError, requests.Timeout):
            value = None
        if value:
            return value
        time.sleep(0.1)
    if fail:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")
    return None


@pytest.fixture(scope="package")
def mon_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring")


@pytest.fixture(scope="package")
def mon_settings(mon_dir: Path) -> Settings:
    s = make_settings(mon_dir, redis_db=8, metrics_port=free_port())
    flush_redis(s)
    return s


@pytest.fixture(scope="package")
def mon_worker(mon_settings: Settings, mon_dir: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(mon_settings, app="tests.monitoring.apps:system", log_path=mon_dir / "worker.log").start()
    yield w
    w.stop()


@pytest.fixture(scope="package")
def mon_client(mon_settings: Settings, mon_worker: WorkerProcess) -> Client:
    return Client(services=Services.create(mon_settings))
