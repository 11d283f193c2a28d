"""The value an action returns: response, new state, metadata and workflow, built fluently.

Same names and behaviour as spawn-python-sdk's ``Value``, with its bugs fixed: ``reply()`` without a response
replies with no payload instead of raising, and ``metadata(...)`` works.
"""

from __future__ import annotations

import enum
from typing import Any

from spawn_celery.errors import DefinitionError
from spawn_celery.workflows import Broadcast, Effect, Forward, Pipe


class ReplyKind(enum.Enum):
    """Whether the caller gets the response (``REPLY``) or no payload (``NO_REPLY``)."""

    REPLY = "reply"
    NO_REPLY = "noreply"


class Metadata:
    """Metadata and tags to return with a value. Tags replace the actor's tags."""

    def __init__(self) -> None:
        """Start empty."""
        self._metadata: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    def put_metadata(self, key: str, value: str) -> Metadata:
        """Add a metadata pair and return ``self``."""
        self._metadata[key] = value
        return self

    def put_tag(self, key: str, value: str) -> Metadata:
        """Add a tag and return ``self``."""
        self._tags[key] = value
        return self

    def get_metadata(self) -> dict[str, str]:
        """Return the metadata pairs."""
        return dict(self._metadata)

    def get_tags(self) -> dict[str, str]:
        """Return the tags."""
        return dict(self._tags)


class Value:
    """An action's result. Every builder method returns ``self``."""

    _UNSET: Any = object()

    def __init__(self) -> None:
        """Start with no response, unchanged state, no workflow, ``REPLY`` without checkpoint."""
        self._response: Any = None
        self._state: Any = Value._UNSET
        self._metadata: Metadata | None = None
        self._broadcast: Broadcast | None = None
        self._effects: list[Effect] = []
        self._forward: Forward | None = None
        self._pipe: Pipe | None = None
        self._reply_kind = ReplyKind.REPLY
        self._checkpoint = False

    def of(self, value: Any, state: Any = _UNSET) -> Value:
        """Set the response and, if given, the new state."""
        self._response = value
        if state is not Value._UNSET:
            self._state = state
        return self

    def state(self, state: Any) -> Value:
        """Set the actor's new state (a protobuf message or a JSON value)."""
        self._state = state
        return self

    def response(self, value: Any) -> Value:
        """Set the reply payload."""
        self._response = value
        return self

    def metadata(self, metadata: Metadata) -> Value:
        """Attach metadata and tags."""
        self._metadata = metadata
        return self

    def broadcast(self, broadcast: Broadcast) -> Value:
        """Broadcast to a channel after the state change is committed."""
        self._broadcast = broadcast
        return self

    def effect(self, effect: Effect) -> Value:
        """Add a side effect, sent after the state change is committed."""
        self._effects.append(effect)
        return self

    def forward(self, forward: Forward) -> Value:
        """Forward the request to another actor; exclusive with :meth:`pipe`."""
        if self._pipe is not None:
            raise DefinitionError("a Value cannot both pipe and forward")
        self._forward = forward
        return self

    def pipe(self, pipe: Pipe) -> Value:
        """Pipe the response to another actor; exclusive with :meth:`forward`."""
        if self._forward is not None:
            raise DefinitionError("a Value cannot both pipe and forward")
        self._pipe = pipe
        return self

    def reply(self, checkpoint: bool = False) -> Value:
        """Reply with the response; ``checkpoint=True`` persists state to SQL before replying."""
        self._reply_kind = ReplyKind.REPLY
        self._checkpoint = checkpoint
        return self

    def noreply(self, checkpoint: bool = False) -> Value:
        """Reply with no payload."""
        self._reply_kind = ReplyKind.NO_REPLY
        self._checkpoint = checkpoint
        return self

    def get_state(self) -> Any:
        """Return the new state, or ``None`` when unchanged."""
        return None if self._state is Value._UNSET else self._state

    def has_state(self) -> bool:
        """Whether the action set a new state."""
        return self._state is not Value._UNSET and self._state is not None

    def get_response(self) -> Any:
        """Return the response payload."""
        return self._response

    def get_metadata(self) -> Metadata | None:
        """Return the attached metadata."""
        return self._metadata

    def get_broadcast(self) -> Broadcast | None:
        """Return the broadcast."""
        return self._broadcast

    def get_effects(self) -> list[Effect]:
        """Return the side effects."""
        return list(self._effects)

    def get_forward(self) -> Forward | None:
        """Return the forward."""
        return self._forward

    def get_pipe(self) -> Pipe | None:
        """Return the pipe."""
        return self._pipe

    def get_reply_kind(self) -> ReplyKind:
        """Return the reply kind."""
        return self._reply_kind

    def has_checkpoint(self) -> bool:
        """Whether state is persisted before replying."""
        return self._checkpoint
