"""Core invocation behaviour through real workers."""

from __future__ import annotations

import uuid

import pytest

from spawn_celery import ActionNotFound, ActorError, ActorNotFound
from spawn_celery.client import Client
from spawn_celery.errors import PayloadEncodeError
from spawn_celery.examples.domain_pb2 import CounterState, Increment


def new_counter(client: Client) -> str:
    name = "c-" + uuid.uuid4().hex[:8]
    client.spawn("tests", name, "counter")
    return name


def test_increment_replies_and_keeps_state(client: Client) -> None:
    name = new_counter(client)
    assert client.invoke("tests", name, "increment", Increment(by=2)).value == 2
    assert client.invoke("tests", name, "increment", Increment(by=3)).value == 5
    view = client.state("tests", name)
    assert view.value == CounterState(value=5) and view.revision == 2 and view.active


def test_unknown_actor_and_action_are_typed_errors(client: Client) -> None:
    with pytest.raises(ActorNotFound):
        client.invoke("tests", "never-spawned-" + uuid.uuid4().hex, "increment")
    with pytest.raises(ActionNotFound):
        client.invoke("tests", new_counter(client), "no_such_action")


def test_failing_action_changes_no_state(client: Client) -> None:
    name = new_counter(client)
    client.invoke("tests", name, "increment", Increment(by=1))
    with pytest.raises(ActorError, match="boom"):
        client.invoke("tests", name, "fail")
    view = client.state("tests", name)
    assert view.value.value == 1 and view.revision == 1


def test_unserializable_state_is_an_error_and_changes_nothing(client: Client) -> None:
    name = new_counter(client)
    client.invoke("tests", name, "increment")
    with pytest.raises(PayloadEncodeError):
        client.invoke("tests", name, "bad_state")
    assert client.state("tests", name).revision == 1


def test_unserializable_payload_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(PayloadEncodeError):
        client.invoke("tests", new_counter(client), "increment", object())


def test_default_get_returns_state(client: Client) -> None:
    name = new_counter(client)
    client.invoke("tests", name, "increment", Increment(by=7))
    assert client.invoke("tests", name, "get").value == 7


def test_same_invocation_id_applies_once(client: Client) -> None:
    name = new_counter(client)
    first = client.invoke("tests", name, "increment", invocation_id="fixed-id")
    again = client.invoke("tests", name, "increment", invocation_id="fixed-id")
    assert first == again and client.state("tests", name).value.value == 1
