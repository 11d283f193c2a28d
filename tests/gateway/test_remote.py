"""Actors of a remote SDK host (tests/gateway/sdkhost.py, behaving like spawn-python-sdk) through the gateway and
``spawn-celery worker --remote``: registration, spawn, invoke, state, noreply, checkpoint, workflows, timers."""

from __future__ import annotations

import time
import uuid

import requests

from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment
from spawn_celery.proto import protocol_pb2
from spawn_celery.services import Services
from tests.gateway.conftest import Proc
from tests.gateway.helpers import PB, eventually, invoke, post, spawn, value
from tests.gateway.sdkhost import registration

OK, ERROR = protocol_pb2.OK, protocol_pb2.ERROR


def sdk_state(http: requests.Session, gateway: Proc, name: str) -> object:
    reply = http.get(f"{gateway.url}/api/v1/system/sdk/actors/{name}", headers=PB)
    assert reply.status_code == 200, reply.content
    return value(protocol_pb2.InvocationResponse.FromString(reply.content))


def test_registration_is_idempotent_and_reports_proxy_info(gateway: Proc, host: Proc, http: requests.Session) -> None:
    for _ in range(2):
        status, answer = post(http, f"{gateway.url}/api/v1/system", registration(), protocol_pb2.RegistrationResponse)
        assert status == 200 and answer.status.status == OK
    info = answer.proxy_info
    assert (info.protocol_major_version, info.protocol_minor_version, info.proxy_name) == (1, 2, "spawn-celery")


def test_unnamed_actor_spawned_then_invoked_keeps_state(gateway: Proc, host: Proc, http: requests.Session) -> None:
    status, _, name = spawn(http, gateway.url, "sdk", "abs")
    assert status == 200
    assert value(invoke(http, gateway.url, "sdk", name, "sum", Increment(by=2))[1]) == CounterValue(value=2)
    assert value(invoke(http, gateway.url, "sdk", name, "sum", Increment(by=3))[1]) == CounterValue(value=5)
    assert sdk_state(http, gateway, name) == CounterState(value=5)


def test_noreply_changes_state_without_payload(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    status, answer = invoke(http, gateway.url, "sdk", name, "quiet")
    assert status == 200 and answer.WhichOneof("payload") == "noop"
    assert sdk_state(http, gateway, name) == CounterState(value=1)


def test_checkpoint_persists_before_the_reply(gateway: Proc, host: Proc, http: requests.Session,
                                              gw_settings: Settings) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    status, _ = invoke(http, gateway.url, "sdk", name, "save")
    assert status == 200
    snapshot = Services.create(gw_settings).statestore.load("sdk", name)
    assert snapshot is not None and snapshot.revision == 1


def test_host_error_is_an_error_answer_and_the_actor_goes_on(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    status, answer = invoke(http, gateway.url, "sdk", name, "boom")
    assert status == 500 and answer.status.status == ERROR and "HTTP 500" in answer.status.message
    assert value(invoke(http, gateway.url, "sdk", name, "sum", Increment(by=1))[1]) == CounterValue(value=1)


def test_forward_answers_with_the_target_reply(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    before = (sdk_state(http, gateway, "calc") or CounterState()).value
    status, answer = invoke(http, gateway.url, "sdk", name, "forward", Increment(by=7))
    assert status == 200 and value(answer).value >= before + 7


def test_pipe_sends_the_reply_on(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    status, answer = invoke(http, gateway.url, "sdk", name, "pipe")
    assert status == 200 and value(answer) == {"echoed": {"value": "42"}}


def test_side_effect_runs_asynchronously(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    before = (sdk_state(http, gateway, "calc") or CounterState()).value
    invoke(http, gateway.url, "sdk", name, "effect")
    eventually(lambda: sdk_state(http, gateway, "calc").value >= before + 100)


def test_named_actor_json_call_and_timer_broadcast(gateway: Proc, host: Proc, http: requests.Session) -> None:
    url = f"{gateway.url}/api/v1/system/sdk/actors/joe/actions/setLanguage"
    doc = http.post(url, json={"language": "pt-" + uuid.uuid4().hex[:4]}).json()
    assert doc["status"] == "OK" and doc["value"]["response"].startswith("hello in pt-")
    assert len(sdk_state(http, gateway, "joe")) >= 1
    # joe's timer action "hi" (every 300 ms, started at registration) broadcasts to "greetings"; listener counts
    first = eventually(lambda: sdk_state(http, gateway, "listener"), timeout=15).value
    eventually(lambda: sdk_state(http, gateway, "listener").value > first, timeout=10)


def test_pooled_actor_answers(gateway: Proc, host: Proc, http: requests.Session) -> None:
    status, answer = invoke(http, gateway.url, "sdk", "pool", "work", {"n": 1}, pooled=True)
    assert status == 200 and value(answer) == {"worked": {"n": 1}}


def test_host_timeout_is_an_error_answer_not_a_second_run(gateway: Proc, host: Proc, http: requests.Session) -> None:
    _, _, name = spawn(http, gateway.url, "sdk", "abs")
    status, answer = invoke(http, gateway.url, "sdk", name, "nap", {"s": 2.5})
    assert status == 500 and answer.status.status == ERROR and "did not answer within 1.5 s" in answer.status.message
    assert value(invoke(http, gateway.url, "sdk", name, "sum", Increment(by=1))[1]) == CounterValue(value=1)
    time.sleep(1.2)  # the host finishes the nap; nothing calls it again
    assert requests.get(f"{host.url}/test/calls/{name}.nap", timeout=5).json() == {"calls": 1}
