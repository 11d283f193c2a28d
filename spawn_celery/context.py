"""The context an action runs in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ActorRefId:
    """A plain actor identity: ``name`` in ``system``, spawned from ``parent`` (empty for named actors)."""

    name: str
    system: str
    parent: str = ""


@dataclass
class Context:
    """What an action sees of its actor and of the call.

    Attributes:
        state: the actor's current state (unpacked), or ``None``.
        caller: the caller's actor name ("" for external callers), as spawn-python-sdk.
        metadata: the invocation metadata.
        tags: the actor's tags (persisted with its state).
        self_id: this actor's identity.
        caller_id: the caller's full identity, if it is an actor.
        revision: the state revision this invocation starts from.
    """

    state: Any = None
    caller: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    self_id: ActorRefId | None = None
    caller_id: ActorRefId | None = None
    revision: int = 0
