"""The benchmark actor system ``bench``: one UNNAMED counter template, read-modify-write of its state.

Every benchmark actor is an instance of ``counter`` spawned by name, so 100,000 actors cost 100,000 hash fields in
the registry and nothing else until they are first invoked. A short deactivate timeout lets the keys scenario
watch every actor leave Redis within the run.
"""

from __future__ import annotations

from spawn_celery import Actor, ActorSettings, Context, Kind, Spawn, Value
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment

DEACTIVATE_MS = 8_000
SNAPSHOT_MS = 2_000

counter = Actor(
    ActorSettings(name="counter", kind=Kind.UNNAMED, deactivate_timeout=DEACTIVATE_MS, snapshot_timeout=SNAPSHOT_MS)
)


@counter.action("incr")
def incr(request: Increment | None, ctx: Context) -> Value:
    """Add ``request.by`` (default 1) to the state and reply with the new value."""
    current = ctx.state.value if ctx.state is not None else 0
    new = CounterState(value=current + (request.by if request is not None else 1))
    return Value().of(CounterValue(value=new.value), new).reply()


system = Spawn().actor_system("bench").add_actor(counter)
