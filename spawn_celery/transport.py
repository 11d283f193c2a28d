"""Celery transport: the Celery app, sending invocation messages to actor queues, and replies via the backend.

The Celery app is built by :func:`create_celery` from :class:`~spawn_celery.config.Settings` (never at import
time). Replies travel through the result backend's Redis: the worker that produces the final reply pushes it on a
list named after the caller's ``reply_to`` id (:func:`keys.reply`), so forward/pipe chains answer the original
caller without any worker waiting on another task. The caller waits with one ``BLPOP``, which also removes the
reply: one round trip, where Celery's ``AsyncResult.get`` costs a subscribe, a read, an unsubscribe and a delete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery import Celery
from celery.app.amqp import AMQP
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from spawn_celery import keys
from spawn_celery.config import Settings
from spawn_celery.errors import InvocationTimeout, TransportUnavailable
from spawn_celery.events import SentEvents
from spawn_celery.message import TASK_NAME, Message, Reply


class ShadowNamedAMQP(AMQP):
    """Celery's message builder, with the ``task-sent`` event named like the task (``<system>.<actor>.<action>``).

    Celery names that event after the registered task (``spawn.invoke``); when it reaches Flower after the worker's
    ``task-received`` event, Flower would show the task under that name.
    """

    def as_task_v2(self, *args: Any, **kwargs: Any) -> Any:
        """Build the task message as Celery does, then rename its sent event after the shadow name."""
        message = super().as_task_v2(*args, **kwargs)
        if message.sent_event is not None and message.headers.get("shadow"):
            message.sent_event["name"] = message.headers["shadow"]
        return message


class ReusedClientChannel(kombu_redis.Channel):
    """kombu's Redis channel, reusing one client object instead of building a ``redis.Redis`` per command.

    kombu builds a new client (about 130 us of CPU here) for every publish, event, unacked record and ack; that
    is several per invocation. The client shares the channel's connection pool, so commands are unchanged.
    """

    _reused: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """Yield ``client`` if given, else this channel's client (rebuilt if the pool was replaced)."""
        if client:
            yield client
            return
        reused = self._reused
        if reused is None or reused.connection_pool is not self.pool:
            reused = self._reused = self._create_client()  # type: ignore[attr-defined]  # not in the stubs
        yield reused


class ReusedClientTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`ReusedClientChannel`."""

    Channel = ReusedClientChannel


def create_celery(settings: Settings, *, name: str = "spawn_celery") -> Celery:
    """Build the Celery app every spawn_celery process uses (same config for clients and workers)."""
    app = Celery(name, broker=settings.broker, backend=settings.backend, set_as_current=False, amqp=ShadowNamedAMQP)
    transport_options = {"visibility_timeout": settings.visibility_timeout_s}
    # kombu sweeps for messages a dead worker took only every interval x throttle s (10 x 10 by default, plus once
    # at worker start): sweep every few seconds so they come back about visibility_timeout after they were taken.
    restore = {"unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 5)),
               "unacked_restore_throttle": 1}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_expires=3600,
        worker_send_task_events=bool(settings.task_events),
        task_send_sent_event=bool(settings.sent_events),
        broker_transport_options={**transport_options, **restore},
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_transport=ReusedClientTransport if settings.broker.startswith("redis://") else None,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_create_missing_queues=True,
        task_default_queue="spawn.default",
        enable_utc=True,
    )
    return app


_BLPOP_CHUNK_S = 20.0
"""Longest single ``BLPOP``: well under the backend client's socket timeout (Celery's default 120 s)."""


def readable_kwargs(kwargs: dict[str, Any]) -> str:
    """What Flower and the task events show as the arguments: the readable fields, not the protobuf blob."""
    shown = {k: v for k, v in kwargs.items() if k != "request"}
    shown["request"] = f"<InvocationRequest, {len(kwargs.get('request', '')) * 3 // 4} bytes>"
    return repr(shown)


class CeleryTransport:
    """Sends invocation messages and carries replies."""

    def __init__(self, *, app: Celery, folds_replies: bool = True, event_flush_s: float = 0.0) -> None:
        """Use the Celery ``app`` (from :func:`create_celery`).

        ``folds_replies`` says the result backend is the Redis that holds actor state, so a worker's commit script
        may push the reply itself. With ``event_flush_s``, task-sent events (if the app sends them) are published in
        batches that often (:class:`~spawn_celery.events.SentEvents`).
        """
        self.app = app
        self.folds_replies = folds_replies
        self.sent_events = SentEvents(app, event_flush_s) if event_flush_s > 0 else None

    @property
    def replies(self) -> redis.Redis:
        """The result backend's Redis client, which carries replies."""
        return self.app.backend.client  # type: ignore[attr-defined,no-any-return]

    def send(self, message: Message, queue: str) -> None:
        """Enqueue ``message`` on ``queue``. The Celery task id is the invocation id.

        Raises:
            TransportUnavailable: the broker cannot be reached.
        """
        kwargs = message.to_kwargs()
        try:
            self.app.send_task(
                TASK_NAME,
                kwargs=kwargs,
                queue=queue,
                task_id=message.id,
                shadow=f"{message.system}.{message.actor}.{message.action}",
                kwargsrepr=readable_kwargs(kwargs),
                ignore_result=True,  # replies come back on our own list: no result subscription per send
                event_dispatcher=self.sent_events,  # None: Celery publishes the task-sent event itself
            )
        except OperationalError as exc:
            raise TransportUnavailable(f"broker unreachable: {exc}") from None

    def store(self, reply_to: str, reply: Reply) -> None:
        """Push the final reply for the caller waiting on ``reply_to`` (one round trip)."""
        key, value, ttl = self.reply_record(reply_to, reply)
        pipe = self.replies.pipeline(transaction=False)
        pipe.rpush(key, value)
        if ttl:
            pipe.expire(key, ttl)
        pipe.execute()

    def reply_record(self, reply_to: str, reply: Reply) -> tuple[str, str, int]:
        """The reply record of ``reply``: ``(list key, value, ttl_s)``.

        The worker's commit script pushes it in the same round trip as the state (see ``Commit.answer``). The ttl
        bounds a reply nobody pops (its caller timed out, or a redelivered duplicate answered again).
        """
        backend: Any = self.app.backend
        return keys.reply(reply_to), reply.to_json(), int(backend.expires or 0)

    def wait(self, reply_to: str, timeout_s: float) -> Reply:
        """Wait for the reply pushed for ``reply_to`` and take it (a retry reusing the id waits for a new one).

        Raises:
            InvocationTimeout: nothing arrived within ``timeout_s``.
            TransportUnavailable: the result backend cannot be reached.
        """
        key = keys.reply(reply_to)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InvocationTimeout(reply_to, timeout_s)
            try:
                got = self.replies.blpop([key], timeout=max(min(left, _BLPOP_CHUNK_S), 0.01))
            except redis.RedisError as exc:
                raise TransportUnavailable(f"result backend unreachable: {exc}") from None
            if got:
                return Reply.from_json(got[1])
