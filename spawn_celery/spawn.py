"""``Spawn``: the actor system builder (spawn-python-sdk's entry point), and ``create_actor_ref``."""

from __future__ import annotations

from spawn_celery.actor import Actor
from spawn_celery.client import Client
from spawn_celery.errors import DefinitionError
from spawn_celery.reference import ActorRef


class Spawn:
    """Declares an actor system and its Python actors. Run it with ``spawn-celery worker --app module:attr``."""

    def __init__(self) -> None:
        """Start with no system and no actors."""
        self.system_name = ""
        self.actors: dict[str, Actor] = {}
        self._host = ""
        self._port = 0
        self._proxy_host = ""
        self._proxy_port = 0

    def actor_system(self, name: str) -> Spawn:
        """Name the actor system."""
        if not name or "." in name or ":" in name:
            raise DefinitionError(f"actor system name {name!r} must be non-empty without '.' or ':'")
        self.system_name = name
        return self

    def add_actor(self, actor: Actor) -> Spawn:
        """Add an actor type (keyed by name; adding another with the same name is an error)."""
        if actor.name in self.actors and self.actors[actor.name] is not actor:
            raise DefinitionError(f"two actors are named {actor.name!r} in system {self.system_name!r}")
        self.actors[actor.name] = actor
        return self

    def host(self, address: str) -> Spawn:
        """Kept for spawn-python-sdk compatibility (Python actors run inside workers; no host server)."""
        self._host = address
        return self

    def port(self, port: int) -> Spawn:
        """Kept for spawn-python-sdk compatibility."""
        self._port = port
        return self

    def proxy_host(self, address: str) -> Spawn:
        """Kept for spawn-python-sdk compatibility."""
        self._proxy_host = address
        return self

    def proxy_port(self, port: int) -> Spawn:
        """Kept for spawn-python-sdk compatibility."""
        self._proxy_port = port
        return self

    def validate(self) -> None:
        """Check the system is complete.

        Raises:
            DefinitionError: no system name or no actors.
        """
        if not self.system_name:
            raise DefinitionError("call .actor_system(name) before starting")
        if not self.actors:
            raise DefinitionError(f"actor system {self.system_name!r} has no actors: call .add_actor(actor)")

    def start(self) -> None:
        """Run a worker hosting these actors in the foreground (like ``spawn-celery worker``)."""
        from spawn_celery.config import Settings
        from spawn_celery.worker import serve

        self.validate()
        serve(self, Settings.from_env())

    @staticmethod
    def create_actor_ref(
        system: str,
        actor_name: str,
        parent: str | None = None,
        state_revision: int | None = None,
        *,
        client: Client | None = None,
    ) -> ActorRef:
        """Return a reference to ``actor_name``; with ``parent``, spawn it from that unnamed template first."""
        return ActorRef(client or Client.default(), system, actor_name, parent, state_revision)
