"""spawn_celery: the Spawn actor mesh (eigr Spawn) in Python on Celery and Redis.

Declare actors with :class:`Actor` and :class:`ActorSettings`, return :class:`Value` from actions, group them in a
:class:`Spawn` system and run them with ``spawn-celery worker --app module:attr``. Call them with
``Spawn.create_actor_ref(system, name).invoke(action, request)``.
"""

from spawn_celery.actor import Actor, ActorSettings, Channel, Kind
from spawn_celery.client import Client, StateView
from spawn_celery.config import Settings
from spawn_celery.context import ActorRefId, Context
from spawn_celery.errors import (
    ActionNotFound,
    ActorBusy,
    ActorError,
    ActorNotFound,
    ConfigError,
    DefinitionError,
    InvocationTimeout,
    SpawnError,
    StateConflict,
)
from spawn_celery.reference import ActorRef
from spawn_celery.spawn import Spawn
from spawn_celery.value import Metadata, ReplyKind, Value
from spawn_celery.workflows import Broadcast, Effect, Forward, Pipe

__version__ = "0.1.0"

__all__ = [
    "ActionNotFound",
    "Actor",
    "ActorBusy",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorRefId",
    "ActorSettings",
    "Broadcast",
    "Channel",
    "Client",
    "ConfigError",
    "Context",
    "DefinitionError",
    "Effect",
    "Forward",
    "InvocationTimeout",
    "Kind",
    "Metadata",
    "Pipe",
    "ReplyKind",
    "Settings",
    "Spawn",
    "SpawnError",
    "StateConflict",
    "StateView",
    "Value",
    "__version__",
]
