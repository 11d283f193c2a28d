"""The actor dashboard: ``GET /dashboard`` (HTML) and ``GET /dashboard/overview.json`` in the gateway.

Everything is read from Redis when the page is requested, with a bounded number of cheap commands:

- actor types per system from the registry, each with its Celery queue's depth (``LLEN spawn.<system>.<type>``;
  spawned instances share their template's queue);
- active actors (``sp:active``, furthest from deactivation first, at most ``limit``) with their state size in
  bytes (``HSTRLEN``), revision, type, last use and whether a snapshot is pending (``sp:dirty``);
- recent invocations from the capped list ``sp:recent`` that the workers' metrics hooks write
  (:mod:`spawn_celery.metrics`): newest first, with status, worker time and the worker that ran each.

When gateway authentication is on, the dashboard asks for the same credentials (Basic works in a browser).
``?refresh=N`` reloads the page every N seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from flask import Blueprint, Response, render_template, request

from spawn_celery import keys
from spawn_celery.errors import Unauthenticated
from spawn_celery.gateway import answers
from spawn_celery.gateway.parts import Gateway

ACTIVE_LIMIT = 500
"""Most active actors listed (the total is always shown)."""
RECENT_SHOWN = 50
"""Recent invocations listed."""


@dataclass
class ActorType:
    """A registered actor type and its queue."""

    name: str
    queue: str
    depth: int


@dataclass
class ActiveActor:
    """An actor whose state is hot in Redis."""

    name: str
    type: str
    revision: int
    state_bytes: int
    idle_ms: int
    dirty: bool


@dataclass
class SystemView:
    """One actor system."""

    name: str
    types: list[ActorType] = field(default_factory=list)
    active: list[ActiveActor] = field(default_factory=list)

    @property
    def queued(self) -> int:
        """Invocations waiting in all of the system's queues."""
        return sum(t.depth for t in self.types)


@dataclass
class Overview:
    """Everything the dashboard shows."""

    systems: list[SystemView]
    active_total: int
    dirty_total: int
    recent: list[dict[str, Any]]
    generated_ms: int

    @property
    def generated(self) -> str:
        """When the data was read, in UTC."""
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.generated_ms / 1000))


def read_overview(client: redis.Redis, *, limit: int = ACTIVE_LIMIT, recent: int = RECENT_SHOWN) -> Overview:
    """Read the dashboard's data from Redis (a few pipelined round trips)."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.SYSTEMS)
    pipe.zrange(keys.ACTIVE, 0, limit - 1, desc=True, withscores=True)  # latest idle deadline first
    pipe.zcard(keys.ACTIVE)
    pipe.zcard(keys.DIRTY)
    pipe.lrange(keys.RECENT, 0, recent - 1)
    names, active, active_total, dirty_total, raw_recent = pipe.execute()
    members = [(*keys.split_member(m.decode()), int(score)) for m, score in active]
    systems = {s.decode(): SystemView(s.decode()) for s in names}
    for system, _, _ in members:
        systems.setdefault(system, SystemView(system))
    ordered = [systems[s] for s in sorted(systems)]
    for view in ordered:
        pipe.hkeys(keys.registry(view.name))
    for view, types in zip(ordered, pipe.execute(), strict=True):
        view.types = [ActorType(t.decode(), keys.queue(view.name, t.decode()), 0) for t in sorted(types)]
        for t in view.types:
            pipe.llen(t.queue)
    depths = iter(pipe.execute())
    for view in ordered:
        for t in view.types:
            t.depth = int(next(depths))
    for system, name, _ in members:
        pipe.hstrlen(keys.state(system, name), "s")
        pipe.hmget(keys.state(system, name), ["r", "p", "u"])
        pipe.zscore(keys.DIRTY, keys.member(system, name))
    replies = pipe.execute()
    for i, (system, name, _) in enumerate(members):
        size, (revision, parent, used), dirty = replies[3 * i: 3 * i + 3]
        systems[system].active.append(ActiveActor(
            name=name,
            type=(parent or b"").decode() or name,
            revision=int(revision or 0),
            state_bytes=int(size or 0),
            idle_ms=max(0, now - int(used or now)),
            dirty=dirty is not None,
        ))
    return Overview(ordered, int(active_total), int(dirty_total), [_entry(r) for r in raw_recent], now)


def _entry(raw: bytes) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = json.loads(raw)
    except ValueError:
        return {"status": "?", "actor": "(unreadable entry)"}
    entry["when"] = time.strftime("%H:%M:%S", time.gmtime(int(entry.get("t", 0)) / 1000))
    return entry


def blueprint(gw: Gateway) -> Blueprint:
    """The dashboard routes of ``gw`` (Blueprint ``dashboard``)."""
    bp = Blueprint("dashboard", __name__, template_folder="templates")

    def denied() -> Response | None:
        try:
            gw.principal()
        except Unauthenticated as exc:
            return answers.error_json(exc, gw.challenge(exc))
        return None

    @bp.get("/dashboard")
    def page() -> Response | str:
        refusal = denied()
        if refusal is not None:
            return refusal
        refresh = request.args.get("refresh", "")
        overview = read_overview(gw.services.redis)
        return render_template("dashboard.html", o=overview, refresh=int(refresh) if refresh.isdigit() else 0)

    @bp.get("/dashboard/overview.json")
    def overview_json() -> Response:
        refusal = denied()
        if refusal is not None:
            return refusal
        overview = read_overview(gw.services.redis)
        return answers.json_answer(asdict(overview))

    return bp
