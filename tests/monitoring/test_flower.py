"""Flower shows each invocation under a readable name with readable arguments (real Flower, real broker)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.message import Message
from tests.monitoring.conftest import free_port, wait_until
from tests.support import ROOT


@pytest.fixture(scope="module")
def flower(mon_settings: Settings, mon_dir: Path, mon_client: Client) -> Iterator[str]:
    """A Flower process on the test broker, already receiving events; yields its base URL."""
    port = free_port()
    env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"}
    args = [sys.executable, "-m", "celery", "--broker", mon_settings.broker, "flower",
            f"--port={port}", "--address=127.0.0.1"]
    with open(mon_dir / "flower.log", "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and requests.get(url + "/healthcheck", timeout=2).ok,
                   what=f"Flower to answer (log: {mon_dir / 'flower.log'})")
        mon_client.spawn("mon", "warm-up", "counter")
        wait_until(lambda: _sees_events(url, mon_client), what="Flower to receive task events")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _sees_events(url: str, client: Client) -> bool:
    """Flower subscribes to events a little after it answers HTTP: probe with an invocation."""
    probe = "probe-" + uuid.uuid4().hex
    client.invoke("mon", "warm-up", "increment", invocation_id=probe)
    return bool(wait_until(lambda: requests.get(f"{url}/api/task/info/{probe}", timeout=2).ok, timeout=1.0,
                           what="probe", fail=False))


def test_flower_shows_invocation_by_readable_name_and_arguments(flower: str, mon_client: Client) -> None:
    name = "f-" + uuid.uuid4().hex[:8]
    mon_client.spawn("mon", name, "counter")
    invocation_id = "inv-" + uuid.uuid4().hex
    # When: one invocation runs through the real worker
    mon_client.invoke("mon", name, "increment", Increment(by=2), invocation_id=invocation_id)
    # Then: Flower's HTTP API has it under the invocation id, as "<system>.<actor>.<action>", with readable kwargs
    def task() -> dict[str, object] | None:
        found = requests.get(f"{flower}/api/task/info/{invocation_id}", timeout=5)
        return found.json() if found.ok and found.json().get("state") == "SUCCESS" else None

    info = wait_until(task, what="Flower to see the invocation succeed")
    assert isinstance(info, dict)
    assert info["name"] == f"mon.{name}.increment"
    for shown in ("'system': 'mon'", f"'actor': '{name}'", "'action': 'increment'", f"'id': '{invocation_id}'",
                  "<InvocationRequest, "):
        assert shown in str(info["kwargs"])
    assert info["result"] == "'OK'"
    listed = requests.get(f"{flower}/api/tasks", params={"taskname": f"mon.{name}.increment"}, timeout=5).json()
    assert invocation_id in listed


def test_flower_names_a_task_no_worker_took_yet(flower: str, mon_client: Client) -> None:
    # Given: an invocation sent to a queue nobody consumes (only the client's task-sent event reaches Flower)
    request = mon_client.request("mon", "ghost", "wait")
    message = Message("ghost-" + uuid.uuid4().hex, request)
    mon_client.services.transport.send(message, "spawn.mon.unconsumed")
    try:
        # Then: Flower lists it as pending under its readable name already
        def task() -> dict[str, object] | None:
            found = requests.get(f"{flower}/api/task/info/{message.id}", timeout=5)
            return found.json() if found.ok else None

        info = wait_until(task, what="Flower to see the sent task")
        assert isinstance(info, dict)
        assert (info["name"], info["state"]) == ("mon.ghost.wait", "PENDING")
    finally:
        mon_client.services.redis.delete("spawn.mon.unconsumed")


def test_a_burst_reaches_flower_whole_in_few_event_messages(flower: str, mon_client: Client) -> None:
    # Given: a subscriber counting the event messages published on the broker (what Flower receives)
    name = "burst-" + uuid.uuid4().hex[:8]
    mon_client.spawn("mon", name, "counter")
    pubsub = mon_client.services.redis.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe("*celeryev*")
    pubsub.get_message(timeout=1)  # the subscription confirmation
    # When: 200 invocations are sent at once (each makes 4 events: sent, received, started, succeeded)
    ids = [f"burst-{i}-{uuid.uuid4().hex[:8]}" for i in range(200)]
    for invocation_id in ids:
        mon_client.invoke("mon", name, "increment", async_mode=True, invocation_id=invocation_id)

    def succeeded() -> bool:
        listed = requests.get(f"{flower}/api/tasks", params={"taskname": f"mon.{name}.increment"}, timeout=5).json()
        return sum(1 for i in ids if listed.get(i, {}).get("state") == "SUCCESS") == len(ids)

    # Then: Flower sees every one of them succeed
    wait_until(succeeded, timeout=30, what="Flower to see all 200 invocations succeed")
    messages = 0
    while pubsub.get_message(timeout=0.5) is not None:
        messages += 1
    pubsub.close()
    # And the 800 events travelled in batches (task-multi): fewer messages than half the events (unbatched, there
    # would be one each; here typically under 100, more on a slow machine, as batches are flushed every 100 ms)
    assert 0 < messages < len(ids) * 4 / 2, messages
