"""Spawn's protobuf routes and the JSON route against Python actors, through gunicorn and real workers."""

from __future__ import annotations

import time

import requests

from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment
from spawn_celery.proto import protocol_pb2
from tests.gateway.conftest import Proc
from tests.gateway.helpers import PB, eventually, invoke, spawn, value

OK, NOT_FOUND, ERROR = protocol_pb2.OK, protocol_pb2.ACTOR_NOT_FOUND, protocol_pb2.ERROR


def counter(http: requests.Session, gateway: Proc) -> str:
    status, answer, name = spawn(http, gateway.url, "tests", "counter")
    assert status == 200 and answer.status.status == OK and answer.status.message == "Accepted"
    return name


def test_sync_invoke_replies_and_keeps_state(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    status, answer = invoke(http, gateway.url, "tests", name, "increment", Increment(by=2))
    assert status == 200 and answer.status.status == OK and value(answer) == CounterValue(value=2)
    assert answer.system.name == "tests" and answer.actor.id.name == name
    _, answer = invoke(http, gateway.url, "tests", name, "increment", Increment(by=3))
    assert value(answer) == CounterValue(value=5)


def test_state_route_answers_protobuf_and_json(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    invoke(http, gateway.url, "tests", name, "increment", Increment(by=4))
    reply = http.get(f"{gateway.url}/api/v1/system/tests/actors/{name}", headers=PB)
    answer = protocol_pb2.InvocationResponse.FromString(reply.content)
    assert reply.status_code == 200 and value(answer) == CounterState(value=4)
    assert reply.headers["X-Spawn-Revision"] == "1"
    doc = http.get(f"{gateway.url}/api/v1/system/tests/actors/{name}", headers={"Accept": "application/json"}).json()
    assert doc["state"]["value"] == "4" and doc["revision"] == 1 and doc["active"] is True


def test_async_and_scheduled_invocations_run_later(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    status, answer = invoke(http, gateway.url, "tests", name, "increment", Increment(by=1), **{"async": True})
    assert status == 200 and answer.status.status == OK and answer.WhichOneof("payload") is None
    at = int(time.time() * 1000) + 300
    status, _ = invoke(http, gateway.url, "tests", name, "increment", Increment(by=10), scheduled_to=at)
    assert status == 200

    def state() -> int:
        reply = http.get(f"{gateway.url}/api/v1/system/tests/actors/{name}", headers={"Accept": "application/json"})
        return int((reply.json()["state"] or {}).get("value", 0))

    assert eventually(lambda: state() == 11)
    assert time.time() * 1000 >= at


def test_body_wins_over_path(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    req = protocol_pb2.InvocationRequest(action_name="increment")
    req.system.name, req.actor.id.name = "tests", name
    url = f"{gateway.url}/api/v1/system/other/actors/whatever/invoke"
    reply = http.post(url, data=req.SerializeToString(), headers=PB)
    assert reply.status_code == 200
    assert value(protocol_pb2.InvocationResponse.FromString(reply.content)) == CounterValue(value=1)


def test_json_route_takes_jsontype_and_typed_messages(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    url = f"{gateway.url}/api/v1/system/tests/actors/{name}/actions/increment"
    doc = http.post(url, json={"@type": "spawn_celery.examples.Increment", "by": 5}).json()
    assert doc["status"] == "OK" and doc["value"]["value"] == "5" and doc["value"]["@type"].endswith("CounterValue")
    reply = http.post(url + "?async=true", json=None)
    assert reply.status_code == 202 and reply.json()["status"] == "OK"
    state = f"{gateway.url}/api/v1/system/tests/actors/{name}"
    # the async increment applied (else the call below may take the lock first and answer 6)
    assert eventually(lambda: http.get(state, headers={"Accept": "application/json"}).json()["revision"] == 2)
    slow = http.post(f"{gateway.url}/api/v1/system/tests/actors/{name}/actions/slow", json={"s": 0.01}).json()
    assert slow["status"] == "OK" and slow["value"]["value"] in ("7", 7)


def test_json_route_spawns_with_parent_and_reports_errors(gateway: Proc, http: requests.Session) -> None:
    base = f"{gateway.url}/api/v1/system/tests/actors"
    doc = http.post(f"{base}/json-made-{time.time_ns()}/actions/increment?parent=counter").json()
    assert doc["value"]["value"] == "1"
    lazy = f"lazy-{time.time_ns()}"
    refused = http.post(f"{base}/{lazy}/actions/no_such_action?parent=counter")
    assert refused.status_code == 404
    assert http.get(f"{base}/{lazy}").status_code == 404  # the refused call spawned no instance
    missing = http.post(f"{base}/nobody-{time.time_ns()}/actions/increment", json={})
    assert missing.status_code == 404 and missing.json()["status"] == "ACTOR_NOT_FOUND"
    bad = http.post(f"{base}/x/actions/increment", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["message"]
    unknown = http.post(f"{base}/x/actions/increment", json={"@type": "no.such.Type"})
    assert unknown.status_code == 400 and "SPAWN_GATEWAY_IMPORTS" in unknown.json()["message"]


def test_metrics_count_invocations_by_actor_and_status(gateway: Proc, http: requests.Session) -> None:
    name = counter(http, gateway)
    for _ in range(3):
        invoke(http, gateway.url, "tests", name, "increment")
    text = http.get(f"{gateway.url}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("spawn_invocations_total{") and 'actor="counter"' in x
                and 'status="OK"' in x and 'action="increment"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "spawn_invoke_stop_duration_seconds_bucket" in text and "flask_http_request_duration_seconds" in text


def test_openapi_and_health(gateway: Proc, http: requests.Session) -> None:
    assert "openapi: 3" in http.get(f"{gateway.url}/api/v1/openapi.yaml").text
    assert http.get(f"{gateway.url}/health/liveness").json() == {"status": "up"}
    assert http.get(f"{gateway.url}/health/readiness").json() == {"status": "up"}
