"""Spares: idle connections a process keeps outside a library's pool, safe across threads and forks."""

from __future__ import annotations

import os
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Spares(Generic[_T]):
    """A free list of idle connections of this process.

    ``list.pop`` and ``list.append`` are atomic under the GIL, so each concurrent caller gets a connection of its
    own. A forked child starts with none: it must not use its parent's sockets.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._idle: list[_T] = []
        self._pid = os.getpid()

    def take(self) -> _T | None:
        """An idle connection of this process, or ``None`` (make a new one)."""
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def give(self, conn: _T) -> None:
        """Keep ``conn`` (in a clean state) for the next caller."""
        self._idle.append(conn)

    def drain(self) -> list[_T]:
        """Take every idle connection of this process (none in a forked child), to close them."""
        idle, self._idle = self._idle, []
        return idle if self._pid == os.getpid() else []
