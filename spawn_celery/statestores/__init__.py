"""Durable, encrypted actor state: the :class:`StateStore` contract and its implementations.

- :class:`~spawn_celery.statestores.sql.SqlStateStore`: any SQLAlchemy URL (SQLite file by default, PostgreSQL
  with the ``postgres`` extra, MySQL/MariaDB with the ``mysql`` extra).
- :class:`~spawn_celery.statestores.memory.MemoryStateStore`: ``memory://``, for tests and development.

Use :func:`open_statestore` to pick one from the settings.
"""

from __future__ import annotations

from spawn_celery.cipher import Cipher
from spawn_celery.config import Settings
from spawn_celery.statestores.base import Snapshot, StateStore
from spawn_celery.statestores.memory import MemoryDatabase, MemoryStateStore
from spawn_celery.statestores.sql import SqlStateStore

__all__ = ["MemoryDatabase", "MemoryStateStore", "Snapshot", "SqlStateStore", "StateStore", "open_statestore"]

MEMORY_URL = "memory://"
"""``SPAWN_DATABASE_URL`` value selecting the in-memory store."""


def open_statestore(settings: Settings, *, cipher: Cipher | None = None) -> StateStore:
    """Open the statestore that ``settings.database_url`` names.

    Args:
        settings: the process settings (``database_url``, ``database_pool_size``, the statestore keys).
        cipher: the cipher to use; built from the settings' keys when omitted.

    Returns:
        A :class:`MemoryStateStore` for ``memory://``, else a :class:`SqlStateStore`. Nothing connects yet.

    Raises:
        ConfigError: the key is missing or malformed, the URL is malformed, or its database driver is not
            installed (the message names the extra to install, e.g. ``pip install 'spawn-celery[postgres]'``).
    """
    cipher = cipher if cipher is not None else Cipher.from_settings(settings)
    if settings.database_url.strip() == MEMORY_URL:
        return MemoryStateStore(cipher=cipher)
    return SqlStateStore(settings.database_url, cipher=cipher, pool_size=settings.database_pool_size)
