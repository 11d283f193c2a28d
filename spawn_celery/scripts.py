"""Running our Lua scripts with one ``EVALSHA`` each, on the hot path of every invocation.

redis-py's ``Script.__call__`` and even ``Redis.execute_command`` spend more of a pool process's CPU than the
round trip itself (connection pool check-out and check-in, fork and health checks, retry wrapper, command
observability hooks: about 70 µs per call against 40 µs for the same command sent on a connection directly).
:class:`Runner` keeps a few connections of its own, built with the client's connection settings, and sends each
script on one of them; a connection error falls back to the client's own path with its retries, so behaviour on
faults is redis-py's.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from spawn_celery.spares import Spares


class Runner:
    """Runs scripts on ``client``'s Redis over connections kept aside from its pool (thread- and fork-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        """Use the connection settings of ``client``; fall back to ``client`` itself on connection errors."""
        self.client = client
        self._spares: Spares[Any] = Spares()

    def run(self, script: Script, script_keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` with one ``EVALSHA``, loading it first if Redis lost it (a restart)."""
        try:
            return self.call("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
        except NoScriptError:
            return script(keys=script_keys, args=args, client=self.client)

    def call(self, *command: Any) -> Any:
        """Send one command and return its reply; Redis errors are raised as redis-py raises them."""
        conn = self._spares.take()
        if conn is None:
            pool = self.client.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
        try:
            conn.send_command(*command)
            reply = conn.read_response()
        except redis.ResponseError:
            self._spares.give(conn)  # an error reply leaves the connection in a clean state
            raise
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            return self.client.execute_command(*command)  # type: ignore[no-untyped-call]
        except BaseException:
            conn.disconnect()  # interrupted mid-reply: the connection's state is unknown
            raise
        self._spares.give(conn)
        return reply
