"""Small protobuf-over-HTTP helpers for the gateway tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from google.protobuf.message import Message

from spawn_celery import codec
from spawn_celery.proto import actor_pb2, protocol_pb2

PB = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
M = TypeVar("M", bound=Message)


def post(http: requests.Session, url: str, msg: Message | bytes, cls: type[M], **kw: Any) -> tuple[int, M]:
    data = msg if isinstance(msg, bytes) else msg.SerializeToString()
    reply = http.post(url, data=data, headers=kw.pop("headers", PB), timeout=30, **kw)
    assert reply.headers["Content-Type"].startswith("application/octet-stream"), reply.text[:300]
    return reply.status_code, cls.FromString(reply.content)


def invocation(system: str, actor: str, action: str, payload: Any = None,
               **fields: Any) -> protocol_pb2.InvocationRequest:
    req = protocol_pb2.InvocationRequest(
        system=actor_pb2.ActorSystem(name=system),
        actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=system)),
        action_name=action,
    )
    for key, value in fields.items():
        setattr(req, key, value) if not isinstance(value, dict) else getattr(req, key).update(value)
    packed = codec.pack(payload)
    if packed is not None:
        req.value.CopyFrom(packed)
    return req


def invoke(http: requests.Session, base: str, system: str, actor: str, action: str, payload: Any = None,
           headers: dict[str, str] | None = None, **fields: Any) -> tuple[int, protocol_pb2.InvocationResponse]:
    url = f"{base}/api/v1/system/{system}/actors/{actor}/invoke"
    req = invocation(system, actor, action, payload, **fields)
    return post(http, url, req, protocol_pb2.InvocationResponse, headers=headers or PB)


def spawn(http: requests.Session, base: str, system: str, parent: str, name: str | None = None,
          query: str = "", **kw: Any) -> tuple[int, protocol_pb2.SpawnResponse, str]:
    name = name or f"{parent}-{uuid.uuid4().hex[:8]}"
    req = protocol_pb2.SpawnRequest(actors=[actor_pb2.ActorId(name=name, system=system, parent=parent)])
    url = f"{base}/api/v1/system/{system}/actors/spawn{query}"
    status, answer = post(http, url, req, protocol_pb2.SpawnResponse, **kw)
    return status, answer, name


def value(answer: protocol_pb2.InvocationResponse) -> Any:
    return codec.unpack(answer.value) if answer.HasField("value") else None


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(0.05)
