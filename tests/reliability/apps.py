"""Actors of the fault-injection suite (system ``reltests``), run by real workers."""

from __future__ import annotations

import logging
from typing import Any

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment
from tests.support import hold


def _add(ctx: Context, by: int, *, checkpoint: bool = False) -> Value:
    current = ctx.state.value if ctx.state is not None else 0
    new = CounterState(value=current + by)
    return Value().of(CounterValue(value=new.value), new).reply(checkpoint=checkpoint)


counter = Actor(ActorSettings(name="counter", kind=Kind.UNNAMED, deactivate_timeout=600_000, snapshot_timeout=200))
"""Spawned per test; its dirty state is written behind every 200 ms."""


@counter.action("increment")
def increment(request: Increment | None, ctx: Context) -> Value:
    """Add ``request.by`` (default 1) and reply with the new value."""
    return _add(ctx, request.by if request is not None and request.by else 1)


@counter.action("checkpointed")
def checkpointed(request: Increment | None, ctx: Context) -> Value:
    """Add 1 and persist to SQL before the reply."""
    return _add(ctx, 1, checkpoint=True)


@counter.action("slow")
def slow(request: Any, ctx: Context) -> Value:
    """Sleep ``request["s"]`` seconds, then add 1 (outlives a short lock lease).

    With ``request["gate"]``, wait instead until the test opens that gate (:func:`tests.support.hold`).
    Logs ``slow action of <actor> started`` first: tests read it to know which node runs the action.
    """
    name = ctx.self_id.name if ctx.self_id is not None else ""
    logging.getLogger("reltests").warning("slow action of %s started", name)
    hold(request)
    return _add(ctx, 1)


lazy = Actor(ActorSettings(name="lazy", kind=Kind.UNNAMED, deactivate_timeout=600_000, snapshot_timeout=3_600_000))
"""Never written behind during a test: only a graceful shutdown puts its state in SQL."""


@lazy.action("increment")
def lazy_increment(request: Increment | None, ctx: Context) -> Value:
    """Add 1 and reply with the new value."""
    return _add(ctx, 1)


ledger = Actor(ActorSettings(name="ledger", kind=Kind.NAMED, deactivate_timeout=600_000, snapshot_timeout=200))
"""A named actor: registered by every worker at start, so it survives an empty Redis by definition."""


@ledger.action("increment")
def ledger_increment(request: Increment | None, ctx: Context) -> Value:
    """Add 1 and reply with the new value."""
    return _add(ctx, 1)


system = Spawn().actor_system("reltests").add_actor(counter).add_actor(lazy).add_actor(ledger)
