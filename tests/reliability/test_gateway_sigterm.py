"""SIGTERM to the gateway under load: readiness 503, new calls refused, in-flight calls answered, nothing lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.keys import lock
from tests.reliability.faults import SYSTEM, Node, spawn_counter, wait_for
from tests.support import ROOT, env_of

PORT = 9391


class Gateway:
    """A ``spawn-celery gateway`` subprocess."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        """Prepare, do not start."""
        self.settings, self.log_path = settings, log_path
        self.url = f"http://127.0.0.1:{PORT}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Gateway:
        """Start and wait until it is ready."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spawn_celery.cli", "gateway", "--host", "127.0.0.1", "--port", str(PORT)],
                env=env_of(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for(lambda: self.readiness() == 200, 30, "the gateway to be ready", every=0.1)
        return self

    def readiness(self) -> int:
        """The status of ``/health/readiness`` (0 if nothing answers)."""
        try:
            return requests.get(self.url + "/health/readiness", timeout=2).status_code
        except requests.ConnectionError:
            return 0

    def invoke(self, actor: str, action: str, body: Any = None) -> requests.Response:
        """POST to the JSON route."""
        return requests.post(
            f"{self.url}/api/v1/system/{SYSTEM}/actors/{actor}/actions/{action}", json=body, timeout=30
        )

    def stop(self) -> None:
        """Kill it if still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def gateway_of(tmp_path: Path) -> Iterator[Callable[[Settings], Gateway]]:
    """Start gateways; killed at the end if still running."""
    made: list[Gateway] = []

    def start(settings: Settings) -> Gateway:
        made.append(Gateway(settings, tmp_path / "gateway.log").start())
        return made[-1]

    yield start
    for g in made:
        g.stop()


def test_sigterm_to_the_gateway_under_load_answers_in_flight_calls_and_loses_nothing(
    make: Callable[..., Settings],
    nodes: Callable[..., Node],
    clients: Callable[[Settings], Client],
    gateway_of: Callable[[Settings], Gateway],
) -> None:
    # Given a worker node and a gateway that waits 3 s after SIGTERM before it stops (load balancers notice)
    settings = make(drain_delay_ms=3_000, drain_timeout_ms=20_000)
    nodes(settings, "a", concurrency=2).start()
    client = clients(settings)
    gateway = gateway_of(settings)
    hot, slow_actor = spawn_counter(client), spawn_counter(client)
    # When 6 HTTP clients keep incrementing one actor, and a slow call (2 s) is in flight on another
    answered: list[int] = []
    refused: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                response = gateway.invoke(hot, "increment")
            except requests.ConnectionError:
                return  # the gateway is gone: this call was never received
            if response.status_code == 200:
                answered.append(response.json()["revision"])
            else:
                refused.append(response.status_code)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    slow: dict[str, requests.Response] = {}
    caller = threading.Thread(target=lambda: slow.setdefault("r", gateway.invoke(slow_actor, "slow", {"s": 2})))
    caller.start()
    wait_for(lambda: client.services.redis.exists(lock(SYSTEM, slow_actor)), 10, "the slow call to run")
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGTERM)
    # Then readiness turns 503 at once while the gateway drains
    assert wait_for(lambda: gateway.readiness() == 503, 2.5, "readiness 503")
    # And the in-flight slow call is answered, and the gateway exits cleanly once drained
    caller.join(10)
    assert slow["r"].status_code == 200 and slow["r"].json()["revision"] == 1
    assert gateway.proc.wait(30) == 0
    stop.set()
    for t in threads:
        t.join(10)
    # Then new calls during the drain were refused with 503 (never applied), and every answered increment was
    # applied exactly once: the actor's state is exactly the number of 200 answers, each reply a distinct revision
    assert refused and set(refused) == {503}
    assert sorted(answered) == list(range(1, len(answered) + 1))
    view = client.state(SYSTEM, hot)
    assert (view.value.value, view.revision) == (len(answered), len(answered))
    assert client.state(SYSTEM, slow_actor).value.value == 1
