"""Workflow steps an action can ask for in its reply: broadcast, side effects, forward and pipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Broadcast:
    """Send ``value`` to every actor subscribed to ``channel``.

    Attributes:
        channel: the channel (topic) name.
        action_name: the action to invoke on subscribers; empty means each subscriber's channel action
            (``receive`` unless it subscribed with another).
        value: the payload (protobuf message, JSON value or ``None`` for no payload).
    """

    channel: str | None = None
    action_name: str | None = None
    value: Any = None


@dataclass
class Effect:
    """An asynchronous invocation sent only after the caller's state change is committed.

    Attributes:
        action: the action to invoke.
        system: the target's actor system (default: the caller's).
        actor: the target actor name.
        parent: the unnamed template to spawn ``actor`` from if it does not exist yet.
        payload: the payload.
        metadata: metadata merged over the source invocation's metadata (effect wins).
        scheduled_to: Unix epoch milliseconds to run at (0 = now).
    """

    action: str
    system: str | None = None
    actor: str | None = None
    parent: str | None = None
    payload: Any = None
    metadata: dict[str, str] = field(default_factory=dict)
    scheduled_to: int = 0


@dataclass
class Forward:
    """Pass the original request on to ``actor.action``; the caller gets that actor's reply."""

    actor: str
    action: str


@dataclass
class Pipe:
    """Send this action's reply to ``actor.action`` as its input; the caller gets the last reply."""

    actor: str
    action: str
