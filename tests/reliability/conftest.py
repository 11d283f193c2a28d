"""Fixtures of the fault-injection suite: Redis database 9, fresh settings and worker nodes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.reliability.faults import RUNNING_LOADS, Node, close_client, new_client
from tests.support import make_settings

REDIS_DB = 9
SUITE_LEASE_S = 240  # renewed at every test's start; a crashed run frees the database within 4 minutes
SUITE_WAIT_S = 200
SUITE_LOCK = "spawn-reliability-suite"


@pytest.fixture(scope="session", autouse=True)
def exclusive_database() -> Iterator[redis.lock.Lock]:
    """One run of this suite at a time on Redis db 9.

    Two runs at once (two people running the whole test suite) would consume each other's queues and empty each
    other's database: every exact assertion here would fail for a reason that has nothing to do with the code.
    """
    client = redis.Redis(port=6379, db=REDIS_DB)
    lock = client.lock(SUITE_LOCK, timeout=SUITE_LEASE_S, blocking_timeout=SUITE_WAIT_S)
    if not lock.acquire():
        raise RuntimeError(f"another run of tests/reliability held Redis db {REDIS_DB} for {SUITE_WAIT_S} s")
    try:
        yield lock
    finally:
        lock.release()
        client.close()


@pytest.fixture(autouse=True)
def stop_loads() -> Iterator[None]:
    """Stop client load a failed test left running, so that it does not spill into the next test."""
    yield
    while RUNNING_LOADS:
        load = RUNNING_LOADS.pop()
        load.stop()
        load.join(timeout=60)


@pytest.fixture
def make(tmp_path: Path, exclusive_database: redis.lock.Lock) -> Callable[..., Settings]:
    """Build this test's settings (Redis db 9 unless ``redis_url`` is given, SQLite under tmp_path) and empty
    its Redis database."""
    exclusive_database.reacquire()

    def build(**overrides: object) -> Settings:
        settings = make_settings(tmp_path, redis_db=REDIS_DB, **overrides)
        _empty(settings.redis_url, keep=SUITE_LOCK)
        return settings

    return build


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Make worker nodes (``nodes(settings, "a")``); any still running at the end is killed."""
    made: list[Node] = []

    def node(settings: Settings, name: str, *, concurrency: int = 1, env: dict[str, str] | None = None) -> Node:
        n = Node(settings, name, tmp_path / f"worker-{name}.log", concurrency, dict(env or {}))
        made.append(n)
        return n

    yield node
    for n in made:
        n.resume()
        n.kill()


@pytest.fixture
def clients() -> Iterator[Callable[[Settings], Client]]:
    """Make clients; their connections are closed at the end."""
    made: list[Client] = []

    def client(settings: Settings) -> Client:
        made.append(new_client(settings))
        return made[-1]

    yield client
    for c in made:
        close_client(c)


def _empty(url: str, *, keep: str) -> None:
    """Delete every key of the database at ``url`` except ``keep`` (the suite's lock)."""
    client = redis.Redis.from_url(url)
    try:
        doomed = [k for k in client.scan_iter(count=1000) if k != keep.encode()]
        for i in range(0, len(doomed), 1000):
            client.delete(*doomed[i : i + 1000])
    finally:
        client.close()
