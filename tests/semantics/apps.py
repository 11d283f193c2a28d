"""Actors the semantics tests run in real workers: system ``semtests`` (4 processes) and ``semsolo`` (1 process).

Actions that must be observed from the test process write to a Redis "side channel" (keys ``semtests:*``, in the
workers' own Redis database) with ``recording.note``; the tests read it back with ``conftest.notes``. The workflow
actors live in ``workflow_actors``.
"""

from __future__ import annotations

import time
from typing import Any

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
from tests.semantics.recording import count, note, seen
from tests.semantics.workflow_actors import (
    back,
    front,
    listener,
    looper,
    news,
    sink,
    source,
    sub_alerts,
    sub_bad,
    sub_gen1,
    sub_gen2,
)


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


ticker_slow = Actor(ActorSettings(name="ticker_slow", kind=Kind.UNNAMED, deactivate_timeout=1200))


@ticker_slow.timer_action(every=100, name="tick")
def slow_tick(ctx: Context) -> Value:
    """A tick that takes 3.5 periods."""
    time.sleep(0.35)
    note(f"tick:{ctx.self_id.name if ctx.self_id else ''}", time.time() * 1000)
    return Value().state(count(ctx)).noreply()


@ticker_slow.action("poke")
def poke_slow(ctx: Context) -> Value:
    """Activate the actor."""
    return Value().of("poked").reply()


system = Spawn().actor_system("semtests")
for _actor in (
    named, counter, other_template, brief, pool, clock, ticker, ticker_brief, ticker_keep, ticker_slow, news, sub_gen1,
    sub_gen2,
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
