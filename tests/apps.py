"""Actors the tests run in real workers (system ``tests``)."""

from __future__ import annotations

from typing import Any

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment

counter = Actor(ActorSettings(name="counter", kind=Kind.UNNAMED, deactivate_timeout=600_000, snapshot_timeout=200))


@counter.action("increment")
def increment(request: Increment | None, ctx: Context) -> Value:
    """Add ``request.by`` (default 1) and reply with the new value."""
    current = ctx.state.value if ctx.state is not None else 0
    new = CounterState(value=current + (request.by if request is not None else 1))
    return Value().of(CounterValue(value=new.value), new).reply()


@counter.action("checkpointed")
def checkpointed(request: Increment | None, ctx: Context) -> Value:
    """Like increment, but persisted to SQL before the reply."""
    current = ctx.state.value if ctx.state is not None else 0
    new = CounterState(value=current + 1)
    return Value().of(CounterValue(value=new.value), new).reply(checkpoint=True)


@counter.action("fail")
def fail(request: Any, ctx: Context) -> Value:
    """Raise; the state must not change."""
    raise RuntimeError("boom: the action failed on purpose")


@counter.action("bad_state")
def bad_state(request: Any, ctx: Context) -> Value:
    """Return a state that cannot be serialized."""
    return Value().state({1, 2, 3}).reply()


@counter.action("slow")
def slow(request: Any, ctx: Context) -> Value:
    """Sleep ``request["s"]`` seconds (or wait for the test's gate, see ``tests.support.hold``), then increment."""
    from tests.support import hold

    hold(request)
    current = ctx.state.value if ctx.state is not None else 0
    new = CounterState(value=current + 1)
    return Value().of(CounterValue(value=new.value), new).reply()


system = Spawn().actor_system("tests").add_actor(counter)
