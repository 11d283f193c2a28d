"""The side channel of the semantics apps: what actions saw, recorded in Redis for the tests to read."""

from __future__ import annotations

import json
from typing import Any

import redis

from spawn_celery import Context
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
