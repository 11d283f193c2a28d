"""The JSON route for people, curl and the HTTP activator.

``POST /api/v1/system/<system>/actors/<actor>/actions/<action>`` with a JSON body (or none). A JSON object with an
``"@type"`` key is parsed with the protobuf JSON mapping of that message (its ``_pb2`` module must be imported in
the gateway: ``SPAWN_GATEWAY_IMPORTS``); any other JSON value travels as Spawn's ``JSONType``. Query parameters:
``async=true`` (do not wait), ``parent=<template>`` (spawn the instance from an unnamed template first). The reply
is ``{"status": "OK", "value": ..., "revision": N}``; errors are ``{"status", "message", "error"}``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request
from google.protobuf import any_pb2, json_format

from spawn_celery import codec
from spawn_celery.errors import PayloadDecodeError, RequestError
from spawn_celery.gateway import answers, body
from spawn_celery.gateway.parts import Gateway, answering_json
from spawn_celery.proto import actor_pb2, protocol_pb2

_TRUE = frozenset({"1", "true", "yes"})


def blueprint(gw: Gateway) -> Blueprint:
    """The JSON routes of ``gw``."""
    bp = Blueprint("rest", __name__)
    limit = gw.settings.max_body_bytes

    @bp.post("/api/v1/system/<system>/actors/<actor>/actions/<action>")
    @answering_json(gw)
    def act(principal: str, system: str, actor: str, action: str) -> Response:
        raw = body.read(request, limit)
        if raw.strip():
            body.check_type(request, body.JSON_TYPES, "JSON body")
        req = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=system)),
            action_name=action,
            register_ref=request.args.get("parent", ""),
        )
        setattr(req, "async", request.args.get("async", "").lower() in _TRUE)
        packed = payload_of(raw)
        if packed is None:
            req.noop.SetInParent()
        else:
            req.value.CopyFrom(packed)
        gw.invoker.normalise(req)
        outcome = gw.invoker.invoke(req, principal=principal)
        outcome.reply.raise_for_error()
        doc: dict[str, Any] = {"status": "OK", "revision": outcome.reply.revision}
        if outcome.waited:
            doc["value"] = value_json(outcome.reply.payload_any())
        return answers.json_answer(doc, 200 if outcome.waited else 202)

    return bp


def payload_of(raw: bytes) -> any_pb2.Any | None:
    """Turn a JSON body into the payload ``Any`` (``None`` for an empty body or ``null``).

    Raises:
        PayloadDecodeError: not JSON, or an ``@type`` object that does not parse as that message.
    """
    if not raw.strip():
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadDecodeError("JSON body", str(exc)) from None
    if isinstance(doc, dict) and "@type" in doc:
        type_url = str(doc["@type"])
        if "/" not in type_url:
            doc = {**doc, "@type": codec.TYPE_PREFIX + type_url}
        if codec.message_class(doc["@type"]) is None:
            raise RequestError(
                f"unknown message type {type_url[:200]!r}: "
                "the gateway must import its _pb2 module (SPAWN_GATEWAY_IMPORTS)"
            )
        try:
            return json_format.ParseDict(doc, any_pb2.Any())
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise PayloadDecodeError(f"JSON body as {type_url[:200]}", str(exc)[:500]) from None
    return codec.pack(doc)


def value_json(packed: any_pb2.Any | None) -> Any:
    """Render a reply payload as JSON: plain JSON for ``JSONType``, ``{"@type", ...}`` for messages."""
    if packed is None:
        return None
    if packed.type_url in codec.JSON_TYPE_URLS:
        return codec.unpack(packed)
    if codec.message_class(packed.type_url) is not None:
        return json_format.MessageToDict(packed, preserving_proto_field_name=True)
    return codec.to_json(packed)
