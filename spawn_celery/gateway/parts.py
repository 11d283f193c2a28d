"""The parts of one gateway app, and the decorators that turn every route's failure into an answer."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from google.protobuf.message import Message

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import BodyTooLarge, Unauthenticated
from spawn_celery.gateway import answers
from spawn_celery.gateway.acl import Policy
from spawn_celery.gateway.auth import Authenticator
from spawn_celery.gateway.drain import Drain
from spawn_celery.gateway.invocation import Invoker
from spawn_celery.gateway.metrics import GatewayMetrics
from spawn_celery.services import Services

View = Callable[..., Response]


@dataclass
class Gateway:
    """Everything a gateway app shares across requests (one per process; stored in ``app.extensions``)."""

    settings: Settings
    services: Services
    client: Client
    drain: Drain
    metrics: GatewayMetrics
    auth: Authenticator
    policy: Policy
    invoker: Invoker

    def principal(self) -> str:
        """Authenticate the current request; return its principal ("" when auth is off)."""
        return self.auth.authenticate(request.headers.get("Authorization"))

    def challenge(self, exc: BaseException) -> dict[str, str]:
        """Extra headers for an error answer: the auth challenge on 401; on 413 the unread body ends the connection."""
        if isinstance(exc, Unauthenticated):
            return {"WWW-Authenticate": self.auth.challenge}
        if isinstance(exc, BodyTooLarge):
            return {"Connection": "close"}
        return {}


def answering(gateway: Gateway, response_cls: type[Message]) -> Callable[[View], View]:
    """Authenticate, then run the view; any failure becomes ``response_cls{status}`` with the right HTTP status."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Response:
            try:
                return view(gateway.principal(), **kwargs)
            except Exception as exc:  # errors are answers: every failure gets the endpoint's message
                return answers.error_protobuf(exc, response_cls, gateway.challenge(exc))

        return wrapped

    return decorate


def answering_json(gateway: Gateway) -> Callable[[View], View]:
    """Like :func:`answering`, for JSON routes."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Response:
            try:
                return view(gateway.principal(), **kwargs)
            except Exception as exc:  # errors are answers
                return answers.error_json(exc, gateway.challenge(exc))

        return wrapped

    return decorate
