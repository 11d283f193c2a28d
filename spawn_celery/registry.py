"""The shared actor registry in Redis: definitions, remote hosts, spawned instances and channel subscriptions.

Workers record the ``Actor`` message of each Python actor they host; the gateway records those of remote SDK
hosts. Every process routes from here without importing user code. Lookups are cached in-process for
``ttl`` seconds (positive results only, so an unknown actor is always checked afresh).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from spawn_celery import keys
from spawn_celery.actor import DEFAULT_CHANNEL_ACTION, Kind
from spawn_celery.errors import ActorNotFound, SpawnConflict
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
        revision: the revision to restore on first activation (spawned with ``?revision=N``), else 0.
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

    @property
    def actions(self) -> frozenset[str]:
        """Action names, timer actions included."""
        names = {a.name for a in self.definition.actions}
        names.update(t.action.name for t in self.definition.timer_actions)
        return frozenset(names)


class Registry:
    """Reads and writes the actor registry."""

    def __init__(self, *, client: redis.Redis, ttl: float = 2.0) -> None:
        """Use ``client`` (bytes responses) and cache positive lookups for ``ttl`` seconds."""
        self._redis = client
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Entry]] = {}

    def register(self, system: str, actors: list[actor_pb2.Actor], *, host: str = "", channels: dict[str, list[tuple[str, str]]] | None = None) -> None:
        """Record (or overwrite: registration is idempotent) actor definitions of ``system``.

        Args:
            system: the actor system name.
            actors: the ``Actor`` messages.
            host: the remote host URL serving them, "" for Python workers.
            channels: per actor name, ``(topic, action)`` subscriptions; default from ``metadata.channel_group``.
        """
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(keys.SYSTEMS, system)
        for actor in actors:
            name = actor.id.name
            actor.id.system = system
            pipe.hset(keys.registry(system), name, actor.SerializeToString())
            pipe.hset(keys.hosts(system), name, host)
            subs = (channels or {}).get(name)
            if subs is None:
                subs = [(t.strip(), DEFAULT_CHANNEL_ACTION) for t in actor.metadata.channel_group.split(",") if t.strip()]
            if Kind.from_wire(actor.settings.kind) is not Kind.UNNAMED:
                for topic, action in subs:
                    pipe.sadd(keys.channel(system, topic), f"{name}{keys.SEP}{action}")
        pipe.execute()
        self._cache.clear()

    def lookup(self, system: str, name: str) -> Entry:
        """Resolve an actor instance.

        Raises:
            ActorNotFound: not registered and never spawned.
        """
        cached = self._cache.get((system, name))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(keys.registry(system), name)
        pipe.hget(keys.hosts(system), name)
        pipe.hget(keys.instances(system), name)
        raw, host, inst = pipe.execute()
        parent, revision = "", 0
        if raw is None and inst is not None:
            parent_raw, _, rev_raw = inst.decode().partition(keys.SEP)
            parent, revision = parent_raw, int(rev_raw or 0)
            raw, host = self._redis.hget(keys.registry(system), parent), self._redis.hget(keys.hosts(system), parent)
        if raw is None:
            raise ActorNotFound(system, name)
        entry = Entry(system, name, actor_pb2.Actor.FromString(raw), (host or b"").decode(), parent, revision)
        self._cache[(system, name)] = (now + self._ttl, entry)
        return entry

    def spawn(self, system: str, name: str, parent: str, *, revision: int = 0) -> Entry:
        """Create an instance ``name`` of the unnamed template ``parent`` (idempotent for the same parent).

        Raises:
            ActorNotFound: the template is not registered.
            SpawnConflict: ``name`` exists already with another parent, or is a registered actor type.
        """
        raw = self._redis.hget(keys.registry(system), parent)
        if raw is None:
            raise ActorNotFound(system, parent)
        template = actor_pb2.Actor.FromString(raw)
        if self._redis.hexists(keys.registry(system), name):
            raise SpawnConflict(system, name, parent, name)
        value = f"{parent}{keys.SEP}{revision}"
        created = self._redis.hsetnx(keys.instances(system), name, value)
        if not created:
            existing = (self._redis.hget(keys.instances(system), name) or b"").decode().partition(keys.SEP)[0]
            if existing != parent:
                raise SpawnConflict(system, name, parent, existing)
            if revision:
                self._redis.hset(keys.instances(system), name, value)
        for topic in (t.strip() for t in template.metadata.channel_group.split(",")):
            if topic:
                self._redis.sadd(keys.channel(system, topic), f"{name}{keys.SEP}{DEFAULT_CHANNEL_ACTION}")
        self._cache.pop((system, name), None)
        return self.lookup(system, name)

    def subscribers(self, system: str, topic: str) -> list[tuple[str, str]]:
        """Return ``(actor name, channel action)`` pairs subscribed to ``topic``."""
        members = self._redis.smembers(keys.channel(system, topic))
        pairs = [m.decode().partition(keys.SEP) for m in members]
        return sorted((name, action or DEFAULT_CHANNEL_ACTION) for name, _, action in pairs)

    def systems(self) -> list[str]:
        """Return the registered actor system names."""
        return sorted(s.decode() for s in self._redis.smembers(keys.SYSTEMS))

    def actors(self, system: str) -> dict[str, Entry]:
        """Return the registered actor types of ``system`` (not spawned instances)."""
        raw = self._redis.hgetall(keys.registry(system))
        hosts = self._redis.hgetall(keys.hosts(system))
        return {
            k.decode(): Entry(system, k.decode(), actor_pb2.Actor.FromString(v), (hosts.get(k) or b"").decode())
            for k, v in raw.items()
        }

    def remote_queues(self) -> set[str]:
        """Queues of actor types served by remote SDK hosts (consumed by ``worker --remote``)."""
        queues: set[str] = set()
        for system in self.systems():
            for name, host in self._redis.hgetall(keys.hosts(system)).items():
                if host:
                    queues.add(keys.queue(system, name.decode()))
        return queues
