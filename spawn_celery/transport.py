"""Celery transport: the Celery app, sending invocation messages to actor queues, and replies via the backend.

The Celery app is built by :func:`create_celery` from :class:`~spawn_celery.config.Settings` (never at import
time). Replies travel through the Celery result backend (Redis): the worker that produces the final reply stores
it under the caller's ``reply_to`` id, so forward/pipe chains answer the original caller without any worker
waiting on another task.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError

from spawn_celery.config import Settings
from spawn_celery.errors import InvocationTimeout, TransportUnavailable
from spawn_celery.message import TASK_NAME, Message, Reply


def create_celery(settings: Settings, *, name: str = "spawn_celery") -> Celery:
    """Build the Celery app every spawn_celery process uses (same config for clients and workers)."""
    app = Celery(name, broker=settings.broker, backend=settings.backend, set_as_current=False)
    transport_options = {"visibility_timeout": settings.visibility_timeout_s}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_expires=3600,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_create_missing_queues=True,
        task_default_queue="spawn.default",
        enable_utc=True,
    )
    return app


class CeleryTransport:
    """Sends invocation messages and carries replies."""

    def __init__(self, *, app: Celery) -> None:
        """Use the Celery ``app`` (from :func:`create_celery`)."""
        self.app = app

    def send(self, message: Message, queue: str) -> None:
        """Enqueue ``message`` on ``queue``. The Celery task id is the invocation id.

        Raises:
            TransportUnavailable: the broker cannot be reached.
        """
        try:
            self.app.send_task(
                TASK_NAME,
                kwargs=message.to_kwargs(),
                queue=queue,
                task_id=message.id,
                shadow=f"{message.system}.{message.actor}.{message.action}",
            )
        except OperationalError as exc:
            raise TransportUnavailable(f"broker unreachable: {exc}") from None

    def store(self, reply_to: str, reply: Reply) -> None:
        """Store the final reply for the caller waiting on ``reply_to``."""
        self.app.backend.store_result(reply_to, reply.to_json(), "SUCCESS")

    def wait(self, reply_to: str, timeout_s: float) -> Reply:
        """Wait for the reply stored under ``reply_to``.

        Raises:
            InvocationTimeout: nothing arrived within ``timeout_s``.
            TransportUnavailable: the result backend cannot be reached.
        """
        result = self.app.AsyncResult(reply_to)
        try:
            value: Any = result.get(timeout=timeout_s, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeout:
            raise InvocationTimeout(reply_to, timeout_s) from None
        except OperationalError as exc:
            raise TransportUnavailable(f"result backend unreachable: {exc}") from None
        finally:
            result.forget()
        return Reply.from_json(value)
