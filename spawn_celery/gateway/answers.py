"""Errors are answers: the one place that turns an error into an HTTP status and a body.

Protobuf endpoints answer with their own response message (``InvocationResponse``, ``SpawnResponse``,
``RegistrationResponse``) carrying ``RequestStatus{status, message}``, because spawn-python-sdk parses every reply
body as the endpoint's response message whatever the HTTP status. JSON endpoints answer
``{"status", "message", "error"}``. Unexpected exceptions become 500 with an opaque error id that is logged with the
traceback; nothing ever answers with an HTML page.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis
from flask import Response
from google.protobuf.message import Message

from spawn_celery import errors
from spawn_celery.proto import protocol_pb2

log = logging.getLogger(__name__)
PROTOBUF = "application/octet-stream"
JSON = "application/json"
_MAX_MESSAGE = 2000
"""Error messages are cut to this many characters (a huge actor name must not make a huge answer)."""


def protobuf(message: Message, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A protobuf answer."""
    return Response(message.SerializeToString(), status=status, mimetype=PROTOBUF, headers=headers)


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status=status, mimetype=JSON, headers=headers)


def classify(exc: BaseException) -> tuple[int, str, str, str]:
    """Map an error to ``(http status, Status name, message, error type)``; unexpected errors are logged.

    ``SpawnError`` subclasses carry their HTTP status and ``Status`` name. Anything else is a server bug: it gets
    a fresh error id, the traceback goes to the log under that id, and the caller sees only the id. Redis errors
    that escape the core are a dependency outage (503), not a bug.
    """
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        exc = errors.TransportUnavailable(f"redis unreachable: {exc}")
    if isinstance(exc, errors.SpawnError):
        message = str(exc) or type(exc).__name__
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        return exc.http_status, exc.status_name, message, type(exc).__name__
    error_id = uuid.uuid4().hex[:16]
    log.error("unexpected error %s", error_id, exc_info=exc)
    return 500, "ERROR", f"internal error (error id {error_id})", "InternalError"


def status_message(status_name: str, message: str) -> protocol_pb2.RequestStatus:
    """A ``RequestStatus`` for a Status name."""
    status = protocol_pb2.Status.Value(status_name)
    return protocol_pb2.RequestStatus(status=status, message=message)  # type: ignore[arg-type]


def error_protobuf(exc: BaseException, response_cls: type[Message], headers: dict[str, str] | None = None) -> Response:
    """Answer ``exc`` with ``response_cls{status: RequestStatus}`` and the error's HTTP status."""
    http, name, message, error_type = classify(exc)
    answer = response_cls()
    answer.status.CopyFrom(status_message(name, message))  # type: ignore[attr-defined]
    all_headers = {"X-Spawn-Error": error_type, **(headers or {})}
    return protobuf(answer, http, all_headers)


def error_json(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """Answer ``exc`` as ``{"status", "message", "error"}`` with the error's HTTP status."""
    http, name, message, error_type = classify(exc)
    return json_answer({"status": name, "message": message, "error": error_type}, http, headers)
