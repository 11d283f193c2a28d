"""Actors the semantics tests run in real workers: system ``semtests`` (4 processes) and ``semsolo`` (1 process).

Actions that must be observed from the test process write to a Redis "side channel" (keys ``semtests:*``, in the
workers' own Redis database) with :func:`note`; the tests read it back with ``side`` helpers in ``conftest``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from spawn_celery import (
    Actor,
    ActorSettings,
    Broadcast,
    Channel,
    Context,
    Effect,
    Forward,
    Kind,
    Metadata,
    Pipe,
    Spawn,
    Value,
)
from spawn_celery.config import Settings

_side: redis.Redis | None = None


def note(key: str, doc: Any) -> None:
    """Append ``doc`` (JSON) to the side-channel list ``semtests:<key>``."""
    global _side
    if _side is None:
        _side = redis.Redis.from_url(Settings.from_env().redis_url)
    _side.rpush(f"semtests:{key}", json.dumps(doc))


def seen(ctx: Context) -> dict[str, Any]:
    """What an action saw of its caller, metadata and tags."""
    caller = ctx.caller_id
    return {
        "caller": ctx.caller,
        "caller_id": [caller.name, caller.system, caller.parent] if caller else None,
        "metadata": dict(ctx.metadata),
        "tags": dict(ctx.tags),
        "self": ctx.self_id.name if ctx.self_id else "",
    }


def count(ctx: Context, by: int = 1) -> dict[str, int]:
    """The next state of a JSON counter ``{"n": ...}``."""
    return {"n": (ctx.state or {}).get("n", 0) + by}


def _init_recorder(actor: Actor) -> None:
    @actor.action("init")
    def init(ctx: Context) -> Value:
        note(f"init:{ctx.self_id.name if ctx.self_id else ''}", seen(ctx))
        return Value().noreply()


def _increment(actor: Actor) -> None:
    @actor.action("increment")
    def increment(request: Any, ctx: Context) -> Value:
        new = count(ctx, (request or {}).get("by", 1))
        return Value().of(new["n"], new).reply()

    @actor.action("checkpointed")
    def checkpointed(request: Any, ctx: Context) -> Value:
        new = count(ctx)
        return Value().of(new["n"], new).reply(checkpoint=True)


# --- kinds, deactivation, snapshots -------------------------------------------------------------------------

named = Actor(ActorSettings(name="named", deactivate_timeout=600_000))
_increment(named)
_init_recorder(named)

counter = Actor(ActorSettings(name="counter", kind=Kind.UNNAMED, deactivate_timeout=600_000, snapshot_timeout=300))
_increment(counter)


@counter.action("persist")
def persist(ctx: Context) -> Value:
    """Change nothing, but ask for a checkpoint."""
    return Value().noreply(checkpoint=True)

other_template = Actor(ActorSettings(name="other_template", kind=Kind.UNNAMED))
_increment(other_template)

brief = Actor(ActorSettings(name="brief", kind=Kind.UNNAMED, deactivate_timeout=700, snapshot_timeout=60_000))
_increment(brief)
_init_recorder(brief)

pool = Actor(ActorSettings(name="pool", kind=Kind.POOLED, max_pool_size=2))


@pool.action("work")
def work(request: Any, ctx: Context) -> Value:
    """Sleep ``request["s"]`` seconds; record the start and end times."""
    started = time.time()
    time.sleep(float(request["s"]))
    note(f"pool:{request['run']}", [started, time.time()])
    return Value().of("done").reply()


# --- async and scheduled calls ------------------------------------------------------------------------------

clock = Actor(ActorSettings(name="clock", deactivate_timeout=600_000))


@clock.action("stamp")
def stamp(request: Any, ctx: Context) -> Value:
    """Record when this ran (ms) under ``request["tag"]``; sleep ``request["s"]`` first if given."""
    time.sleep(float(request.get("s", 0)))
    note(f"clock:{request['tag']}", time.time() * 1000)
    return Value().of("stamped", count(ctx)).reply()


# --- timers --------------------------------------------------------------------------------------------------

ticker = Actor(ActorSettings(name="ticker", kind=Kind.UNNAMED, deactivate_timeout=600_000))
ticker_brief = Actor(ActorSettings(name="ticker_brief", kind=Kind.UNNAMED, deactivate_timeout=600))
ticker_keep = Actor(ActorSettings(name="ticker_keep", kind=Kind.UNNAMED, deactivate_timeout=300, keep_timers=True))
for _timed, _every in ((ticker, 100), (ticker_brief, 100), (ticker_keep, 500)):
    _init_recorder(_timed)

    @_timed.timer_action(every=_every, name="tick")
    def tick(ctx: Context) -> Value:
        """Count fires in state and record each with what it saw."""
        note(f"tick:{ctx.self_id.name if ctx.self_id else ''}", {"t": time.time() * 1000, **seen(ctx)})
        return Value().state(count(ctx)).noreply()

    @_timed.action("poke")
    def poke(ctx: Context) -> Value:
        """Activate the actor (its timers start with the activation)."""
        return Value().of("poked").reply()


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


# --- metadata, tags and caller -------------------------------------------------------------------------------

probe = Actor(ActorSettings(name="probe", channel=[Channel("probe", "look")]))
_init_recorder(probe)


@probe.action("look")
def look(request: Any, ctx: Context) -> Value:
    """Record what this invocation saw."""
    note("probe", {"payload": request, **seen(ctx)})
    return Value().of(seen(ctx)).reply()


@probe.action("tag")
def tag(request: Any, ctx: Context) -> Value:
    """Replace the actor's tags with ``request``."""
    metadata = Metadata()
    for key, value in request.items():
        metadata.put_tag(key, value)
    return Value().metadata(metadata).state(count(ctx)).reply()


prober = Actor(ActorSettings(name="prober"))


@prober.action("effect_probe")
def effect_probe(request: Any, ctx: Context) -> Value:
    """Send ``probe.look`` as a side effect with metadata ``k=effect``."""
    return Value().effect(Effect(action="look", actor="probe", payload="effect", metadata={"k": "effect"})).reply()


@prober.action("broadcast_probe")
def broadcast_probe(request: Any, ctx: Context) -> Value:
    """Broadcast to channel ``probe``."""
    return Value().broadcast(Broadcast(channel="probe", value="broadcast")).reply()


system = Spawn().actor_system("semtests")
for _actor in (
    named, counter, other_template, brief, pool, clock, ticker, ticker_brief, ticker_keep, news, sub_gen1, sub_gen2,
    sub_alerts, listener, sub_bad, source, sink, front, back, looper, probe, prober,
):
    system.add_actor(_actor)

# --- a one-process worker: forward/pipe chains must not hold its only slot while waiting -----------------------

solo_a = Actor(ActorSettings(name="solo_a"))
solo_b = Actor(ActorSettings(name="solo_b"))
solo_c = Actor(ActorSettings(name="solo_c"))


@solo_a.action("go")
def go_a(request: Any, ctx: Context) -> Value:
    """Forward to ``solo_b``."""
    return Value().forward(Forward("solo_b", "go")).reply()


@solo_b.action("go")
def go_b(request: Any, ctx: Context) -> Value:
    """Append ``b`` and pipe to ``solo_c``."""
    return Value().of(request + ["b"]).pipe(Pipe("solo_c", "go")).reply()


@solo_c.action("go")
def go_c(request: Any, ctx: Context) -> Value:
    """Append ``c`` and reply."""
    return Value().of(request + ["c"]).reply()


solo = Spawn().actor_system("semsolo").add_actor(solo_a).add_actor(solo_b).add_actor(solo_c)
