"""``ActorRef``: a handle on one actor, with spawn-python-sdk's ``invoke`` and an idiomatic raising ``call``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spawn_celery.client import Client
from spawn_celery.errors import ActorNotFound, SpawnError


class ActorRef:
    """A reference to ``actor`` in ``system``; with ``parent``, the instance is spawned from that template."""

    def __init__(
        self, client: Client, system: str, actor: str, parent: str | None = None, revision: int | None = None
    ) -> None:
        """Create the reference, spawning the instance first when ``parent`` is given."""
        self.client = client
        self.system = system
        self.actor = actor
        self.parent = parent or ""
        if parent:
            client.spawn(system, actor, parent, revision=revision or 0)

    def invoke(
        self,
        action: str,
        request: Any = None,
        async_mode: bool = False,
        pooled: bool = False,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[str, Any]:
        """Invoke like spawn-python-sdk: ``("ok", value)``, ``("actor_not_found", None)`` or ``("error", message)``.

        Async calls return ``("ok", None)`` once the invocation is enqueued.
        """
        del pooled  # the actor's kind decides; kept for spawn-python-sdk compatibility
        try:
            value = self.call(action, request, async_mode=async_mode, metadata=metadata, timeout=timeout)
        except ActorNotFound:
            return "actor_not_found", None
        except SpawnError as exc:
            return "error", str(exc)
        return "ok", value

    def call(
        self,
        action: str,
        request: Any = None,
        *,
        async_mode: bool = False,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
        scheduled_to: int = 0,
    ) -> Any:
        """Invoke and return the reply value, raising the typed :class:`~spawn_celery.errors.SpawnError` on failure."""
        return self.client.invoke(
            self.system, self.actor, action, request, async_mode=async_mode, metadata=metadata,
            timeout=timeout, scheduled_to=scheduled_to,
        )

    def cast(self, action: str, request: Any = None, *, metadata: Mapping[str, str] | None = None) -> None:
        """Invoke asynchronously: return once enqueued; the action runs exactly once."""
        self.call(action, request, async_mode=True, metadata=metadata)

    def schedule(self, action: str, request: Any = None, *, at_ms: int) -> None:
        """Invoke at ``at_ms`` (Unix epoch ms); a time in the past runs now."""
        self.call(action, request, scheduled_to=at_ms)

    def state(self) -> Any:
        """The actor's current state value."""
        return self.client.state(self.system, self.actor).value

    def __repr__(self) -> str:
        """Show the target."""
        return f"ActorRef({self.system!r}, {self.actor!r}{', parent=' + repr(self.parent) if self.parent else ''})"
