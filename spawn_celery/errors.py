"""The error tree of spawn_celery. Every error the library raises on purpose is a :class:`SpawnError`.

::

    SpawnError
    ├── ConfigError            bad configuration; the process refuses to start      (never retryable)
    ├── DefinitionError        an actor is declared wrongly (raised at declaration) (never retryable)
    ├── RequestError           the caller sent something wrong → HTTP 4xx           (never retryable)
    │   ├── PayloadDecodeError   undecodable body, payload or type URL → 400
    │   ├── PayloadEncodeError   a value that cannot be packed as payload/state → 400
    │   ├── ActorNotFound        unknown actor, or an unnamed instance never spawned → 404
    │   ├── ActionNotFound       the actor has no such action → 404
    │   ├── SpawnConflict        spawning an existing name from another template → 409
    │   ├── ChainTooDeep         forward/pipe beyond the configured depth → 400
    │   ├── BodyTooLarge         request body over the limit → 413
    │   ├── Unauthenticated      missing/bad credentials → 401
    │   └── Forbidden            the ACL denies the call → 403
    ├── ActorError             the action raised; carries its message              (not retried)
    ├── InvocationTimeout      no reply in time → 504                              (retryable)
    ├── StateConflict          a fenced write lost its lock → 409                  (retryable: runs again)
    ├── ActorBusy              the actor stayed locked past the wait limit → 503   (retryable)
    ├── TransportUnavailable   broker, Redis or a remote host is unreachable → 503 (retryable)
    ├── Draining               the process is shutting down → 503                  (retryable elsewhere)
    └── StateStoreError        the SQL statestore failed → 503                     (retryable)
        └── DecryptionError      no configured key decrypts a stored value          (not retryable)

Each class carries ``http_status`` and ``retryable`` so that the gateway maps errors to answers in one place.
"""

from __future__ import annotations


class SpawnError(Exception):
    """Root of every spawn_celery error."""

    http_status: int = 500
    retryable: bool = False
    status_name: str = "ERROR"
    """The ``eigr.functions.protocol.Status`` name this error maps to."""


class ConfigError(SpawnError):
    """A configuration value is missing or malformed. The message says which and how to fix it."""

    def __init__(self, variable: str, value: str, reason: str) -> None:
        """Record the offending ``variable`` and ``value`` and why it is wrong."""
        self.variable, self.value, self.reason = variable, value, reason
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(f"{variable}={shown!r}: {reason}")


class DefinitionError(SpawnError, ValueError):
    """An actor, action or timer is declared wrongly. Raised where it is declared, with the fix."""


class RequestError(SpawnError):
    """The caller sent something wrong; retrying the same request cannot help."""

    http_status = 400


class PayloadDecodeError(RequestError):
    """Bytes or a type URL could not be decoded."""

    def __init__(self, what: str, reason: str) -> None:
        """``what`` names the part that failed (e.g. ``InvocationRequest``), ``reason`` why."""
        self.what, self.reason = what, reason
        super().__init__(f"cannot decode {what}: {reason}")


class PayloadEncodeError(RequestError):
    """A Python value cannot be packed as a payload or as state."""

    def __init__(self, value_type: str, reason: str) -> None:
        """``value_type`` names the offending type."""
        self.value_type, self.reason = value_type, reason
        super().__init__(f"cannot encode a {value_type}: {reason}")


class ActorNotFound(RequestError):
    """No actor of that name is registered (or spawned) in the system."""

    http_status = 404
    status_name = "ACTOR_NOT_FOUND"

    def __init__(self, system: str, actor: str) -> None:
        """Name the missing ``actor`` of ``system``."""
        self.system, self.actor = system, actor
        super().__init__(f"Actor {actor} not found on ActorSystem {system}")


class ActionNotFound(RequestError):
    """The actor exists but has no action of that name."""

    http_status = 404

    def __init__(self, system: str, actor: str, action: str) -> None:
        """Name the missing ``action``."""
        self.system, self.actor, self.action = system, actor, action
        super().__init__(f"Action [{action}] not found for Actor [{actor}] on ActorSystem {system}")


class SpawnConflict(RequestError):
    """An instance of that name already exists with a different parent template."""

    http_status = 409

    def __init__(self, system: str, actor: str, parent: str, existing: str) -> None:
        """Name the instance and both templates."""
        self.system, self.actor, self.parent, self.existing = system, actor, parent, existing
        super().__init__(
            f"Actor {actor} on ActorSystem {system} already exists from template {existing!r}, not {parent!r}"
        )


class ChainTooDeep(RequestError):
    """A forward/pipe chain went past ``SPAWN_MAX_CHAIN_DEPTH`` hops."""

    def __init__(self, depth: int, limit: int) -> None:
        """Record the depth reached and the limit."""
        self.depth, self.limit = depth, limit
        super().__init__(f"forward/pipe chain reached {depth} hops, over the limit of {limit} (SPAWN_MAX_CHAIN_DEPTH)")


class BodyTooLarge(RequestError):
    """The request body is larger than ``SPAWN_MAX_BODY_BYTES``."""

    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        """Record the size and the limit."""
        self.size, self.limit = size, limit
        super().__init__(f"request body of {size} bytes is over the limit of {limit} bytes (SPAWN_MAX_BODY_BYTES)")


class Unauthenticated(RequestError):
    """Credentials are missing or wrong."""

    http_status = 401


class Forbidden(RequestError):
    """The ACL policy denies this call."""

    http_status = 403


class ActorError(SpawnError):
    """The action raised. The message is the action's; the invocation changed no state."""

    def __init__(self, message: str, error_type: str = "") -> None:
        """Carry the action's message and exception type name."""
        self.error_type = error_type
        super().__init__(message)


class InvocationTimeout(SpawnError):
    """No reply arrived within the timeout. The invocation may still run (exactly once)."""

    http_status = 504
    retryable = True

    def __init__(self, invocation_id: str, timeout_s: float) -> None:
        """Name the invocation and the time waited."""
        self.invocation_id, self.timeout_s = invocation_id, timeout_s
        super().__init__(f"invocation {invocation_id} got no reply within {timeout_s:g} s")


class StateConflict(SpawnError):
    """A write was rejected by the fencing token: this worker lost the actor's lock."""

    http_status = 409
    retryable = True


class ActorBusy(SpawnError):
    """The actor stayed locked longer than ``SPAWN_LOCK_WAIT_MS``."""

    http_status = 503
    retryable = True


class TransportUnavailable(SpawnError):
    """Redis, the broker or a remote SDK host could not be reached."""

    http_status = 503
    retryable = True


class Draining(SpawnError):
    """The process is shutting down and takes no new work."""

    http_status = 503
    retryable = True


class StateStoreError(SpawnError):
    """The SQL statestore failed (unreachable, or a query failed)."""

    http_status = 503
    retryable = True


class DecryptionError(StateStoreError):
    """No configured key decrypts a stored value (wrong key, or corrupt data)."""

    retryable = False
