"""The task message of one invocation and the reply stored for its caller.

A message is the Celery task's keyword arguments: readable fields for Flower and logs (system, actor, action,
invocation id) plus the ``InvocationRequest`` itself, base64-encoded protobuf.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from spawn_celery import codec, errors
from spawn_celery.proto import protocol_pb2

TASK_NAME = "spawn.invoke"


def new_id() -> str:
    """A fresh invocation id."""
    return uuid.uuid4().hex


@dataclass
class Message:
    """One invocation in flight.

    Attributes:
        id: the invocation id (dedupe key; also the Celery task id).
        request: the Spawn ``InvocationRequest`` (actor id, action, payload, caller, metadata).
        reply_to: id under which the caller waits for the final reply ("" for async calls).
        depth: forward/pipe hops so far.
    """

    id: str
    request: protocol_pb2.InvocationRequest
    reply_to: str = ""
    depth: int = 0

    @property
    def system(self) -> str:
        """Target actor system."""
        return self.request.actor.id.system or self.request.system.name

    @property
    def actor(self) -> str:
        """Target actor (instance) name."""
        return self.request.actor.id.name

    @property
    def action(self) -> str:
        """Action name."""
        return self.request.action_name

    def to_kwargs(self) -> dict[str, Any]:
        """Encode as Celery task keyword arguments."""
        return {
            "system": self.system,
            "actor": self.actor,
            "action": self.action,
            "id": self.id,
            "reply_to": self.reply_to,
            "depth": self.depth,
            "request": base64.b64encode(self.request.SerializeToString()).decode("ascii"),
        }

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Message:
        """Decode task keyword arguments.

        Raises:
            PayloadDecodeError: the message is malformed (a poison message).
        """
        try:
            raw = base64.b64decode(kwargs["request"], validate=True)
            invocation_id = str(kwargs["id"])
        except (KeyError, ValueError, TypeError) as exc:
            raise errors.PayloadDecodeError("task message", repr(exc)) from None
        request = codec.decode(protocol_pb2.InvocationRequest, raw, "InvocationRequest")
        return cls(invocation_id, request, str(kwargs.get("reply_to") or ""), int(kwargs.get("depth") or 0))


@dataclass
class Reply:
    """The final answer of an invocation, as stored for the waiting caller and for dedupe.

    Attributes:
        status: ``OK``, ``ACTOR_NOT_FOUND`` or ``ERROR`` (Spawn's ``Status`` names).
        payload: the serialized reply ``Any`` (``None`` for noop/no reply).
        error: the error class name (from :mod:`spawn_celery.errors`) when not OK.
        message: the error message.
        revision: the actor's state revision after the invocation.
        workflow: the serialized ``ActorInvocationResponse`` when it carried a workflow (replayed on dedupe).
    """

    status: str = "OK"
    payload: bytes | None = None
    error: str = ""
    message: str = ""
    revision: int = 0
    workflow: bytes | None = field(default=None, repr=False)

    def to_json(self) -> str:
        """Encode as compact JSON."""
        doc: dict[str, Any] = {"s": self.status, "v": self.revision}
        if self.payload is not None:
            doc["p"] = base64.b64encode(self.payload).decode("ascii")
        if self.error:
            doc["e"], doc["m"] = self.error, self.message
        if self.workflow is not None:
            doc["w"] = base64.b64encode(self.workflow).decode("ascii")
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Reply:
        """Decode :meth:`to_json` output."""
        doc = json.loads(text)
        return cls(
            status=doc.get("s", "ERROR"),
            payload=base64.b64decode(doc["p"]) if "p" in doc else None,
            error=doc.get("e", ""),
            message=doc.get("m", ""),
            revision=int(doc.get("v", 0)),
            workflow=base64.b64decode(doc["w"]) if "w" in doc else None,
        )

    @classmethod
    def failure(cls, exc: BaseException) -> Reply:
        """The reply for an error."""
        status = exc.status_name if isinstance(exc, errors.SpawnError) else "ERROR"
        return cls(status=status, error=type(exc).__name__, message=str(exc))

    def payload_any(self) -> Any:
        """The reply payload as an ``Any`` message, or ``None``."""
        if self.payload is None:
            return None
        from google.protobuf import any_pb2

        return any_pb2.Any.FromString(self.payload)

    def raise_for_error(self) -> None:
        """Raise the typed error this reply carries, if any."""
        if self.status == "OK":
            return
        cls = getattr(errors, self.error, None)
        if isinstance(cls, type) and issubclass(cls, errors.SpawnError):
            exc = cls.__new__(cls)
            Exception.__init__(exc, self.message)
            raise exc
        raise errors.ActorError(self.message or self.status, self.error)
