"""Running our Lua scripts with one ``EVALSHA`` each, on the hot path of every invocation."""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


def run(client: redis.Redis, script: Script, script_keys: list[str], args: list[Any]) -> Any:
    """Run ``script`` on ``client`` with one ``EVALSHA``, loading it first if Redis lost it (a restart).

    redis-py's ``Script.__call__`` sends the same command through a few more layers of Python.
    """
    try:
        return client.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", script.sha, len(script_keys), *script_keys, *args
        )
    except NoScriptError:
        return script(keys=script_keys, args=args, client=client)
