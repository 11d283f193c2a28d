"""Actors the activator tests run in real workers (system ``acttests``): each records what reached it."""

from __future__ import annotations

from typing import Any

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value

ticks = Actor(ActorSettings(name="ticks", kind=Kind.NAMED, stateful=True, deactivate_timeout=600_000))


tickers = Actor(ActorSettings(name="tickers", kind=Kind.UNNAMED, stateful=True, deactivate_timeout=600_000))


@ticks.action("tick")
@tickers.action("tick")
def tick(request: Any, ctx: Context) -> Value:
    """Record the fire time (metadata ``fire-time``) and the payload of a cron fire."""
    state = ctx.state or {"fires": [], "payloads": []}
    new = {"fires": [*state["fires"], ctx.metadata.get("fire-time", "")], "payloads": [*state["payloads"], request]}
    return Value().state(new).reply()


recorder = Actor(ActorSettings(name="recorder", kind=Kind.UNNAMED, stateful=True, deactivate_timeout=600_000))


@recorder.action("record")
def record(request: Any, ctx: Context) -> Value:
    """Record ``request["seq"]`` (JSON payloads) or the payload's type (anything else)."""
    state = ctx.state or {"seqs": [], "other": []}
    if isinstance(request, dict) and "seq" in request:
        new = {"seqs": [*state["seqs"], request["seq"]], "other": state["other"]}
    else:
        new = {"seqs": state["seqs"], "other": [*state["other"], type(request).__name__]}
    return Value().of(len(new["seqs"]), new).reply()


@recorder.action("fail")
def fail(request: Any, ctx: Context) -> Value:
    """Always raise (the RabbitMQ activator retries, then dead-letters)."""
    raise RuntimeError("boom: recorder.fail always fails")


system = Spawn().actor_system("acttests").add_actor(ticks).add_actor(tickers).add_actor(recorder)
