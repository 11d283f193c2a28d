"""The gateway: Spawn's HTTP/protobuf protocol (and a JSON route) in front of the actor mesh."""

from spawn_celery.gateway.app import create_app

__all__ = ["create_app"]
