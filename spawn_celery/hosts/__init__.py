"""Hosts run actions: in-process Python actors, or remote Spawn SDK hosts over HTTP."""

from spawn_celery.hosts.base import Host
from spawn_celery.hosts.python import PythonHost

__all__ = ["Host", "PythonHost"]
