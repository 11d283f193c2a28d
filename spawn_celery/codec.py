"""Payload and state codec: Python values <-> ``google.protobuf.Any``.

Protobuf messages are packed with type URL ``type.googleapis.com/<full name>``. JSON-compatible Python values
(dict, list, str, int, float, bool) travel as Spawn's ``JSONType{content}`` so users without ``.proto`` files can
start. Unpacking finds message classes in the default descriptor pool (import your ``_pb2`` modules first); an
unknown type unpacks to the ``Any`` itself rather than failing.
"""

from __future__ import annotations

import json
from typing import Any as AnyValue
from typing import TypeVar

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from spawn_celery.errors import PayloadDecodeError, PayloadEncodeError
from spawn_celery.proto import protocol_pb2

TYPE_PREFIX = "type.googleapis.com/"
JSON_TYPE_URLS = frozenset(
    {
        TYPE_PREFIX + "eigr.functions.protocol.JSONType",
        TYPE_PREFIX + "spawn.JSONType",
    }
)
"""Gen-1 and Gen-2 spellings of Spawn's schema-less JSON payload type."""

M = TypeVar("M", bound=Message)
_class_cache: dict[str, type[Message] | None] = {}


def pack(value: AnyValue) -> any_pb2.Any | None:
    """Pack a payload or state value into an ``Any``.

    Args:
        value: ``None``, an ``Any``, a protobuf message, or a JSON-compatible value.

    Returns:
        The packed ``Any``, or ``None`` for ``None``.

    Raises:
        PayloadEncodeError: the value is neither a message nor JSON-serializable.
    """
    if value is None:
        return None
    if isinstance(value, any_pb2.Any):
        return value
    if isinstance(value, Message):
        packed = any_pb2.Any()
        packed.Pack(value)
        return packed
    try:
        content = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadEncodeError(type(value).__name__, f"not a protobuf message and not JSON: {exc}") from None
    packed = any_pb2.Any(type_url=TYPE_PREFIX + "eigr.functions.protocol.JSONType")
    packed.value = protocol_pb2.JSONType(content=content).SerializeToString()
    return packed


def unpack(packed: any_pb2.Any | None) -> AnyValue:
    """Unpack an ``Any`` into a Python value.

    Returns:
        ``None`` for an unset/empty ``Any``, the decoded JSON value for ``JSONType``, an instance of the registered
        message class, or the ``Any`` itself when its type is not imported in this process.

    Raises:
        PayloadDecodeError: the bytes do not decode as the named type.
    """
    if packed is None or (not packed.type_url and not packed.value):
        return None
    if packed.type_url in JSON_TYPE_URLS:
        doc = decode(protocol_pb2.JSONType, packed.value, "JSONType payload")
        try:
            return json.loads(doc.content) if doc.content else None
        except ValueError as exc:
            raise PayloadDecodeError("JSONType payload", f"invalid JSON: {exc}") from None
    cls = message_class(packed.type_url)
    if cls is None:
        return packed
    return decode(cls, packed.value, cls.DESCRIPTOR.full_name)


def message_class(type_url: str) -> type[Message] | None:
    """Return the message class for a type URL if its module is imported, else ``None``."""
    if type_url in _class_cache:
        return _class_cache[type_url]
    name = type_url.rsplit("/", 1)[-1].lstrip(".")
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None  # not cached: the module may be imported later
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    _class_cache[type_url] = cls
    return cls


def decode(cls: type[M], data: bytes, what: str) -> M:
    """Parse ``data`` as ``cls``.

    Raises:
        PayloadDecodeError: the bytes are not a valid encoding of ``cls``; the message names ``what``.
    """
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        raise PayloadDecodeError(what, str(exc) or type(exc).__name__) from None


def to_json(value: AnyValue) -> AnyValue:
    """Render an unpacked value as JSON-compatible data (messages via their canonical JSON mapping)."""
    from google.protobuf import json_format

    if isinstance(value, any_pb2.Any):
        return {"@type": value.type_url, "value_base64": _b64(value.value)}
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    return value


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")
