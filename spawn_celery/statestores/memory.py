"""In-memory statestore with the real semantics of the SQL one (revisions, history, encryption).

For tests and single-process development (``SPAWN_DATABASE_URL=memory://``); nothing survives the process.
Data is still encrypted through the :class:`~spawn_celery.cipher.Cipher`, so key errors show up here as well.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

from spawn_celery.cipher import Cipher
from spawn_celery.errors import DecryptionError
from spawn_celery.statestores.base import Snapshot, StateStore


class MemoryDatabase:
    """The tables behind :class:`MemoryStateStore`.

    Give one to several stores to model processes sharing a database (e.g. reopening it with another key).
    Rows are :class:`Snapshot` objects whose ``data`` holds the ciphertext.
    """

    def __init__(self) -> None:
        """Start empty."""
        self.lock = threading.Lock()
        self.current: dict[tuple[str, str], Snapshot] = {}
        self.history: dict[tuple[str, str], dict[int, Snapshot]] = {}


class MemoryStateStore(StateStore):
    """A thread-safe statestore in process memory.

    Args:
        cipher: encrypts data at rest.
        database: the tables to use; a new empty :class:`MemoryDatabase` by default.
    """

    def __init__(self, *, cipher: Cipher, database: MemoryDatabase | None = None) -> None:
        """Keep the cipher and the tables (see the class docstring)."""
        self._cipher = cipher
        self.database = database if database is not None else MemoryDatabase()

    def save(self, snapshot: Snapshot) -> None:
        """See :meth:`StateStore.save`."""
        row = dataclasses.replace(
            snapshot, data=self._cipher.encrypt(snapshot.data), tags=dict(snapshot.tags), updated_at=datetime.now(UTC)
        )
        key = (snapshot.system, snapshot.actor)
        db = self.database
        with db.lock:
            stored = db.current.get(key)
            newer = stored is None or stored.revision <= row.revision
            if newer:
                db.current[key] = row
            history = db.history.setdefault(key, {})
            if newer or row.revision not in history:
                history[row.revision] = row

    def load(self, system: str, actor: str) -> Snapshot | None:
        """See :meth:`StateStore.load`."""
        with self.database.lock:
            row = self.database.current.get((system, actor))
        return self._decrypted(row)

    def load_revision(self, system: str, actor: str, revision: int) -> Snapshot | None:
        """See :meth:`StateStore.load_revision`."""
        with self.database.lock:
            row = self.database.history.get((system, actor), {}).get(revision)
        return self._decrypted(row)

    def revisions(self, system: str, actor: str) -> list[int]:
        """See :meth:`StateStore.revisions`."""
        with self.database.lock:
            return sorted(self.database.history.get((system, actor), {}))

    def delete(self, system: str, actor: str) -> None:
        """See :meth:`StateStore.delete`."""
        with self.database.lock:
            self.database.current.pop((system, actor), None)
            self.database.history.pop((system, actor), None)

    def ping(self) -> None:
        """See :meth:`StateStore.ping`; memory always answers."""

    def close(self) -> None:
        """See :meth:`StateStore.close`; there is nothing to release."""

    def raw_data(self, system: str, actor: str) -> bytes | None:
        """Return the stored ciphertext of an actor's current snapshot (diagnostics and tests)."""
        with self.database.lock:
            row = self.database.current.get((system, actor))
        return None if row is None else row.data

    def _decrypted(self, row: Snapshot | None) -> Snapshot | None:
        """Turn a stored row back into a plaintext snapshot (with its own copy of the tags)."""
        if row is None:
            return None
        try:
            plain = self._cipher.decrypt(row.data)
        except DecryptionError as exc:
            raise DecryptionError(f"state of {row.system}/{row.actor} revision {row.revision}: {exc}") from None
        return dataclasses.replace(row, data=plain, tags=dict(row.tags))
