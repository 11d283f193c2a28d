"""``Entry``: one resolved actor instance, as the registry returns it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from spawn_celery import keys
from spawn_celery.actor import Kind
from spawn_celery.proto import actor_pb2


@dataclass(frozen=True)
class Entry:
    """A resolved actor instance.

    Attributes:
        system: the actor system.
        name: the instance name.
        definition: the registered ``Actor`` message of the actor type (the template for spawned instances).
        host: the remote host URL, or "" when Python workers host it in-process.
        parent: the template name for spawned instances, else "".
        revision: the pending spawn-time restore (``?revision=N``) when looked up, else 0; the runtime reads it
            afresh at activation (inside :meth:`~spawn_celery.activation.Activations.begin`).
    """

    system: str
    name: str
    definition: actor_pb2.Actor
    host: str = ""
    parent: str = ""
    revision: int = 0

    @property
    def type_name(self) -> str:
        """The actor type name: the template for instances, else the name."""
        return self.parent or self.name

    @property
    def kind(self) -> Kind:
        """The actor kind."""
        return Kind.from_wire(self.definition.settings.kind)

    @property
    def queue(self) -> str:
        """The Celery queue serving this instance."""
        return keys.queue(self.system, self.type_name)

    @cached_property
    def timers(self) -> dict[str, int]:
        """Timer actions and their periods (ms)."""
        return {t.action.name: max(int(t.seconds), 1) for t in self.definition.timer_actions}

    @cached_property
    def actions(self) -> frozenset[str]:
        """Action names, timer actions included (computed once per entry: checked on every invocation)."""
        names = {a.name for a in self.definition.actions}
        names.update(t.action.name for t in self.definition.timer_actions)
        return frozenset(names)
