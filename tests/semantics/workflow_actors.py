"""Workflow actors of system ``semtests``: broadcast, side effects, forward and pipe."""

from __future__ import annotations

from typing import Any

import redis

from spawn_celery import Actor, ActorSettings, Broadcast, Channel, Context, Effect, Forward, Kind, Pipe, Value
from spawn_celery.config import Settings
from tests.semantics.recording import count, note, seen

# --- workflows -----------------------------------------------------------------------------------------------

news = Actor(ActorSettings(name="news"))


@news.action("publish")
def publish(request: Any, ctx: Context) -> Value:
    """Broadcast ``request["payload"]`` to ``request["channel"]``, with ``request["action"]`` if given."""
    return Value().broadcast(
        Broadcast(channel=request["channel"], action_name=request.get("action"), value=request["payload"])
    ).of("published").reply()


def _subscriber(name: str, channel: Any, kind: Kind = Kind.NAMED, actions: tuple[str, ...] = ("receive",)) -> Actor:
    actor = Actor(ActorSettings(name=name, kind=kind, channel=channel))
    for action in actions:

        @actor.action(action)
        def receive(request: Any, ctx: Context, action: str = action) -> Value:
            note(f"bc:{ctx.self_id.name if ctx.self_id else ''}", {"action": action, "payload": request, **seen(ctx)})
            return Value().state(count(ctx)).noreply()

    return actor


sub_gen1 = _subscriber("sub_gen1", "news")
sub_gen2 = _subscriber("sub_gen2", [Channel("news", "on_news")], actions=("on_news",))
sub_alerts = _subscriber("sub_alerts", ["alerts"], actions=("receive", "alert"))
listener = _subscriber("listener", [Channel("news", "heard")], kind=Kind.UNNAMED, actions=("heard",))
sub_bad = Actor(ActorSettings(name="sub_bad", channel="news"))


@sub_bad.action("receive")
def receive_badly(request: Any, ctx: Context) -> Value:
    """Fail on every broadcast."""
    raise RuntimeError("sub_bad refuses the news")


source = Actor(ActorSettings(name="source", deactivate_timeout=600_000))


@source.action("bump_and_notify")
def bump_and_notify(request: Any, ctx: Context) -> Value:
    """Count, and tell ``sink`` after the change is committed (effect metadata wins over the request's)."""
    new = count(ctx)
    effect = Effect(action="record", actor="sink", payload={"n": new["n"]}, metadata={"k": "effect"})
    return Value().of(new["n"], new).effect(effect).reply()


@source.action("notify_then_fail")
def notify_then_fail(request: Any, ctx: Context) -> Value:
    """Ask for an effect but return a state that cannot be encoded: the action fails."""
    return Value().state({1, 2}).effect(Effect(action="record", actor="sink", payload={"n": -1})).reply()


@source.action("notify_and_forward_nowhere")
def notify_and_forward_nowhere(request: Any, ctx: Context) -> Value:
    """Change state, ask for an effect, and forward to an actor that does not exist."""
    return Value().state(count(ctx)).effect(Effect(action="record", actor="sink", payload={"n": -2})).forward(
        Forward("nobody", "anything")
    ).reply()


@source.action("notify_via_unknown_template")
def notify_via_unknown_template(request: Any, ctx: Context) -> Value:
    """Change state and ask for an effect on an instance of a template that does not exist."""
    return Value().state(count(ctx)).effect(Effect(action="record", actor="x", parent="no_template")).reply()


sink = Actor(ActorSettings(name="sink"))


@sink.action("record")
def record(request: Any, ctx: Context) -> Value:
    """Record the effect with the source's committed revision at the time it arrived."""
    side = redis.Redis.from_url(Settings.from_env().redis_url)
    revision = side.hget("sp:st:semtests:source", "r")
    note("sink", {"payload": request, "source_revision": int(revision or 0), **seen(ctx)})
    return Value().noreply()


front = Actor(ActorSettings(name="front"))


@front.action("fwd")
def fwd(request: Any, ctx: Context) -> Value:
    """Forward the original request to ``back.echo``; this action's own response is discarded."""
    return Value().of("front's own reply").forward(Forward("back", "echo")).reply()


@front.action("pip")
def pip(request: Any, ctx: Context) -> Value:
    """Add one and pipe the result to ``back.double``."""
    return Value().of({"x": request["x"] + 1}).pipe(Pipe("back", "double")).reply()


@front.action("fwd_probe")
def fwd_probe(request: Any, ctx: Context) -> Value:
    """Forward to ``probe.look``."""
    return Value().forward(Forward("probe", "look")).reply()


back = Actor(ActorSettings(name="back"))


@back.action("echo")
def echo(request: Any, ctx: Context) -> Value:
    """Reply with the request and the caller."""
    return Value().of({"echo": request, "caller": ctx.caller}).reply()


@back.action("double")
def double(request: Any, ctx: Context) -> Value:
    """Double ``x``."""
    return Value().of({"x": request["x"] * 2, "caller": ctx.caller}).reply()


looper = Actor(ActorSettings(name="looper"))


@looper.action("loop")
def loop(request: Any, ctx: Context) -> Value:
    """Count and pipe to itself forever: a cycle the depth bound must stop."""
    note("loop", request["hops"])
    return Value().state(count(ctx)).of({"hops": request["hops"] + 1}).pipe(Pipe("looper", "loop")).reply()
