"""Fixtures of the semantics tests: one 4-process worker hosting ``tests.semantics.apps:system`` (Redis db 3)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.services import Services
from tests.support import WorkerProcess, flush_redis, make_settings

SYSTEM = "semtests"


@pytest.fixture(scope="package")
def sem_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("semantics")


@pytest.fixture(scope="package")
def sem_settings(sem_dir: Path) -> Settings:
    s = make_settings(sem_dir, redis_db=3, max_chain_depth=5)
    flush_redis(s)
    return s


@pytest.fixture(scope="package")
def sem_worker(sem_settings: Settings, sem_dir: Path) -> Iterator[WorkerProcess]:
    """The shared worker; tests about restarts stop and start this same process object."""
    w = WorkerProcess(sem_settings, app="tests.semantics.apps:system", concurrency=4, log_path=sem_dir / "worker.log")
    w.start()
    yield w
    stop_timers(redis.Redis.from_url(sem_settings.redis_url))
    w.stop()


def stop_timers(side: redis.Redis) -> None:
    """Cancel every timer: tasks finishing during a warm shutdown can stall Celery's prefork pool for 30 s."""
    side.delete("sp:timers", "sp:timerp")
    time.sleep(0.2)


@pytest.fixture(scope="package")
def services(sem_settings: Settings) -> Services:
    return Services.create(sem_settings)


@pytest.fixture(scope="package")
def client(services: Services, sem_worker: WorkerProcess) -> Client:
    return Client(services=services)


@pytest.fixture(scope="package")
def side(sem_settings: Settings) -> redis.Redis:
    """The Redis database of the workers (hot state, registry and the apps' side channel)."""
    return redis.Redis.from_url(sem_settings.redis_url)


def notes(side: redis.Redis, key: str) -> list[Any]:
    """The docs the apps recorded with ``note(key, ...)``."""
    return [json.loads(raw) for raw in side.lrange(f"semtests:{key}", 0, -1)]


def wait_for(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def actor_keys(side: redis.Redis, name: str) -> list[str]:
    """Every Redis key of the runtime (``sp:*``) that names actor ``name`` or holds it as a member."""
    found = [k.decode() for k in side.scan_iter(match=f"sp:*:{SYSTEM}:{name}*") if not k.startswith(b"sp:dn:")]
    member = f"{SYSTEM}\x1f{name}".encode()
    for zset in (b"sp:active", b"sp:dirty"):
        if side.zscore(zset, member) is not None:
            found.append(zset.decode())
    found += [m.decode() for m in side.zrange("sp:timers", 0, -1) if m.startswith(member + b"\x1f")]
    return found
