"""The gateway app factory: Spawn's HTTP/protobuf protocol, a JSON route, health, drain and metrics on Flask.

``create_app()`` builds one :class:`~spawn_celery.gateway.parts.Gateway` (services, client, drain state, metrics,
authentication, ACL) per process and registers the routes. Serve it with gunicorn (``web/wsgi.py``,
``web/gunicorn.conf.py``) or ``spawn-celery gateway`` for development.
"""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, RequestError
from spawn_celery.gateway import answers, dashboard, health, protocol, rest
from spawn_celery.gateway.acl import Policy
from spawn_celery.gateway.auth import Authenticator
from spawn_celery.gateway.drain import Drain
from spawn_celery.gateway.invocation import Invoker
from spawn_celery.gateway.metrics import GatewayMetrics
from spawn_celery.gateway.parts import Gateway
from spawn_celery.services import Services

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """Build the gateway Flask app.

    Args:
        settings: the process settings (default: from the environment; ignored when ``services`` is given).
        services: shared services to use (default: built from ``settings``).

    Raises:
        ConfigError: bad auth/ACL configuration or an unimportable ``SPAWN_GATEWAY_IMPORTS`` module.
    """
    if services is None:
        services = Services.create(settings or Settings.from_env())
    settings = services.settings
    _import_modules(settings.gateway_imports)
    app = Flask("spawn_celery.gateway")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    drain = Drain(delay_ms=settings.drain_delay_ms, timeout_ms=settings.drain_timeout_ms)
    metrics = GatewayMetrics(app, settings)
    policy = Policy.load(settings.acl_file)
    invoker = Invoker(
        router=services.router,
        transport=services.transport,
        metrics=metrics,
        policy=policy,
        drain=drain,
        timeout_ms=settings.invoke_timeout_ms,
    )
    gateway = Gateway(
        settings=settings,
        services=services,
        client=Client(services=services),
        drain=drain,
        metrics=metrics,
        auth=Authenticator(settings),
        policy=policy,
        invoker=invoker,
    )
    app.extensions["spawn_celery"] = gateway
    for module in (health, protocol, rest, dashboard):
        app.register_blueprint(module.blueprint(gateway))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.wsgi_app = drain.wrap(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app


def _http_error(exc: HTTPException) -> Response:
    """Unknown paths, wrong methods and the like: JSON, never an HTML page."""
    code = exc.code or 500
    error = RequestError(exc.description or exc.name)
    error.http_status = code
    return answers.error_json(error)


def _unexpected(exc: Exception) -> Response:
    """Anything that escaped a route: 500 with an error id (the traceback is logged under it)."""
    return answers.error_json(exc)


def _import_modules(names: str) -> None:
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError("SPAWN_GATEWAY_IMPORTS", name, f"cannot import: {exc}") from None
