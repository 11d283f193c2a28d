"""Profile the parts of an invocation: ``python -m bench.profile [worker|client|housekeeping] [N]``.

``worker``: the runtime's ``handle`` in this process (no Celery delivery), as a pool process runs it.
``client``: ``Client.invoke`` against a real worker subprocess (send, wait, forget).
``housekeeping``: N first activations in this process, then the snapshot writes and evictions they cause, timed
per actor (what the housekeeping loop does in a worker's main process).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pyinstrument import Profiler

from bench import actors, scenarios
from spawn_celery import keys
from spawn_celery.client import Client
from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.message import Message, new_id
from spawn_celery.services import Services
from tests.support import WorkerProcess, flush_redis, make_settings


def worker_path(calls: int) -> None:
    settings = make_settings(Path(tempfile.mkdtemp()), redis_db=6)
    flush_redis(settings)
    services = Services.create(settings, actors=dict(actors.system.actors))
    from spawn_celery.worker import register_actors

    register_actors(services, actors.system)
    services.registry.spawn("bench", "p-1", "counter")
    runtime = services.runtime()
    client = Client(services=services)

    distinct = len(sys.argv) > 3 and sys.argv[3] == "distinct"
    counter = iter(range(10**9))

    def one() -> None:
        name = f"p-{next(counter)}" if distinct else "p-1"
        if distinct:
            services.redis.hsetnx(keys.instances("bench"), name, f"counter{keys.SEP}0")
        request = client.request("bench", name, "incr", Increment(by=1))
        request.actor.id.parent = "counter"  # as Router.submit writes it: the worker reads no instance record
        message = Message(new_id(), request)
        message.reply_to = message.id
        kwargs = message.to_kwargs()
        runtime.handle(Message.from_kwargs(kwargs))  # type: ignore[attr-defined]

    for _ in range(200):
        one()
    start = time.perf_counter()
    with Profiler(interval=0.0002) as prof:
        for _ in range(calls):
            one()
    per = (time.perf_counter() - start) / calls * 1e6
    prof.print(show_all=False)
    print(f"worker path (profiled): {per:.0f} us per invocation")
    start = time.perf_counter()
    for _ in range(calls):
        one()
    print(f"worker path (no profiler): {(time.perf_counter() - start) / calls * 1e6:.0f} us per invocation")


def client_path(calls: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(tmp, redis_db=6)
    flush_redis(settings)
    worker = WorkerProcess(settings, app="bench.actors:system", log_path=tmp / "w.log").start()
    try:
        client = Client(services=Services.create(settings))
        client.spawn("bench", "p-1", "counter")
        for _ in range(200):
            client.invoke("bench", "p-1", "incr", Increment(by=1))
        with Profiler(interval=0.0002) as prof:
            for _ in range(calls):
                client.invoke(scenarios.SYSTEM, "p-1", "incr", Increment(by=1))
        prof.print(show_all=False)
    finally:
        worker.stop()


def housekeeping_path(count: int) -> None:
    settings = make_settings(Path(tempfile.mkdtemp()), redis_db=6)
    flush_redis(settings)
    services = Services.create(settings, actors=dict(actors.system.actors))
    from spawn_celery.housekeeper import Housekeeper
    from spawn_celery.worker import register_actors

    register_actors(services, actors.system)
    runtime = services.runtime()
    client = Client(services=services)
    keeper = services.housekeeper()
    assert isinstance(keeper, Housekeeper)
    for rnd in range(2):  # the first round warms up (table creation, script loading)
        names = [f"h{rnd}-{i}" for i in range(count)]
        pipe = services.redis.pipeline(transaction=False)
        for name in names:
            pipe.hsetnx(keys.instances("bench"), name, f"counter{keys.SEP}0")
        pipe.execute()
        start = time.perf_counter()
        for name in names:
            message = Message(new_id(), client.request("bench", name, "incr", Increment(by=1)))
            runtime.handle(Message.from_kwargs(message.to_kwargs()))  # type: ignore[attr-defined]
        activate = (time.perf_counter() - start) / count * 1e6
        later = int(time.time() * 1000) + 10**7  # everything is due
        start = time.perf_counter()
        while keeper.snapshotter.flush_due(later):
            pass
        flush = (time.perf_counter() - start) / count * 1e6
        start = time.perf_counter()
        while keeper.snapshotter.deactivate_idle(later):
            pass
        evict = (time.perf_counter() - start) / count * 1e6
        if rnd:
            print(f"per actor: first activation {activate:.0f} us, snapshot write {flush:.0f} us, "
                  f"eviction {evict:.0f} us")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "worker"
    paths = {"worker": worker_path, "client": client_path, "housekeeping": housekeeping_path}
    paths[which](int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
