"""Snapshots: write-behind of dirty state, one revision per applied change, history, checkpoint, restore."""

from __future__ import annotations

import pytest

from spawn_celery import ActorError
from spawn_celery.client import Client
from spawn_celery.services import Services
from tests.semantics.conftest import SYSTEM, unique, wait_for


def spawned(client: Client) -> str:
    name = unique("snap")
    client.spawn(SYSTEM, name, "counter")  # snapshot_timeout 300 ms
    return name


def test_write_behind_saves_the_latest_revision_after_snapshot_timeout(client: Client, services: Services) -> None:
    name = spawned(client)
    for _ in range(3):
        client.invoke(SYSTEM, name, "increment")
    assert client.state(SYSTEM, name).revision == 3  # one revision per applied change
    saved = wait_for(lambda: (s := services.statestore.load(SYSTEM, name)) and s.revision == 3 and s, timeout=3)
    assert saved.data  # encrypted at rest, plaintext here
    client.invoke(SYSTEM, name, "increment", {"by": 10})
    wait_for(lambda: services.statestore.load(SYSTEM, name).revision == 4, timeout=3)
    assert services.statestore.revisions(SYSTEM, name)[-2:] == [3, 4]


def test_reading_state_does_not_make_a_revision(client: Client) -> None:
    name = spawned(client)
    client.invoke(SYSTEM, name, "increment")
    client.invoke(SYSTEM, name, "get")
    assert client.state(SYSTEM, name).revision == 1


def test_checkpoint_is_in_sql_before_the_reply(client: Client, services: Services) -> None:
    name = spawned(client)
    client.invoke(SYSTEM, name, "increment")
    assert client.invoke(SYSTEM, name, "checkpointed") == 2
    saved = services.statestore.load(SYSTEM, name)
    assert saved is not None and saved.revision == 2


def test_checkpoint_without_a_change_persists_earlier_unsaved_changes(client: Client, services: Services) -> None:
    name = spawned(client)
    client.invoke(SYSTEM, name, "increment")  # dirty, due in SQL 300 ms later
    client.invoke(SYSTEM, name, "persist")
    saved = services.statestore.load(SYSTEM, name)
    assert saved is not None and saved.revision == 1


def test_restore_to_a_revision_gives_its_state_as_a_new_revision(client: Client, services: Services) -> None:
    name = spawned(client)
    for _ in range(3):
        client.invoke(SYSTEM, name, "checkpointed")
    assert services.statestore.revisions(SYSTEM, name) == [1, 2, 3]
    assert client.restore(SYSTEM, name, 2) == {"n": 2}
    view = client.state(SYSTEM, name)
    assert view.value == {"n": 2} and view.revision == 4
    assert client.invoke(SYSTEM, name, "increment") == 3


def test_restore_to_an_unknown_revision_changes_nothing(client: Client) -> None:
    name = spawned(client)
    client.invoke(SYSTEM, name, "checkpointed")
    with pytest.raises(ActorError, match="no stored revision 99"):
        client.restore(SYSTEM, name, 99)
    assert client.state(SYSTEM, name).revision == 1
