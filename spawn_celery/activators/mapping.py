"""Message → invocation: decode a broker message's payload and name its target, from the manifest and the message.

Pure logic, no broker client: :class:`Delivery` is what the RabbitMQ activator reads off a message.

Payload by content type (parameters such as ``; charset=utf-8`` are ignored; a message without one gets the
source's ``contentType``, default ``application/json``):

- ``application/json`` (and ``*+json``): the JSON value, sent as Spawn's ``JSONType``; an empty body is no payload.
- ``application/protobuf``, ``application/x-protobuf``, ``application/octet-stream``: a serialized
  ``google.protobuf.Any``, passed on as it is.
- ``application/cloudevents+json``: a structured-mode CloudEvent (``specversion``, ``id``, ``source``, ``type``
  required). ``data`` becomes a JSON payload, ``data_base64`` a serialized ``Any`` (as Spawn's old activator read
  ``binary_data``). Its ``id`` and ``source`` can name the actor and action (``strategy: cloudevent``).

Anything else raises :class:`Unmappable`, and the message is dead-lettered with that reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from spawn_celery import codec
from spawn_celery.activators.manifest import Selector, Sink, Source
from spawn_celery.errors import PayloadEncodeError

JSON_TYPES = frozenset({"application/json", "text/json"})
PROTOBUF_TYPES = frozenset({"application/protobuf", "application/x-protobuf", "application/octet-stream"})
CLOUDEVENT_TYPE = "application/cloudevents+json"
PROPERTIES = ("message_id", "correlation_id", "app_id", "user_id", "type")


class Unmappable(Exception):
    """The message cannot become an invocation (undecodable, or a name it needs is missing). Never retried."""


@dataclass(frozen=True)
class Delivery:
    """What the activator reads off one broker message."""

    body: bytes
    content_type: str = ""
    message_id: str = ""
    correlation_id: str = ""
    app_id: str = ""
    user_id: str = ""
    type: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict)

    def property(self, name: str) -> str:
        """The message property ``name`` (``message_id`` ...) or, for any other name, the header of that name."""
        if name in PROPERTIES:
            return str(getattr(self, name) or "")
        raw = self.headers.get(name)
        if isinstance(raw, bytes):
            return raw.decode("utf-8", "replace")
        return "" if raw is None else str(raw)


@dataclass(frozen=True)
class Invocation:
    """One invocation to send for a message."""

    sink: Sink
    actor: str
    action: str
    parent: str
    payload: any_pb2.Any | None
    invocation_id: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Decoded:
    """A decoded message: its payload and, for a CloudEvent, its attributes."""

    payload: any_pb2.Any | None
    event: Mapping[str, Any] | None = None


def decode(delivery: Delivery, source: Source) -> Decoded:
    """Decode the payload of ``delivery`` by its content type.

    Raises:
        Unmappable: unsupported content type or undecodable body; the message says which.
    """
    content_type = (delivery.content_type or source.content_type).split(";")[0].strip().lower()
    if content_type == CLOUDEVENT_TYPE:
        return _cloudevent(delivery.body)
    if content_type in JSON_TYPES or content_type.endswith("+json"):
        return Decoded(_json(delivery.body, "body"))
    if content_type in PROTOBUF_TYPES:
        return Decoded(_any(delivery.body, "body"))
    raise Unmappable(
        f"unsupported content type {content_type!r}: use application/json, application/protobuf "
        f"(a serialized google.protobuf.Any) or {CLOUDEVENT_TYPE}"
    )


def invocations(delivery: Delivery, source: Source, sinks: list[Sink]) -> list[Invocation]:
    """Map ``delivery`` (from ``source``) to one invocation per sink.

    Raises:
        Unmappable: the payload cannot be decoded, or a name the sink takes from the message is missing.
    """
    decoded = decode(delivery, source)
    event = decoded.event
    key = delivery.message_id or (f"ce:{event['source']}:{event['id']}" if event is not None else "")
    if not key and source.require_message_id:
        raise Unmappable("the message has no message_id (the source sets requireMessageId: true)")
    out = []
    for sink in sinks:
        actor = _name(sink.name_from, delivery, event, sink, "nameFrom") if sink.name_from else sink.actor
        parent = sink.actor if sink.name_from and actor != sink.actor else ""
        action = _name(sink.action_from, delivery, event, sink, "actionFrom") if sink.action_from else sink.action
        metadata = {"activator-source": source.name, "amqp-queue": source.queue, **dict(sink.metadata)}
        if delivery.message_id:
            metadata["amqp-message-id"] = delivery.message_id
        if event is not None:
            metadata.update({f"ce-{k}": str(event[k]) for k in ("id", "source", "type", "subject") if k in event})
        invocation_id = f"amqp:{source.name}:{sink.name}:{key}" if key else ""
        out.append(Invocation(sink, actor, action, parent, decoded.payload, invocation_id, metadata))
    return out


def _name(
    selector: Selector | None, delivery: Delivery, event: Mapping[str, Any] | None, sink: Sink, field: str
) -> str:
    assert selector is not None
    if selector.strategy == "fixed":
        return selector.wrap(selector.value)
    if selector.strategy == "cloudevent":
        if event is None:
            raise Unmappable(
                f"sink {sink.name}: {field} takes the CloudEvent {selector.value!r}, but the message is no CloudEvent"
            )
        raw = str(event.get(selector.value) or "")
    else:
        raw = delivery.property(selector.value)
    if not raw:
        raise Unmappable(
            f"sink {sink.name}: {field} takes {selector.strategy} {selector.value!r}, which the message lacks"
        )
    return selector.wrap(raw)


def _json(body: bytes, what: str) -> any_pb2.Any | None:
    if not body.strip():
        return None
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unmappable(f"{what} is not valid JSON: {exc}") from None
    try:
        return codec.pack(value)
    except PayloadEncodeError as exc:
        raise Unmappable(f"{what}: {exc}") from None


def _any(body: bytes, what: str) -> any_pb2.Any | None:
    if not body:
        return None
    try:
        packed = any_pb2.Any.FromString(body)
    except (DecodeError, ValueError) as exc:
        raise Unmappable(f"{what} is not a serialized google.protobuf.Any: {exc}") from None
    if "/" not in packed.type_url:
        raise Unmappable(f"{what} is not a serialized google.protobuf.Any: no type URL")
    return packed


def _cloudevent(body: bytes) -> Decoded:
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unmappable(f"CloudEvent is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise Unmappable("CloudEvent must be a JSON object (structured mode)")
    missing = [k for k in ("specversion", "id", "source", "type") if not isinstance(event.get(k), str) or not event[k]]
    if missing:
        raise Unmappable(f"CloudEvent lacks required attribute(s) {', '.join(missing)}")
    if "data_base64" in event:
        try:
            raw = base64.b64decode(str(event["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Unmappable(f"CloudEvent data_base64 is not base64: {exc}") from None
        return Decoded(_any(raw, "CloudEvent data_base64"), event)
    data = event.get("data")
    payload = _json(json.dumps(data).encode(), "CloudEvent data") if data is not None else None
    return Decoded(payload, event)
