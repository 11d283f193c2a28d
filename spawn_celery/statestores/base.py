"""The statestore contract: durable, encrypted actor snapshots with revisions and history.

A statestore keeps, per actor instance (``system``, ``actor``), the *current* snapshot and a *history* row per
revision ever saved (the current one included), so that an actor can be restored to a revision. Semantics every
implementation shares (the contract suite in ``tests/statestores`` runs over all of them):

- ``save`` never moves the current snapshot backwards: a revision lower than the stored one is only added to the
  history (if that revision has no history row yet). A revision equal to or above the stored one replaces the
  current row and its history row, so saving the same snapshot twice is harmless.
- ``data`` is the plaintext ``google.protobuf.Any.value``; implementations encrypt it with a
  :class:`~spawn_celery.cipher.Cipher` and keep ``type_url`` in clear, as Spawn does.
- Database failures raise :class:`~spawn_celery.errors.StateStoreError` (retryable); values no configured key can
  decrypt raise :class:`~spawn_celery.errors.DecryptionError` (not retryable).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

NAME_MAX = 190
"""Longest ``system``, ``actor`` or ``parent`` name (characters): keeps MySQL's primary key under its limit."""


@dataclass(frozen=True)
class Snapshot:
    """One saved state of an actor instance.

    Attributes:
        system: actor system name.
        actor: actor (instance) name.
        revision: the actor's revision counter; history is kept per revision.
        type_url: ``Any.type_url`` of the state, stored in clear; ``""`` means the actor has no state.
        data: ``Any.value`` of the state, plaintext (encrypted only at rest).
        tags: the actor's tags (``ActorState.tags``), stored in clear.
        parent: the template an unnamed instance was spawned from, ``""`` for named actors.
        status: ``ACTIVATED`` or ``DEACTIVATED`` (Spawn's values).
        updated_at: when the row was written (UTC); filled by ``load``, ignored by ``save``.

    Raises:
        ValueError: a name is empty or longer than :data:`NAME_MAX`, or the revision is negative.
    """

    system: str
    actor: str
    revision: int
    type_url: str
    data: bytes
    tags: dict[str, str] = field(default_factory=dict)
    parent: str = ""
    status: str = "ACTIVATED"
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse values that some databases could not store faithfully."""
        for name, value in (("system", self.system), ("actor", self.actor), ("parent", self.parent)):
            if len(value) > NAME_MAX or (not value and name != "parent"):
                raise ValueError(f"snapshot {name} must be 1 to {NAME_MAX} characters, got {len(value)}")
        if self.revision < 0:
            raise ValueError(f"snapshot revision must not be negative, got {self.revision}")


class StateStore(abc.ABC):
    """Durable store of actor snapshots. Implementations are thread-safe; use one per process."""

    @abc.abstractmethod
    def save(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` as current (unless a newer revision is stored) and into the history, atomically.

        Args:
            snapshot: the state to keep; its ``updated_at`` is ignored (the store stamps the time).

        Raises:
            StateStoreError: the database failed; nothing was written.
        """

    def save_many(self, snapshots: Sequence[Snapshot]) -> None:
        """Save several snapshots (the write-behind batch); implementations may use one transaction.

        Raises:
            StateStoreError: the database failed; none or only some of the snapshots may be saved (each save is
                idempotent, so the caller retries the whole batch).
        """
        for snapshot in snapshots:
            self.save(snapshot)

    @abc.abstractmethod
    def load(self, system: str, actor: str) -> Snapshot | None:
        """Return the current snapshot of an actor, or ``None`` if none was saved.

        Raises:
            StateStoreError: the database failed.
            DecryptionError: no configured key decrypts the stored data.
        """

    @abc.abstractmethod
    def load_revision(self, system: str, actor: str, revision: int) -> Snapshot | None:
        """Return the snapshot saved with ``revision`` (from the history), or ``None`` if there is none.

        Raises:
            StateStoreError: the database failed.
            DecryptionError: no configured key decrypts the stored data.
        """

    @abc.abstractmethod
    def revisions(self, system: str, actor: str) -> list[int]:
        """Return the revisions in the history of an actor, ascending (``[]`` if none).

        Raises:
            StateStoreError: the database failed.
        """

    @abc.abstractmethod
    def delete(self, system: str, actor: str) -> None:
        """Remove an actor's current snapshot and its whole history (nothing happens if there is none).

        Raises:
            StateStoreError: the database failed.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Check that the database answers (for readiness probes).

        Raises:
            StateStoreError: it does not.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store reconnects if it is used again."""

    def __enter__(self) -> Self:
        """Use the store as a context manager that closes it on exit."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Close the store."""
        self.close()
