"""The shared actor registry in Redis: definitions, remote hosts, spawned instances and channel subscriptions.

Workers record the ``Actor`` message of each Python actor they host; the gateway records those of remote SDK
hosts. Every process routes from here without importing user code. Lookups are cached in-process for
``ttl`` seconds (positive results only, so an unknown actor is always checked afresh). ``Entry``, a resolved
instance, lives in :mod:`spawn_celery.entry` and is re-exported here.
"""

from __future__ import annotations

import json
import time

import redis

from spawn_celery import keys, scripts
from spawn_celery.actor import DEFAULT_CHANNEL_ACTION, Kind
from spawn_celery.entry import Entry as Entry  # re-exported: callers import it from here
from spawn_celery.errors import ActorNotFound, DefinitionError, SpawnConflict
from spawn_celery.proto import actor_pb2

_LOOKUP = """
return {redis.call('HGET', KEYS[1], ARGV[1]) or false, redis.call('HGET', KEYS[2], ARGV[1]) or false,
        redis.call('HGET', KEYS[3], ARGV[1]) or false}
"""
"""An actor's definition, host and instance record in one call (false keeps the places of missing ones)."""

_CONSUME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""

Subscriptions = list[tuple[str, str]]
_MAX_CACHED = 10_000
"""Most cached lookups (and parsed definitions) kept per process."""


