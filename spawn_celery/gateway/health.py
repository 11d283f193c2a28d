"""Health, readiness and the OpenAPI document (which, being under /api, needs credentials when auth is on).

``/health`` and ``/health/liveness`` are 200 while the process runs. ``/health/readiness`` is 503 once draining
(as Spawn) and also while Redis does not answer a ping (Spawn's readiness ignores its dependencies).
"""

from __future__ import annotations

from importlib import resources

import redis
from flask import Blueprint, Response

from spawn_celery.gateway import answers
from spawn_celery.gateway.parts import Gateway, answering_json


def blueprint(gw: Gateway) -> Blueprint:
    """The health routes of ``gw``."""
    bp = Blueprint("health", __name__)
    openapi = resources.files("spawn_celery.gateway").joinpath("openapi.yaml").read_bytes()

    @bp.get("/health")
    @bp.get("/health/liveness")
    def liveness() -> Response:
        return answers.json_answer({"status": "up"})

    @bp.get("/health/readiness")
    def readiness() -> Response:
        if gw.drain.draining:
            return answers.json_answer({"status": "down", "reason": "draining"}, 503)
        try:
            gw.services.redis.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return answers.json_answer({"status": "down", "reason": f"redis: {exc}"}, 503)
        return answers.json_answer({"status": "up"})

    @bp.get("/api/v1/openapi.yaml")
    @answering_json(gw)
    def openapi_document(principal: str) -> Response:
        return Response(openapi, mimetype="application/yaml")

    return bp
