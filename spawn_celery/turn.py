"""A turn: one holder of an actor's lock running its invocation, then those queued in its mailbox meanwhile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Turn:
    """The state of one invocation inside a turn that holds the actor's lock."""

    token: int
    revision: int = 0
    before: bytes = b""
    after: bytes | None = None
    item: str = ""
    recorded: bytes | None = None
    until: float = 0.0
    """For a mailbox item: ``time.monotonic()`` after which its commit takes no next item but unlocks (the
    leftovers run in a later turn)."""
    """For a mailbox item: its dedupe record when it was applied before (answered from it, not run again)."""
    changed: bool = False
    restored: bool = False
    pending: int = 0
    activated: bool = False
    touch: bool = True
    fire: bool = False
    keep: bool = False
