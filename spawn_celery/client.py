"""The client: invoke actors, spawn instances and read state from any Python process.

Used by ``ActorRef``, the gateway, the activators and the CLI. Unknown actors and actions are refused before
anything is enqueued; sync calls wait for the reply through the Celery result backend.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spawn_celery import codec, keys
from spawn_celery.config import Settings
from spawn_celery.errors import ActorNotFound
from spawn_celery.message import Message, Reply, new_id
from spawn_celery.proto import actor_pb2, protocol_pb2
from spawn_celery.registry import Entry
from spawn_celery.routing import RESTORE_ACTION
from spawn_celery.services import Services


@dataclass(frozen=True)
class StateView:
    """An actor's state as seen from outside.

    Attributes:
        value: the unpacked state (``None`` if none).
        revision: its revision.
        tags: the actor's tags.
        active: whether the actor is active (hot in Redis) or was read from the statestore.
        type_url: the state's type URL ("" if none).
    """

    value: Any
    revision: int
    tags: dict[str, str]
    active: bool
    type_url: str = ""


class Client:
    """Invokes actors through Celery."""

    _default: Client | None = None

    def __init__(self, settings: Settings | None = None, *, services: Services | None = None) -> None:
        """Use ``services`` or build them from ``settings`` (default: the environment)."""
        self.services = services or Services.create(settings or Settings.from_env())
        self.settings = self.services.settings

    @classmethod
    def default(cls) -> Client:
        """A process-wide client from the environment: a convenience for scripts and ``ActorRef``."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def request(
        self,
        system: str,
        actor: str,
        action: str,
        payload: Any = None,
        *,
        parent: str = "",
        async_mode: bool = False,
        metadata: Mapping[str, str] | None = None,
        scheduled_to: int = 0,
        pooled: bool = False,
        caller: actor_pb2.ActorId | None = None,
    ) -> protocol_pb2.InvocationRequest:
        """Build an ``InvocationRequest``."""
        request = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=system)),
            action_name=action,
            scheduled_to=scheduled_to,
            pooled=pooled,
            register_ref=parent,
        )
        setattr(request, "async", async_mode)
        request.metadata.update(metadata or {})
        if caller is not None:
            request.caller.CopyFrom(caller)
        packed = codec.pack(payload)
        if packed is not None:
            request.value.CopyFrom(packed)
        else:
            request.noop.SetInParent()
        return request

    def send(
        self, request: protocol_pb2.InvocationRequest, *, invocation_id: str | None = None, timeout: float | None = None
    ) -> Reply:
        """Route ``request`` and, unless async or scheduled, wait for its reply.

        Raises:
            ActorNotFound / ActionNotFound: the target does not exist (nothing was enqueued).
            InvocationTimeout: a sync call got no reply in time.
            TransportUnavailable: Redis or the broker is down.
        """
        message = Message(invocation_id or new_id(), request)
        sync = not getattr(request, "async") and not request.scheduled_to
        if sync:
            message.reply_to = message.id
        entry = self.services.router.submit(message)
        if not sync:
            return Reply(revision=0)
        wait = timeout or _request_timeout(request, self.settings.invoke_timeout_ms)
        reply = self.services.transport.wait(message.reply_to, wait)
        del entry
        return reply

    def invoke(
        self,
        system: str,
        actor: str,
        action: str,
        payload: Any = None,
        *,
        parent: str = "",
        async_mode: bool = False,
        metadata: Mapping[str, str] | None = None,
        scheduled_to: int = 0,
        invocation_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Invoke ``system/actor.action`` with ``payload`` and return the unpacked reply (``None`` if async).

        Raises:
            SpawnError: the typed error of the failure (``ActorNotFound``, ``ActionNotFound``, ``ActorError``, ...).
        """
        request = self.request(
            system,
            actor,
            action,
            payload,
            parent=parent,
            async_mode=async_mode,
            metadata=metadata,
            scheduled_to=scheduled_to,
        )
        reply = self.send(request, invocation_id=invocation_id, timeout=timeout)
        reply.raise_for_error()
        return codec.unpack(reply.payload_any())

    def spawn(self, system: str, name: str, parent: str, *, revision: int = 0) -> Entry:
        """Create an instance ``name`` of the unnamed template ``parent`` (idempotent).

        With ``revision``, the instance's next activation starts from that stored revision; an instance active now
        is restored right away, so the next call sees revision ``revision``'s state either way.
        """
        entry = self.services.registry.spawn(system, name, parent, revision=revision)
        if revision and self.services.redis.exists(keys.state(system, name)):
            self.restore(system, name, revision)
            self.services.registry.consume_revision(system, name, parent, revision)
        return entry

    def restore(self, system: str, actor: str, revision: int, *, timeout: float | None = None) -> Any:
        """Restore an actor's state to a stored revision (as a new revision); return the restored state."""
        return self.invoke(system, actor, RESTORE_ACTION, metadata={"revision": str(revision)}, timeout=timeout)

    def state(self, system: str, actor: str) -> StateView:
        """Read an actor's current state: hot state if active, else the latest snapshot.

        Raises:
            ActorNotFound: unknown actor.
        """
        self.services.registry.lookup(system, actor)
        raw, revision = self.services.redis.hmget(keys.state(system, actor), ["s", "r"])
        if raw is not None:
            state = actor_pb2.ActorState.FromString(bytes(raw))  # type: ignore[arg-type]
            packed = state.state if state.HasField("state") else None
            type_url = packed.type_url if packed else ""
            return StateView(codec.unpack(packed), int(revision or 0), dict(state.tags), True, type_url)
        snapshot = self.services.statestore.load(system, actor)
        if snapshot is None:
            return StateView(None, 0, {}, False)
        from google.protobuf import any_pb2

        packed_any = any_pb2.Any(type_url=snapshot.type_url, value=snapshot.data) if snapshot.type_url else None
        return StateView(codec.unpack(packed_any), snapshot.revision, dict(snapshot.tags), False, snapshot.type_url)

    def exists(self, system: str, actor: str) -> bool:
        """Whether the actor is registered or spawned."""
        try:
            self.services.registry.lookup(system, actor)
        except ActorNotFound:
            return False
        return True


def _request_timeout(request: protocol_pb2.InvocationRequest, default_ms: int) -> float:
    raw = request.metadata.get("request-timeout", "")
    try:
        ms = int(raw) if raw else default_ms
    except ValueError:
        ms = default_ms
    return max(ms, 1) / 1000.0


def now_ms() -> int:
    """Current Unix time in milliseconds (for ``scheduled_to``)."""
    return int(time.time() * 1000)
