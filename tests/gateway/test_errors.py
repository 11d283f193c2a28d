"""Errors are answers: every failure is the endpoint's message with a RequestStatus and the right HTTP status."""

from __future__ import annotations

import uuid

import requests

from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.proto import actor_pb2, protocol_pb2
from tests.gateway.conftest import Proc
from tests.gateway.helpers import PB, invocation, invoke, post, spawn

NOT_FOUND, ERROR = protocol_pb2.ACTOR_NOT_FOUND, protocol_pb2.ERROR


def test_unknown_actor_is_404_actor_not_found(gateway: Proc, http: requests.Session) -> None:
    status, answer = invoke(http, gateway.url, "tests", "ghost-" + uuid.uuid4().hex, "increment")
    assert status == 404 and answer.status.status == NOT_FOUND and "ghost-" in answer.status.message


def test_unknown_action_is_404_error(gateway: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "tests", "counter")
    status, answer = invoke(http, gateway.url, "tests", name, "no_such_action")
    assert status == 404 and answer.status.status == ERROR and "no_such_action" in answer.status.message


def test_undecodable_body_is_400_naming_the_message(gateway: Proc, http: requests.Session) -> None:
    url = f"{gateway.url}/api/v1/system/tests/actors/x/invoke"
    status, answer = post(http, url, b"\xff\xff\xff\xff", protocol_pb2.InvocationResponse)
    assert status == 400 and answer.status.status == ERROR and "InvocationRequest" in answer.status.message
    url = f"{gateway.url}/api/v1/system/tests/actors/spawn"
    status, spawned = post(http, url, b"\x0a\x05ab", protocol_pb2.SpawnResponse)
    assert status == 400 and "SpawnRequest" in spawned.status.message


def test_wrong_content_type_is_400(gateway: Proc, http: requests.Session) -> None:
    url = f"{gateway.url}/api/v1/system/tests/actors/x/invoke"
    for headers in ({"Content-Type": "application/json"}, {}):
        status, answer = post(http, url, b"{}", protocol_pb2.InvocationResponse, headers=headers)
        assert status == 400 and "Content-Type" in answer.status.message


def test_missing_system_or_actor_is_400(gateway: Proc, http: requests.Session) -> None:
    url = f"{gateway.url}/api/v1/system/tests/actors/x/invoke"
    req = protocol_pb2.InvocationRequest(action_name="increment", system=actor_pb2.ActorSystem(name="tests"))
    # the path names actor "x"; an empty body actor falls back to it (body wins only where it says something)
    status, answer = post(http, url, req, protocol_pb2.InvocationResponse)
    assert status == 404 and answer.status.status == NOT_FOUND
    status, answer = post(http, url, protocol_pb2.InvocationRequest(), protocol_pb2.InvocationResponse)
    assert status == 400 and "action_name is missing" in answer.status.message
    bad = invocation("tests", "a/b", "increment")
    status, answer = post(http, url, bad, protocol_pb2.InvocationResponse)
    assert status == 400 and "actor.id.name" in answer.status.message


def test_spawn_errors(gateway: Proc, http: requests.Session) -> None:
    status, answer, _ = spawn(http, gateway.url, "tests", "counter", query="?revision=abc")
    assert status == 400 and "revision" in answer.status.message
    status, answer, _ = spawn(http, gateway.url, "tests", "no-template")
    assert status == 404 and answer.status.status == NOT_FOUND
    status, answer = post(http, f"{gateway.url}/api/v1/system/tests/actors/spawn", protocol_pb2.SpawnRequest(),
                          protocol_pb2.SpawnResponse)
    assert status == 400 and "empty" in answer.status.message


def test_body_over_the_limit_is_413(gateway: Proc, http: requests.Session) -> None:
    req = invocation("tests", "x", "increment", {"blob": "x" * 300_000})
    url = f"{gateway.url}/api/v1/system/tests/actors/x/invoke"
    status, answer = post(http, url, req, protocol_pb2.InvocationResponse)
    assert status == 413 and answer.status.status == ERROR and "SPAWN_MAX_BODY_BYTES" in answer.status.message


def test_action_that_raises_is_error_with_its_message(gateway: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "tests", "counter")
    status, answer = invoke(http, gateway.url, "tests", name, "fail")
    assert status == 500 and answer.status.status == ERROR
    assert "boom: the action failed on purpose" in answer.status.message
    status, answer = invoke(http, gateway.url, "tests", name, "increment", Increment(by=1))
    assert status == 200


def test_timeout_is_504(gateway: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "tests", "counter")
    # Celery's result wait checks its timeout once a second, so the action must outlast that
    status, answer = invoke(http, gateway.url, "tests", name, "slow", {"s": 2.5}, metadata={"request-timeout": "200"})
    assert status == 504 and answer.status.status == ERROR and "no reply" in answer.status.message


def test_unknown_paths_and_methods_are_json_not_html(gateway: Proc, http: requests.Session) -> None:
    for method, path in (("GET", "/nope"), ("GET", "/api/v1/system/tests/actors/x/invoke"), ("PUT", "/api/v1/system")):
        reply = http.request(method, gateway.url + path, headers=PB)
        assert reply.status_code in (404, 405) and reply.headers["Content-Type"] == "application/json"
        assert reply.json()["status"] == "ERROR"


def test_state_of_unknown_actor_is_404(gateway: Proc, http: requests.Session) -> None:
    reply = http.get(f"{gateway.url}/api/v1/system/tests/actors/ghost-{uuid.uuid4().hex}", headers=PB)
    answer = protocol_pb2.InvocationResponse.FromString(reply.content)
    assert reply.status_code == 404 and answer.status.status == NOT_FOUND


def test_impossible_registrations_are_400(gateway: Proc, http: requests.Session) -> None:
    req = protocol_pb2.RegistrationRequest(actor_system=actor_pb2.ActorSystem(name="badreg"))
    status, answer = post(http, f"{gateway.url}/api/v1/system", req, protocol_pb2.RegistrationResponse)
    assert status == 400 and "no actors" in answer.status.message and not answer.HasField("proxy_info")
    actor = req.actor_system.registry.actors["ticker"]
    actor.id.name = "ticker"
    actor.timer_actions.append(actor_pb2.FixedTimerAction(seconds=0, action=actor_pb2.Action(name="tick")))
    status, answer = post(http, f"{gateway.url}/api/v1/system", req, protocol_pb2.RegistrationResponse)
    assert status == 400 and answer.status.status == ERROR and "ticker" in answer.status.message
