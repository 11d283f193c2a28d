"""Reading, checking and decoding request bodies, and checking the names they carry.

Everything here raises :class:`~spawn_celery.errors.RequestError` subclasses whose message names what is wrong, so
a client mistake always becomes a 4xx answer (see :mod:`spawn_celery.gateway.answers`).
"""

from __future__ import annotations

import re
from typing import TypeVar

from flask import Request
from google.protobuf.message import Message
from werkzeug.exceptions import RequestEntityTooLarge

from spawn_celery import codec
from spawn_celery.errors import BodyTooLarge, PayloadDecodeError, RequestError

M = TypeVar("M", bound=Message)
PROTOBUF_TYPES = frozenset({"application/octet-stream", "application/protobuf", "application/x-protobuf"})
"""Content types accepted for protobuf bodies (Spawn's two, plus the common ``x-`` spelling)."""
JSON_TYPES = frozenset({"application/json"})
MAX_NAME = 255
_BAD_SYSTEM = re.compile(r"[\x00-\x20\x7f/:.]")
_BAD_ACTOR = re.compile(r"[\x00-\x20\x7f/:]")


def read(request: Request, limit: int) -> bytes:
    """Return the request body.

    Raises:
        BodyTooLarge: the body is over ``limit`` bytes (declared or streamed).
    """
    length = request.content_length
    if length is not None and length > limit:
        _discard(request, length, limit)
        raise BodyTooLarge(length, limit)
    try:
        data: bytes = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise BodyTooLarge(limit + 1, limit) from None
    if len(data) > limit:
        raise BodyTooLarge(len(data), limit)
    return data


def _discard(request: Request, length: int, limit: int) -> None:
    """Read and drop a refused body of moderate size, so the connection stays usable for the next request.

    Servers strip a ``Connection: close`` set by the app; a body left unread can make the server drop the
    keep-alive connection under the client. Bodies over 16 times the limit are not read (the server may close).
    """
    if length > 16 * limit:
        return
    stream = request.environ.get("wsgi.input")
    left = length
    while stream is not None and left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)


def check_type(request: Request, accepted: frozenset[str], what: str) -> None:
    """Check the ``Content-Type`` of a request.

    Raises:
        PayloadDecodeError: the content type is missing or not one of ``accepted``.
    """
    mimetype = request.mimetype
    if mimetype not in accepted:
        shown = request.content_type or "none"
        raise PayloadDecodeError(
            what, f"Content-Type {shown!r} is not supported; send {' or '.join(sorted(accepted))}"
        )


def protobuf(request: Request, cls: type[M], limit: int) -> M:
    """Check the content type, read and decode a protobuf body as ``cls``.

    Raises:
        PayloadDecodeError: wrong content type or bytes that are not a ``cls``.
        BodyTooLarge: the body is over ``limit``.
    """
    name = cls.DESCRIPTOR.name
    data = read(request, limit)  # read first: an unread body would be taken for the next request on the connection
    check_type(request, PROTOBUF_TYPES, name)
    return codec.decode(cls, data, name)


def check_system(value: str, where: str) -> str:
    """Check an actor system name and return it.

    Raises:
        RequestError: empty, too long, or with whitespace, control characters, '/', ':' or '.'.
    """
    return _check(value, where, _BAD_SYSTEM, "'/', ':', '.'")


def check_actor(value: str, where: str) -> str:
    """Check an actor (or action) name and return it.

    Raises:
        RequestError: empty, too long, or with whitespace, control characters, '/' or ':'.
    """
    return _check(value, where, _BAD_ACTOR, "'/', ':'")


def _check(value: str, where: str, bad: re.Pattern[str], listed: str) -> str:
    if not value:
        raise RequestError(f"{where} is missing")
    if len(value) > MAX_NAME:
        raise RequestError(f"{where} is {len(value)} characters long; the limit is {MAX_NAME}")
    if bad.search(value):
        raise RequestError(f"{where} {value[:80]!r} must not contain whitespace, control characters, {listed}")
    return value


def revision(raw: str | None) -> int:
    """Parse the ``?revision=N`` query parameter (absent means 0).

    Raises:
        RequestError: not a whole number >= 0.
    """
    if raw is None or raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise RequestError(f"query parameter revision={raw[:40]!r} must be a whole number >= 0")
    return int(raw)
