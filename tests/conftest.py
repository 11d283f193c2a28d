"""Shared fixtures. Tests use the real services of the machine (Redis, RabbitMQ, PostgreSQL, MariaDB) and real
Celery worker processes. Each group of tests that starts its own workers uses its own Redis database number:
session (this file) 1, semantics 3, gateway 4, activators 5, monitoring 8, reliability 9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.services import Services
from tests.support import ReplyDropper, WorkerProcess, flush_redis, make_settings


@pytest.fixture
def dropper() -> Iterator[ReplyDropper]:
    """A link to the real Redis (db chosen by the test's URL) that can lose replies or commands."""
    proxy = ReplyDropper()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory for the whole session."""
    return tmp_path_factory.mktemp("spawn")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Settings:
    """Settings of the session's workers (Redis db 1, SQLite statestore)."""
    s = make_settings(session_dir, redis_db=1)
    flush_redis(s)
    return s


@pytest.fixture(scope="session")
def worker(settings: Settings, session_dir: Path) -> Iterator[WorkerProcess]:
    """Two worker processes hosting ``tests.apps:system`` for the whole session."""
    w = WorkerProcess(settings, log_path=session_dir / "worker.log").start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def client(settings: Settings, worker: WorkerProcess) -> Client:
    """A client talking to the session worker."""
    return Client(services=Services.create(settings))
