"""Activators: turn outside events into actor invocations, configured by Spawn-style ``Activator`` manifests.

- :mod:`~spawn_celery.activators.manifest`: load and validate a manifest (``schema.json``).
- :mod:`~spawn_celery.activators.cron`: APScheduler cron schedules, once per fire time across replicas (extra ``cron``).
- :mod:`~spawn_celery.activators.mapping`: broker message → invocation (pure logic).
- :mod:`~spawn_celery.activators.rabbitmq`: the pika consumer (extra ``rabbitmq``).
- :mod:`~spawn_celery.activators.command`: ``spawn-celery activator cron|rabbitmq|check -f FILE``.

The HTTP activator is the gateway's JSON route (see ``docs/activators.md``). Importing this package needs neither
APScheduler nor pika.
"""

from spawn_celery.activators.manifest import Manifest, ManifestError, Selector, Sink, Source, load, parse

__all__ = ["Manifest", "ManifestError", "Selector", "Sink", "Source", "load", "parse"]
