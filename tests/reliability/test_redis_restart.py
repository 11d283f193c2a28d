"""Redis restarted empty after a graceful stop: state comes back from SQL with its revision."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.reliability.faults import SYSTEM, Node, RedisServer, spawn_counter

PORT = 6390  # our own redis-server: the machine's shared one on 6379 is never stopped


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A throwaway Redis without persistence."""
    s = RedisServer(PORT).start()
    yield s
    s.stop()


def test_state_and_revision_come_back_from_sql_after_redis_restarts_empty(
    server: RedisServer,
    make: Callable[..., Settings],
    nodes: Callable[..., Node],
    clients: Callable[[Settings], Client],
) -> None:
    # Given a named actor and a spawned one whose state is only written to SQL by a graceful stop (write-behind
    # period of one hour), both with a few revisions in hot state
    settings = make(redis_url=server.url)
    worker = nodes(settings, "a").start()
    client = clients(settings)
    lazy = spawn_counter(client, "lazy")
    for _ in range(7):
        client.invoke(SYSTEM, "ledger", "increment")
    for _ in range(5):
        client.invoke(SYSTEM, lazy, "increment")
    assert client.services.statestore.load(SYSTEM, lazy) is None  # nothing written behind yet
    # When the worker stops gracefully and Redis restarts with nothing in it
    assert worker.terminate() == 0
    server.stop()
    server.start()
    assert redis.Redis.from_url(server.url).dbsize() == 0
    worker.start()
    # Then the named actor's state is read back from SQL, at its revision, and continues from it
    view = client.state(SYSTEM, "ledger")
    assert (view.value.value, view.revision, view.active) == (7, 7, False)
    assert client.invoke(SYSTEM, "ledger", "increment").value == 8
    assert client.state(SYSTEM, "ledger").revision == 8
    # And the spawned instance, whose registration died with Redis, is re-spawned by a call that names its
    # template (Spawn's register_ref), and continues from its stored state and revision
    stored = client.services.statestore.load(SYSTEM, lazy)
    assert stored is not None and stored.revision == 5 and stored.parent == "lazy"
    assert client.invoke(SYSTEM, lazy, "increment", parent="lazy").value == 6
    view = client.state(SYSTEM, lazy)
    assert (view.value.value, view.revision, view.active) == (6, 6, True)
