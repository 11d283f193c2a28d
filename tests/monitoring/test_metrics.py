"""Worker Prometheus metrics, scraped over HTTP from a real worker (system ``mon``)."""

from __future__ import annotations

import threading
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import Increment
from tests.monitoring.conftest import wait_until
from tests.support import gated, open_gate

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
COUNTER_QUEUE = frozenset({("queue", "spawn.mon.counter"), ("system", "mon"), ("actor", "counter")})


def scrape(port: int) -> Samples:
    """Every sample of the worker's /metrics, keyed by name and label set."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def moved(port: int, before: Samples, name: str, by: float, **labels: str) -> Samples:
    """Scrape until ``name`` grew by at least ``by`` since ``before``; return that scrape."""
    def check() -> Samples | None:
        now = scrape(port)
        return now if value(now, name, **labels) - value(before, name, **labels) >= by else None

    result = wait_until(check, what=f"{name}{labels} to grow by {by}")
    assert isinstance(result, dict)
    return result


def spawn(client: Client, template: str) -> str:
    name = f"{template}-{uuid.uuid4().hex[:8]}"
    client.spawn("mon", name, template)
    return name


def test_invocations_latency_and_activations_move(mon_client: Client, mon_settings: Settings) -> None:
    port = mon_settings.metrics_port
    ok = {"system": "mon", "actor": "counter", "action": "increment", "status": "OK"}
    before = scrape(port)
    name = spawn(mon_client, "counter")
    # When: three increments and one failing action through the real worker
    for _ in range(3):
        mon_client.invoke("mon", name, "increment", Increment(by=1))
    assert mon_client.send(mon_client.request("mon", name, "fail")).status == "ERROR"
    # Then: labelled by actor type (the template), not the instance name
    after = moved(port, before, "spawn_invocations_total", 3, **ok)
    assert value(after, "spawn_invocations_total", **ok) - value(before, "spawn_invocations_total", **ok) == 3
    assert value(after, "spawn_invocations_total", actor="counter", action="fail", status="ERROR") >= 1
    assert value(after, "spawn_invoke_stop_duration_seconds_count", **ok) >= 3
    assert value(after, "spawn_invoke_stop_duration_seconds_sum", **ok) > 0
    assert value(after, "spawn_actor_activations_total", system="mon", actor="counter") >= 1
    assert value(after, "spawn_active_actors") >= 1
    assert ("spawn_actor_message_queue_len", COUNTER_QUEUE) in after
    assert value(after, "process_resident_memory_bytes") > 0
    assert ("spawn_snapshot_lag_seconds", frozenset()) in after


def test_mailbox_and_deactivations_move(mon_client: Client, mon_settings: Settings) -> None:
    port = mon_settings.metrics_port
    before = scrape(port)
    # Given: an actor holding its lock (an async nap that waits for the test) and a second call to it
    busy, short = spawn(mon_client, "counter"), spawn(mon_client, "blink")
    gate = f"gate:{busy}"
    mon_client.invoke("mon", busy, "nap", gated(mon_settings, gate), async_mode=True)
    mon_client.invoke("mon", short, "increment")
    wait_until(lambda: _locked(mon_client, busy), what="the nap to hold the lock")
    second: list[int] = []
    caller = threading.Thread(target=lambda: second.append(mon_client.invoke("mon", busy, "increment").value))
    caller.start()
    wait_until(lambda: _queued(mon_client, busy), what="the second call in the mailbox")
    open_gate(mon_settings, gate)
    caller.join(30)
    # Then: the second call went into the mailbox and was answered by the lock holder's turn;
    # "blink" (300 ms idle timeout) was deactivated
    assert second == [2]  # after the nap's 1, in order
    moved(port, before, "spawn_mailbox_queued_total", 1, system="mon", actor="counter")
    moved(port, before, "spawn_actor_deactivations_total", 1, system="mon")


def _queued(client: Client, name: str) -> bool:
    from spawn_celery import keys

    return bool(client.services.redis.llen(keys.mailbox("mon", name)))


def _locked(client: Client, name: str) -> bool:
    from spawn_celery import keys

    return bool(client.services.redis.exists(keys.lock("mon", name)))


def test_queue_depth_moves(mon_client: Client, mon_settings: Settings) -> None:
    port = mon_settings.metrics_port
    # Given: more naps than the worker's two processes can take at once, each waiting for the test
    gate = f"gate:{uuid.uuid4().hex}"
    for _ in range(6):
        mon_client.invoke("mon", spawn(mon_client, "counter"), "nap", gated(mon_settings, gate), async_mode=True)
    # Then: the queue gauge shows the backlog, then drains to zero once the naps may end
    wait_until(lambda: scrape(port).get(("spawn_actor_message_queue_len", COUNTER_QUEUE), 0) >= 1, what="a backlog")
    open_gate(mon_settings, gate, times=6)
    wait_until(lambda: scrape(port).get(("spawn_actor_message_queue_len", COUNTER_QUEUE)) == 0, what="the drain")
