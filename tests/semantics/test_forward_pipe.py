"""Forward and pipe: the caller gets the final actor's reply; chains are bounded; no worker slot is held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import ChainTooDeep
from tests.semantics.conftest import SYSTEM, notes
from tests.support import WorkerProcess


def test_forward_passes_the_original_request_and_returns_the_targets_reply(client: Client) -> None:
    assert client.invoke(SYSTEM, "front", "fwd", {"q": 1}) == {"echo": {"q": 1}, "caller": "front"}


def test_pipe_feeds_the_reply_on_and_returns_the_last_reply(client: Client) -> None:
    assert client.invoke(SYSTEM, "front", "pip", {"x": 4}) == {"x": 10, "caller": "front"}


def test_cyclic_pipe_stops_at_the_depth_bound_with_a_clear_error(client: Client, side: redis.Redis) -> None:
    # Given SPAWN_MAX_CHAIN_DEPTH=5 and an actor piping to itself
    with pytest.raises(ChainTooDeep, match=r"pipe from looper.loop to looper.loop: .*6 hops.*limit of 5"):
        client.invoke(SYSTEM, "looper", "loop", {"hops": 0})
    # Then the call and 5 hops ran (each committed on its own); the refused 6th hop changed nothing
    assert notes(side, "loop") == [0, 1, 2, 3, 4, 5]
    assert client.state(SYSTEM, "looper").value == {"n": 5}


@pytest.fixture(scope="module")
def solo_worker(sem_settings: Settings, sem_dir: Path, sem_worker: WorkerProcess) -> Iterator[WorkerProcess]:
    """A worker with ONE process hosting system ``semsolo`` (its own queues)."""
    w = WorkerProcess(sem_settings, app="tests.semantics.apps:solo", concurrency=1, log_path=sem_dir / "solo.log")
    w.start()
    yield w
    w.stop()


def test_chain_completes_on_a_single_process_worker(client: Client, solo_worker: WorkerProcess) -> None:
    # solo_a forwards to solo_b, which pipes to solo_c: three invocations through one worker slot
    for _ in range(3):
        assert client.invoke("semsolo", "solo_a", "go", ["a"], timeout=30) == ["a", "b", "c"]
