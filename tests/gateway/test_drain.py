"""SIGTERM drains the gateway: readiness 503 at once, new invocations 503, in-flight ones answered, then exit.
Run against the development server and against gunicorn, each a real process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import requests

from spawn_celery import keys
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import CounterValue
from spawn_celery.proto import protocol_pb2
from tests.gateway.conftest import Proc, dev_gateway, gunicorn_gateway
from tests.gateway.helpers import eventually, invoke, post, spawn, value
from tests.gateway.sdkhost import registration
from tests.support import WorkerProcess, gated, open_gate


@pytest.mark.parametrize("server", ["dev", "gunicorn"])
def test_sigterm_drains(server: str, gw_settings: Settings, gw_dir: Path, worker: WorkerProcess) -> None:
    starters: dict[str, Callable[[], Proc]] = {
        "dev": lambda: dev_gateway(gw_settings),
        "gunicorn": lambda: gunicorn_gateway(gw_settings, gw_dir / "drain-metrics", SPAWN_GATEWAY_WORKERS="1"),
    }
    gw = starters[server]().start()
    try:
        drains(gw, gw_settings)
    finally:
        gw.stop(signal.SIGKILL)


def drains(gw: Proc, settings: Settings) -> None:
    http = requests.Session()
    _, _, name = spawn(http, gw.url, "tests", "counter")
    results: list[tuple[int, protocol_pb2.InvocationResponse]] = []
    # Given: an invocation in flight (its action waits for the test, holding the actor's lock)
    gate = f"gate:{name}"
    held = gated(settings, gate)
    slow = threading.Thread(
        target=lambda: results.append(invoke(requests.Session(), gw.url, "tests", name, "slow", held))
    )
    slow.start()
    state = redis.Redis.from_url(settings.redis_url)
    assert eventually(lambda: state.exists(keys.lock("tests", name)), timeout=15)
    state.close()
    # When: the gateway gets SIGTERM
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    # Then: readiness turns 503 at once, liveness stays 200, and new invocations are refused with 503 answers
    assert eventually(lambda: http.get(gw.url + "/health/readiness").status_code == 503, timeout=5)
    assert http.get(gw.url + "/health/liveness").status_code == 200
    status, answer = invoke(requests.Session(), gw.url, "tests", name, "increment")
    assert status == 503 and answer.status.status == protocol_pb2.ERROR and "shutting down" in answer.status.message
    status, registered = post(http, gw.url + "/api/v1/system", registration(), protocol_pb2.RegistrationResponse)
    assert status == 503 and registered.status.status == protocol_pb2.ERROR
    open_gate(settings, gate)
    # and the in-flight invocation is answered, then the process exits cleanly
    slow.join(10)
    assert results and results[0][0] == 200 and value(results[0][1]) == CounterValue(value=1)
    assert gw.proc.wait(15) == 0
