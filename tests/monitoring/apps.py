"""Actors of the monitoring tests (system ``mon``), hosted by a real worker."""

from __future__ import annotations

from typing import Any

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment
from tests.support import hold

counter = Actor(ActorSettings(name="counter", kind=Kind.UNNAMED, deactivate_timeout=600_000, snapshot_timeout=200))
blink = Actor(ActorSettings(name="blink", kind=Kind.UNNAMED, deactivate_timeout=300, snapshot_timeout=100))


def _add(ctx: Context, by: int) -> Value:
    new = CounterState(value=(ctx.state.value if ctx.state is not None else 0) + by)
    return Value().of(CounterValue(value=new.value), new).reply()


@counter.action("increment")
def increment(request: Increment | None, ctx: Context) -> Value:
    """Add ``request.by`` (default 1)."""
    return _add(ctx, request.by if request is not None else 1)


@counter.action("nap")
def nap(request: Any, ctx: Context) -> Value:
    """Hold the actor's lock for ``request["s"]`` seconds (or until the test opens ``request["gate"]``), then add 1."""
    hold(request, 0.5)
    return _add(ctx, 1)


@counter.action("fail")
def fail(request: Any, ctx: Context) -> Value:
    """Raise."""
    raise RuntimeError("failed on purpose")


@blink.action("increment")
def blink_increment(request: Increment | None, ctx: Context) -> Value:
    """Add 1; the actor deactivates 300 ms later."""
    return _add(ctx, 1)


system = Spawn().actor_system("mon").add_actor(counter).add_actor(blink)
