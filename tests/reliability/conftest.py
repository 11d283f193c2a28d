"""Fixtures of the fault-injection suite: Redis database 9, fresh settings and worker nodes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.reliability.faults import Node, close_client, new_client
from tests.support import flush_redis, make_settings

REDIS_DB = 9


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Settings]:
    """Build this test's settings (Redis db 9 unless ``redis_url`` is given, SQLite under tmp_path) and empty
    its Redis database."""

    def build(**overrides: object) -> Settings:
        settings = make_settings(tmp_path, redis_db=REDIS_DB, **overrides)
        flush_redis(settings)
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
