"""Example actor system ``example``: a protobuf counter, a spawnable counter template, a JSON tally, an echo pool.

Run it: ``spawn-celery worker --app spawn_celery.examples.counter:system``.
"""

from __future__ import annotations

from typing import Any

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment


def _increment(request: Increment | None, ctx: Context) -> Value:
    current = ctx.state.value if ctx.state is not None else 0
    by = request.by if request is not None else 1
    new = CounterState(value=current + by)
    return Value().of(CounterValue(value=new.value), new).reply()


def _value(ctx: Context) -> Value:
    return Value().of(CounterValue(value=ctx.state.value if ctx.state is not None else 0)).reply()


counter = Actor(ActorSettings(name="counter", kind=Kind.NAMED, stateful=True, deactivate_timeout=60_000))
counter.action("increment")(_increment)
counter.action("value")(_value)

counters = Actor(ActorSettings(name="counters", kind=Kind.UNNAMED, stateful=True))
counters.action("increment")(_increment)
counters.action("value")(_value)

tally = Actor(ActorSettings(name="tally", stateful=True))


@tally.action("add")
def add(request: Any, ctx: Context) -> Value:
    """Add ``request["n"]`` to a JSON state ``{"total": int, "count": int}``."""
    state = ctx.state or {"total": 0, "count": 0}
    n = int((request or {}).get("n", 1))
    new = {"total": state["total"] + n, "count": state["count"] + 1}
    return Value().of(new, new).reply()


echo = Actor(ActorSettings(name="echo", kind=Kind.POOLED, max_pool_size=4))


@echo.action("echo")
def echo_action(request: Any, ctx: Context) -> Value:
    """Reply with the request."""
    return Value().response(request).reply()


system = Spawn().actor_system("example").add_actor(counter).add_actor(counters).add_actor(tally).add_actor(echo)