class Registry:
    """Reads and writes the actor registry."""

    def __init__(self, *, client: redis.Redis, ttl: float = 2.0) -> None:
        """Use ``client`` (bytes responses) and cache positive lookups for ``ttl`` seconds."""
        self._redis = client
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Entry]] = {}
        # Parsed definitions by their bytes: the instances of one template share one message (memory, parse time).
        self._parsed: dict[bytes, actor_pb2.Actor] = {}
        self._templates: dict[tuple[str, str], tuple[float, bytes, bytes | None]] = {}
        self._instances: dict[tuple[str, str], tuple[float, Entry]] = {}  # see instance()
        self._consume = client.register_script(_CONSUME)
        self._lookup = client.register_script(_LOOKUP)
        self._runner = scripts.Runner(client)

    def register(
        self,
        system: str,
        actors: list[actor_pb2.Actor],
        *,
        host: str = "",
        channels: dict[str, Subscriptions] | None = None,
    ) -> None:
        """Record (or overwrite: registration is idempotent) actor definitions of ``system``.

        Subscriptions are replaced: an actor that re-registers without a channel it had before leaves it. UNNAMED
        templates do not subscribe themselves; their list is kept for the instances spawned from them.

        Args:
            system: the actor system name.
            actors: the ``Actor`` messages.
            host: the remote host URL serving them, "" for Python workers.
            channels: per actor name, ``(topic, action)`` subscriptions; default from ``metadata.channel_group``.

        Raises:
            DefinitionError: a timer action has a period <= 0 ms, or a POOLED actor declares timer actions.
        """
        for actor in actors:
            _validate(actor)
        names = [actor.id.name for actor in actors]
        previous = self._redis.hmget(keys.subscriptions(system), names) if names else []
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(keys.SYSTEMS, system)
        for actor, old in zip(actors, previous, strict=True):
            name = actor.id.name
            actor.id.system = system
            pipe.hset(keys.registry(system), name, actor.SerializeToString())
            pipe.hset(keys.hosts(system), name, host)
            subs = (channels or {}).get(name)
            if subs is None:
                subs = _default_subscriptions(actor)
            for topic, action in _decode(old):
                pipe.srem(keys.channel(system, topic), f"{name}{keys.SEP}{action}")
            pipe.hset(keys.subscriptions(system), name, json.dumps(subs))
            if Kind.from_wire(actor.settings.kind) is not Kind.UNNAMED:
                for topic, action in subs:
                    pipe.sadd(keys.channel(system, topic), f"{name}{keys.SEP}{action}")
        pipe.execute()
        self._cache.clear()
        self._templates.clear()
        self._instances.clear()

    def lookup(self, system: str, name: str) -> Entry:
        """Resolve an actor instance.

        Raises:
            ActorNotFound: not registered and never spawned.
        """
        cached = self._cache.get((system, name))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        raw, host, inst = self._records(system, name)
        parent, revision = "", 0
        if raw is None and inst is not None:
            parent_raw, _, rev_raw = inst.decode().partition(keys.SEP)
            parent, revision = parent_raw, int(rev_raw or 0)
            raw, host = self._template_record(system, parent, now)
        if raw is None:
            raise ActorNotFound(system, name)
        entry = Entry(system, name, self._definition(raw), (host or b"").decode(), parent, revision)
        _remember(self._cache, (system, name), entry, now + self._ttl, now)
        return entry

    def instance(self, system: str, name: str, parent: str) -> Entry:
        """An instance of the template ``parent`` as a worker runs it, without reading its instance record.

        For invocations a router has sent (it resolved the instance and wrote ``parent`` into the request); the
        activation reads the pending restore revision itself, so the entry's ``revision`` is 0.

        Raises:
            ActorNotFound: the template is not registered.
        """
        now = time.monotonic()
        cached = self._instances.get((system, name))
        if cached is not None and cached[0] > now and cached[1].parent == parent:
            return cached[1]
        raw, host = self._template_record(system, parent, now)
        if raw is None:
            raise ActorNotFound(system, name)
        entry = Entry(system, name, self._definition(raw), (host or b"").decode(), parent, 0)
        _remember(self._instances, (system, name), entry, now + self._ttl, now)
        return entry

    def _template_record(self, system: str, parent: str, now: float) -> tuple[bytes | None, bytes | None]:
        """The definition bytes and host of ``parent``: many instances, one template, read once per ttl."""
        template = self._templates.get((system, parent))
        if template is not None and template[0] > now:
            return template[1], template[2]
        raw, host, _ = self._records(system, parent)
        if raw is not None:
            self._templates[(system, parent)] = (now + self._ttl, raw, host)
        return raw, host

    def _records(self, system: str, name: str) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The registry's definition, host and instance record of ``name`` (``None`` where missing), in one call."""
        raw, host, inst = self._runner.run(
            self._lookup, [keys.registry(system), keys.hosts(system), keys.instances(system)], [name]
        )
        return raw, host, inst

    def _definition(self, raw: bytes) -> actor_pb2.Actor:
        """The parsed ``Actor`` message of ``raw`` (shared by every entry with the same bytes)."""
        definition = self._parsed.get(raw)
        if definition is None:
            if len(self._parsed) >= _MAX_CACHED:
                self._parsed.clear()
            definition = self._parsed[raw] = actor_pb2.Actor.FromString(raw)
        return definition

    def spawn(self, system: str, name: str, parent: str, *, revision: int = 0) -> Entry:
        """Create an instance ``name`` of the unnamed template ``parent`` (idempotent for the same parent).

        The instance subscribes to the template's channels with the template's channel actions. A ``revision``
        is a pending restore, applied at the instance's next activation and then cleared
        (:meth:`consume_revision`).

        Raises:
            ActorNotFound: the template is not registered, or is not an UNNAMED template.
            SpawnConflict: ``name`` exists already with another parent, or is a registered actor type.
        """
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(keys.registry(system), parent)
        pipe.hexists(keys.registry(system), name)
        pipe.hget(keys.subscriptions(system), parent)
        raw, is_type, template_subs = pipe.execute()
        template = _template(system, parent, raw)
        if is_type:
            raise SpawnConflict(system, name, parent, name)
        value = f"{parent}{keys.SEP}{revision}"
        created = self._redis.hsetnx(keys.instances(system), name, value)
        if not created:
            existing = _text(self._redis.hget(keys.instances(system), name) or b"").partition(keys.SEP)[0]
            if existing != parent:
                raise SpawnConflict(system, name, parent, existing)
            if revision:
                self._redis.hset(keys.instances(system), name, value)
        subs = _decode(template_subs) if template_subs is not None else _default_subscriptions(template)
        if subs:
            pipe = self._redis.pipeline(transaction=True)
            for topic, action in subs:
                pipe.sadd(keys.channel(system, topic), f"{name}{keys.SEP}{action}")
            pipe.hset(keys.subscriptions(system), name, json.dumps(subs))
            pipe.execute()
        self._cache.pop((system, name), None)
        return self.lookup(system, name)

    def template(self, system: str, parent: str) -> actor_pb2.Actor:
        """The definition of the UNNAMED template ``parent``.

        Raises:
            ActorNotFound: it is not registered, or is not an UNNAMED template.
        """
        return _template(system, parent, self._redis.hget(keys.registry(system), parent))

    def consume_revision(self, system: str, name: str, parent: str, revision: int) -> bool:
        """Clear a pending restore once applied (only if it is still ``revision``); return whether it was cleared."""
        self._cache.pop((system, name), None)
        return bool(
            self._consume(
                keys=[keys.instances(system)],
                args=[name, f"{parent}{keys.SEP}{revision}", f"{parent}{keys.SEP}0"],
            )
        )

    def subscribers(self, system: str, topic: str) -> list[tuple[str, str]]:
        """Return ``(actor name, channel action)`` pairs subscribed to ``topic``."""
        members = self._redis.smembers(keys.channel(system, topic))
        pairs = [_text(m).partition(keys.SEP) for m in members]
        return sorted((name, action or DEFAULT_CHANNEL_ACTION) for name, _, action in pairs)

    def systems(self) -> list[str]:
        """Return the registered actor system names."""
        return sorted(_text(s) for s in self._redis.smembers(keys.SYSTEMS))

    def actors(self, system: str) -> dict[str, Entry]:
        """Return the registered actor types of ``system`` (not spawned instances)."""
        raw = self._redis.hgetall(keys.registry(system))
        hosts = self._redis.hgetall(keys.hosts(system))
        return {
            _text(k): Entry(system, _text(k), actor_pb2.Actor.FromString(_raw(v)), _text(hosts.get(k) or b""))
            for k, v in raw.items()
        }

    def remote_queues(self) -> set[str]:
        """Queues of actor types served by remote SDK hosts (consumed by ``worker --remote``)."""
        queues: set[str] = set()
        for system in self.systems():
            for name, host in self._redis.hgetall(keys.hosts(system)).items():
                if host:
                    queues.add(keys.queue(system, _text(name)))
        return queues


