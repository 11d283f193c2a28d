"""Celery transport: the Celery app, sending invocation messages to actor queues, and replies via the backend.

The Celery app is built by :func:`create_celery` from :class:`~spawn_celery.config.Settings` (never at import
time). Replies travel through the Celery result backend (Redis): the worker that produces the final reply stores
it under the caller's ``reply_to`` id, so forward/pipe chains answer the original caller without any worker
waiting on another task.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from spawn_celery.config import Settings
from spawn_celery.errors import InvocationTimeout, TransportUnavailable
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
        worker_send_task_events=True,
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


_MAX_WAITING = 10_000
_STORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


def readable_kwargs(kwargs: dict[str, Any]) -> str:
    """What Flower and the task events show as the arguments: the readable fields, not the protobuf blob."""
    shown = {k: v for k, v in kwargs.items() if k != "request"}
    shown["request"] = f"<InvocationRequest, {len(kwargs.get('request', '')) * 3 // 4} bytes>"
    return repr(shown)


class CeleryTransport:
    """Sends invocation messages and carries replies."""

    def __init__(self, *, app: Celery) -> None:
        """Use the Celery ``app`` (from :func:`create_celery`)."""
        self.app = app
        # Results of sync sends, kept so wait() reuses their reply subscription (dropping one unsubscribes).
        self._waiting: OrderedDict[str, Any] = OrderedDict()
        self._store_script: Any = None

    def send(self, message: Message, queue: str) -> None:
        """Enqueue ``message`` on ``queue``. The Celery task id is the invocation id.

        Raises:
            TransportUnavailable: the broker cannot be reached.
        """
        kwargs = message.to_kwargs()
        try:
            result = self.app.send_task(
                TASK_NAME,
                kwargs=kwargs,
                queue=queue,
                task_id=message.id,
                shadow=f"{message.system}.{message.actor}.{message.action}",
                kwargsrepr=readable_kwargs(kwargs),
            )
        except OperationalError as exc:
            raise TransportUnavailable(f"broker unreachable: {exc}") from None
        if message.reply_to == message.id:
            self._waiting[message.id] = result
            while len(self._waiting) > _MAX_WAITING:  # a sync send nobody waited for
                self._waiting.popitem(last=False)

    def store(self, reply_to: str, reply: Reply) -> None:
        """Store the final reply for the caller waiting on ``reply_to``, in one round trip.

        Same record and first-reply-wins rule as ``backend.store_result(..., "SUCCESS")``, without its read before
        the write (every reply is stored as SUCCESS, so "a reply exists" is "a SUCCESS exists").
        """
        if self._store_script is None:
            self._store_script = self.app.backend.client.register_script(_STORE)  # type: ignore[attr-defined]
        key, value, ttl = self.reply_record(reply_to, reply)
        self._store_script(keys=[key], args=[value, ttl])

    def reply_record(self, reply_to: str, reply: Reply) -> tuple[str, str, int]:
        """The result-backend record of ``reply``: ``(key, value, ttl_s)``, as ``store_result`` would write it.

        The worker's commit script writes it in the same round trip as the state (see ``Commit.answer``).
        """
        backend: Any = self.app.backend  # celery's RedisBackend (celery-types knows only the base class)
        meta: dict[str, Any] = {"status": "SUCCESS", "result": reply.to_json(), "traceback": None, "children": [],
                                "date_done": datetime.now(UTC).isoformat(), "task_id": reply_to}
        key = backend.get_key_for_task(reply_to)
        return key.decode() if isinstance(key, bytes) else key, backend.encode(meta), int(backend.expires or 0)

    def wait(self, reply_to: str, timeout_s: float) -> Reply:
        """Wait for the reply stored under ``reply_to``.

        Raises:
            InvocationTimeout: nothing arrived within ``timeout_s``.
            TransportUnavailable: the result backend cannot be reached.
        """
        result = self._waiting.pop(reply_to, None) or self.app.AsyncResult(reply_to)
        try:
            value: Any = result.get(timeout=timeout_s, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeout:
            raise InvocationTimeout(reply_to, timeout_s) from None
        except OperationalError as exc:
            raise TransportUnavailable(f"result backend unreachable: {exc}") from None
        finally:
            # Deleted now, not later: a caller that reuses the invocation id (a retry) must not read this reply.
            result.forget()
        return Reply.from_json(value)
