"""Names of Redis keys and Celery queues. Everything the runtime stores in Redis is named here."""

from __future__ import annotations

SEP = "\x1f"
PREFIX = "sp:"
FENCE = PREFIX + "fence"
"""Global monotonic counter of fencing tokens (never deleted, so tokens never repeat)."""
ACTIVE = PREFIX + "active"
"""Sorted set of active actors scored by the time they become idle (last use + deactivate timeout)."""
DIRTY = PREFIX + "dirty"
"""Sorted set of actors with unsaved state scored by when their snapshot is due."""
TIMERS = PREFIX + "timers"
"""Sorted set of timer-action members scored by next fire time (ms)."""
TIMER_PERIODS = PREFIX + "timerp"
"""Hash timer member -> period in ms."""
SCHEDULED = PREFIX + "sched"
"""Sorted set of scheduled invocation ids scored by their ``scheduled_to`` (ms)."""
SCHEDULED_PAYLOADS = PREFIX + "schedp"
"""Hash scheduled invocation id -> task message (JSON)."""
SYSTEMS = PREFIX + "systems"
"""Set of registered actor systems."""
RECENT = PREFIX + "recent"
"""Capped list (newest first) of recent invocations as JSON, written by workers' metrics hooks for the dashboard."""


def member(system: str, name: str) -> str:
    """Member string identifying one actor instance in the shared sorted sets."""
    return f"{system}{SEP}{name}"


def split_member(value: str) -> tuple[str, str]:
    """Inverse of :func:`member`."""
    system, _, name = value.partition(SEP)
    return system, name


def state(system: str, name: str) -> str:
    """Hash holding an active actor's hot state."""
    return f"{PREFIX}st:{system}:{name}"


def lock(system: str, name: str) -> str:
    """String holding the fencing token of the current lock holder."""
    return f"{PREFIX}lk:{system}:{name}"


def wake(system: str, name: str) -> str:
    """List pushed on unlock to wake a waiting invocation."""
    return f"{PREFIX}wk:{system}:{name}"


def done(system: str, name: str, invocation_id: str) -> str:
    """String recording the reply of an applied invocation (dedupe)."""
    return f"{PREFIX}dn:{system}:{name}:{invocation_id}"


MAILBOXES = PREFIX + "mboxes"
"""Sorted set of actors with queued mailbox items, scored by when the first was queued (for recovery)."""


def waiting(system: str, name: str) -> str:
    """Set while a process waits for the actor's lock; the unlock then pushes on its wake list.

    It lives 1 s: a waiter tries the lock again every 250 ms at most, setting it again each time.
    """
    return f"{PREFIX}wt:{system}:{name}"


def owner(system: str, name: str) -> str:
    """The nonce of the ``begin`` call that took the actor's lock; lives and dies with the lock.

    A ``begin`` sent again with the same nonce (its first reply was lost) gets the lock it already took.
    """
    return f"{PREFIX}lo:{system}:{name}"


def claim(nonce: str) -> str:
    """List of what one claim took (scheduler, snapshotter), kept 10 s under the claim's nonce.

    A claim sent again after its reply was lost returns the same.
    """
    return f"{PREFIX}cl:{nonce}"


def mailbox(system: str, name: str) -> str:
    """List of invocations queued for a busy actor (scheduled-invocation documents), run by the lock holder."""
    return f"{PREFIX}mb:{system}:{name}"


def inflight(system: str, name: str) -> str:
    """List of mailbox invocations the lock holder took and has not committed yet."""
    return f"{PREFIX}if:{system}:{name}"


def reply(reply_to: str) -> str:
    """List holding the reply for a sync caller waiting on ``reply_to`` (pushed by the worker, popped by BLPOP)."""
    return f"{PREFIX}rp:{reply_to}"


def pool(system: str, name: str) -> str:
    """Counter of running invocations of a pooled actor."""
    return f"{PREFIX}pl:{system}:{name}"


def registry(system: str) -> str:
    """Hash actor name -> serialized ``Actor`` definition."""
    return f"{PREFIX}reg:{system}"


def hosts(system: str) -> str:
    """Hash actor name -> remote host URL ("" for Python actors in workers)."""
    return f"{PREFIX}host:{system}"


def instances(system: str) -> str:
    """Hash spawned instance name -> ``parent<SEP>revision``."""
    return f"{PREFIX}inst:{system}"


def channel(system: str, topic: str) -> str:
    """Set of ``name<SEP>action`` subscribed to a channel."""
    return f"{PREFIX}ch:{system}:{topic}"


def subscriptions(system: str) -> str:
    """Hash actor (or template, or spawned instance) name -> JSON ``[[topic, action], ...]`` it subscribes with."""
    return f"{PREFIX}subs:{system}"


def timer_member(system: str, name: str, action: str) -> str:
    """Member of :data:`TIMERS` for one timer action of one actor."""
    return f"{system}{SEP}{name}{SEP}{action}"


def queue(system: str, actor: str) -> str:
    """Celery queue of an actor type (instances use their template's)."""
    return f"spawn.{system}.{actor}"