def _validate(actor: actor_pb2.Actor) -> None:
    """Refuse definitions the runtime cannot honour (remote registrations included)."""
    name = actor.id.name
    for timer in actor.timer_actions:
        if timer.seconds <= 0:
            raise DefinitionError(
                f"timer action {timer.action.name!r} of actor {name!r} must have a period > 0 ms, got {timer.seconds}"
            )
    if actor.timer_actions and Kind.from_wire(actor.settings.kind) is Kind.POOLED:
        raise DefinitionError(f"POOLED actor {name!r} cannot have timer actions: pooled actors are never activated")


def _default_subscriptions(actor: actor_pb2.Actor) -> Subscriptions:
    return [(t.strip(), DEFAULT_CHANNEL_ACTION) for t in actor.metadata.channel_group.split(",") if t.strip()]


def pending_of(record: bytes | str | None) -> int:
    """The pending restore revision in a spawned instance's record ``parent<SEP>revision`` (0 = none)."""
    if record is None:
        return 0
    return int(_text(record).partition(keys.SEP)[2] or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _decode(raw: bytes | str | None) -> Subscriptions:
    if not raw:
        return []
    return [(str(topic), str(action)) for topic, action in json.loads(raw)]


def _remember(
    cache: dict[tuple[str, str], tuple[float, Entry]], key: tuple[str, str], entry: Entry, until: float, now: float
) -> None:
    """Cache ``entry`` until ``until``, bounded by active use, not by every actor ever seen.

    A full cache drops its expired entries first, and everything if that is not enough.
    """
    if len(cache) >= _MAX_CACHED:
        for stale in [k for k, v in cache.items() if v[0] <= now]:
            del cache[stale]
        if len(cache) >= _MAX_CACHED:
            cache.clear()
    cache[key] = (until, entry)


def _template(system: str, parent: str, raw: bytes | str | None) -> actor_pb2.Actor:
    if raw is None:
        raise _not_found(system, parent, f"unnamed template {parent} not found on ActorSystem {system}")
    template = actor_pb2.Actor.FromString(_raw(raw))
    kind = Kind.from_wire(template.settings.kind)
    if kind is not Kind.UNNAMED:
        message = f"{parent} on ActorSystem {system} is a {kind.value} actor, not an unnamed template"
        raise _not_found(system, parent, message)
    return template


def _not_found(system: str, actor: str, message: str) -> ActorNotFound:
    """An :class:`ActorNotFound` with a more precise message."""
    exc = ActorNotFound(system, actor)
    exc.args = (message,)
    return exc
