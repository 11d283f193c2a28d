"""Actor definitions: settings, actions and timer actions (spawn-python-sdk names, bugs fixed).

Handlers take ``(request, ctx)`` or ``(ctx)`` and return a :class:`~spawn_celery.value.Value`. A two-argument
handler invoked without a payload gets ``request=None`` (spawn-python-sdk raised a TypeError there), and type
annotations are optional.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spawn_celery.context import Context
from spawn_celery.errors import DefinitionError
from spawn_celery.proto import actor_pb2
from spawn_celery.value import Value

Handler = Callable[..., Value]
RESERVED_GET_ACTIONS = frozenset({"get", "Get", "get_state", "getState", "GetState"})
"""Actions answered by the runtime with the current state when the actor does not define them (as Spawn)."""
INIT_ACTIONS = ("init", "Init", "setup", "Setup")
"""Actions run once right after an actor is activated, if defined (as Spawn)."""
DEFAULT_CHANNEL_ACTION = "receive"
KEEP_TIMERS_TAG = "spawn-celery/keep-timers"
"""``Metadata.tags`` entry of a registered ``Actor`` whose timers keep firing after deactivation."""


class Kind(enum.StrEnum):
    """Actor kinds."""

    NAMED = "NAMED"
    UNNAMED = "UNNAMED"
    POOLED = "POOLED"

    @property
    def wire(self) -> int:
        """The ``eigr.functions.protocol.actors.Kind`` number."""
        return {"NAMED": 1, "UNNAMED": 2, "POOLED": 3}[self.value]

    @classmethod
    def from_wire(cls, number: int) -> Kind:
        """Map a wire number to a kind (0 and unknown numbers count as NAMED, as Spawn)."""
        return {2: cls.UNNAMED, 3: cls.POOLED}.get(number, cls.NAMED)


@dataclass(frozen=True)
class Channel:
    """A channel subscription: broadcasts to ``topic`` invoke ``action`` (Gen-2 ``Channel``)."""

    topic: str
    action: str = DEFAULT_CHANNEL_ACTION


@dataclass
class ActorSettings:
    """How an actor behaves. Times are milliseconds.

    Attributes:
        name: the actor (or template) name.
        kind: NAMED, UNNAMED (a template for spawned instances) or POOLED (stateless, no lock).
        stateful: whether state is kept and persisted.
        channel: a channel name to subscribe to, or a list of channel names / :class:`Channel` (Gen-2).
        deactivate_timeout: idle time after which the actor is flushed and evicted from Redis.
        snapshot_timeout: write-behind period for dirty state.
        min_pool_size: POOLED: informational minimum (stateless instances cost nothing idle).
        max_pool_size: POOLED: the most invocations served at once (0 = unbounded).
        tags: initial tags.
        state_type: optional full name of the state message (documentation only, as Spawn).
        keep_timers: keep timer actions firing after deactivation (re-activating the actor each period).
    """

    name: str
    kind: Kind = Kind.NAMED
    stateful: bool = True
    channel: str | Sequence[str | Channel] | None = None
    deactivate_timeout: int = 30_000
    snapshot_timeout: int = 2_000
    min_pool_size: int = 0
    max_pool_size: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)
    state_type: str | None = None
    keep_timers: bool = False

    def __post_init__(self) -> None:
        """Validate at declaration time."""
        if not self.name or "/" in self.name or ":" in self.name:
            raise DefinitionError(f"actor name {self.name!r} must be non-empty without '/' or ':'")
        if isinstance(self.kind, str) and not isinstance(self.kind, Kind):
            self.kind = Kind(self.kind.upper().replace("UNAMED", "UNNAMED"))
        if self.kind is Kind.POOLED and self.stateful:
            self.stateful = False  # pooled actors are stateless by definition
        timeouts = (("deactivate_timeout", self.deactivate_timeout), ("snapshot_timeout", self.snapshot_timeout))
        for label, value in timeouts:
            if value <= 0:
                raise DefinitionError(f"{label} of actor {self.name!r} must be > 0 ms, got {value}")
        if self.max_pool_size < 0 or self.min_pool_size < 0:
            raise DefinitionError(f"pool sizes of actor {self.name!r} must be >= 0")

    @property
    def channels(self) -> list[Channel]:
        """The channel subscriptions, normalised."""
        if not self.channel:
            return []
        items = [self.channel] if isinstance(self.channel, str) else list(self.channel)
        return [c if isinstance(c, Channel) else Channel(str(c)) for c in items]


@dataclass(frozen=True)
class TimerAction:
    """A timer action: ``action`` runs every ``every`` milliseconds while the actor is active."""

    every: int
    action: Handler


class Actor:
    """An actor type: settings plus named action handlers."""

    def __init__(self, settings: ActorSettings) -> None:
        """Create an actor type with no actions yet."""
        self.settings = settings
        self.action_handlers: dict[str, Handler] = {}
        self.timer_action_handlers: dict[str, TimerAction] = {}
        self._arity: dict[str, int] = {}

    @property
    def name(self) -> str:
        """The actor's name."""
        return self.settings.name

    def action(self, name: str | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated function as the action ``name`` (default: the function name)."""

        def register(fn: Handler) -> Handler:
            self._add(name or fn.__name__, fn)
            return fn

        return register

    def timer_action(self, every: int, name: str | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated function as a timer action running every ``every`` milliseconds."""
        if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
            raise DefinitionError(f"timer period of actor {self.name!r} must be a positive number of ms, got {every!r}")
        if self.settings.kind is Kind.POOLED:
            raise DefinitionError(
                f"POOLED actor {self.name!r} cannot have timer actions: pooled actors are never activated"
            )

        def register(fn: Handler) -> Handler:
            action_name = name or fn.__name__
            self._add(action_name, fn)
            self.timer_action_handlers[action_name] = TimerAction(every, fn)
            return fn

        return register

    def _add(self, action_name: str, fn: Handler) -> None:
        if action_name in self.action_handlers:
            raise DefinitionError(f"action {action_name!r} is defined twice on actor {self.name!r}")
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(params) not in (1, 2):
            raise DefinitionError(
                f"action {action_name!r} of actor {self.name!r} must take (request, ctx) or (ctx), "
                f"it takes {len(params)} required arguments"
            )
        self.action_handlers[action_name] = fn
        self._arity[action_name] = len(params)

    def has_action(self, action_name: str) -> bool:
        """Whether ``action_name`` is defined (timer actions included)."""
        return action_name in self.action_handlers

    def call(self, action_name: str, request: Any, ctx: Context) -> Value:
        """Run an action handler and check that it returned a :class:`Value`.

        Raises:
            DefinitionError: the handler returned something else.
        """
        fn = self.action_handlers[action_name]
        result = fn(request, ctx) if self._arity[action_name] == 2 else fn(ctx)
        if not isinstance(result, Value):
            raise DefinitionError(
                f"action {action_name!r} of actor {self.name!r} returned {type(result).__name__}, not a Value"
            )
        return result

    def to_proto(self, system: str) -> actor_pb2.Actor:
        """Describe this actor as Spawn's ``Actor`` message (what registration sends)."""
        s = self.settings
        proto = actor_pb2.Actor(
            id=actor_pb2.ActorId(name=s.name, system=system),
            state=actor_pb2.ActorState(tags=dict(s.tags)),
            metadata=actor_pb2.Metadata(
                channel_group=",".join(c.topic for c in s.channels), tags=dict(s.tags)
            ),
            settings=actor_pb2.ActorSettings(
                kind=s.kind.wire,  # type: ignore[arg-type]
                stateful=s.stateful,
                snapshot_strategy=actor_pb2.ActorSnapshotStrategy(
                    timeout=actor_pb2.TimeoutStrategy(timeout=s.snapshot_timeout)
                ),
                deactivation_strategy=actor_pb2.ActorDeactivationStrategy(
                    timeout=actor_pb2.TimeoutStrategy(timeout=s.deactivate_timeout)
                ),
                min_pool_size=s.min_pool_size,
                max_pool_size=s.max_pool_size,
            ),
        )
        if s.keep_timers:
            proto.metadata.tags[KEEP_TIMERS_TAG] = "true"
        proto.actions.extend(actor_pb2.Action(name=n) for n in self.action_handlers)
        for n, timer in self.timer_action_handlers.items():
            proto.timer_actions.append(actor_pb2.FixedTimerAction(seconds=timer.every, action=actor_pb2.Action(name=n)))
        return proto
