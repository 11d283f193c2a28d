"""The RabbitMQ activator: consume queues with pika and turn each message into actor invocations.

Guarantees:

- **Ack after acceptance.** A message is acked only after every bound sink accepted its invocation (enqueued; or
  answered, for ``async: false`` sinks). A crash before the ack means redelivery, and the invocation id derived from
  the AMQP ``message_id`` (``amqp:<source>:<sink>:<message_id>``) makes the second send a no-op in the workers: each
  message is applied exactly once across crashes, dropped connections and broker restarts.
- **Poison messages never block.** An unmappable or undecodable message is published, with its properties and a
  ``x-spawn-reason`` header, to the source's dead-letter exchange (publisher confirms on) and then acked.
- **Bounded retries.** A failing invocation is retried ``maxRetries`` times with doubling delays, then dead-lettered.
  Invalid requests (unknown actor or action) are dead-lettered at once. An unreachable Redis or Celery broker is not
  the message's fault: the message is requeued after a back-off and nothing is dead-lettered.
- **Reconnect.** A lost connection, or a consumer the broker cancelled (queue deleted), is re-opened with
  exponential back-off; queues are re-declared.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import pika
import pika.exceptions
import redis
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import Basic, BasicProperties

from spawn_celery.activators.manifest import Manifest, Source
from spawn_celery.activators.mapping import Delivery, Invocation, Unmappable, invocations
from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import ActorError, ConfigError, RequestError, SpawnError, TransportUnavailable

log = logging.getLogger(__name__)
REASON_HEADER = "x-spawn-reason"


@dataclass(frozen=True)
class RabbitOptions:
    """Connection and delivery options, from ``spec.activator.settings`` and the settings."""

    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    prefetch: int = 50
    max_retries: int = 3
    retry_delay_s: float = 0.2
    reconnect_delay_s: float = 0.5
    reconnect_max_delay_s: float = 30.0

    @classmethod
    def of(cls, manifest: Manifest, settings: Settings) -> RabbitOptions:
        """Read the manifest's settings; the URL is ``settings.url``, else ``SPAWN_AMQP_URL``, else host/port/vhost."""
        s = manifest.settings
        url = str(s.get("url") or settings.amqp_url or "")
        if not url:
            from urllib.parse import quote

            vhost = quote(str(s.get("vhost", "/")), safe="")
            url = f"amqp://guest:guest@{s.get('host', '127.0.0.1')}:{int(s.get('port', 5672))}/{vhost}"
        return cls(
            url=url,
            prefetch=int((s.get("backpressure") or {}).get("prefetchCount", 50)),
            max_retries=int(s.get("maxRetries", 3)),
            retry_delay_s=int(s.get("retryDelayMs", 200)) / 1000.0,
            reconnect_delay_s=int(s.get("reconnectDelayMs", 500)) / 1000.0,
            reconnect_max_delay_s=int(s.get("reconnectMaxDelayMs", 30_000)) / 1000.0,
        )


class _Outage(Exception):
    """Redis or the Celery broker is unreachable: requeue the message and back off."""


class RabbitActivator:
    """Consumes the manifest's queues and invokes its sinks."""

    def __init__(
        self, manifest: Manifest, *, client: Client, options: RabbitOptions, stop: threading.Event | None = None
    ) -> None:
        """Serve ``manifest`` through ``client``; set ``stop`` to end :meth:`run`."""
        self.manifest = manifest
        self.client = client
        self.options = options
        self.stop = stop or threading.Event()
        self._outage_delay = options.retry_delay_s or 0.1

    def run(self) -> None:
        """Consume until ``stop`` is set, reconnecting with exponential back-off.

        Raises:
            ConfigError: a queue exists with other arguments, or the credentials are refused.
        """
        delay = self.options.reconnect_delay_s
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self._session()
            except pika.exceptions.ProbableAuthenticationError as exc:
                raise ConfigError(
                    "SPAWN_AMQP_URL", _safe(self.options.url), f"RabbitMQ refused the login: {exc}"
                ) from None
            except (pika.exceptions.AMQPError, OSError) as exc:
                if time.monotonic() - started > 5 * delay:
                    delay = self.options.reconnect_delay_s  # it was connected for a while: start over
                log.warning("RabbitMQ connection lost (%r); reconnecting in %.1f s", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.options.reconnect_max_delay_s)

    def _session(self) -> None:
        params = pika.URLParameters(self.options.url)
        params.client_properties = {"connection_name": f"spawn-activator:{self.manifest.name}"}
        params.connection_attempts = 1
        connection = BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.options.prefetch)
            for source in self.manifest.sources:
                self._declare(channel, source)
                callback = partial(self._on_message, connection, source)
                channel.basic_consume(source.queue, on_message_callback=callback, auto_ack=False)
            log.info(
                "rabbitmq activator %s consuming %s (prefetch %d)",
                self.manifest.name,
                ", ".join(s.queue for s in self.manifest.sources),
                self.options.prefetch,
            )
            while not self.stop.is_set():
                connection.process_data_events(time_limit=0.25)
        finally:
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()

    def _declare(self, channel: BlockingChannel, source: Source) -> None:
        """Declare the dead-letter exchange and queue, then the durable source queue dead-lettering to them."""
        try:
            channel.exchange_declare(source.dead_letter_exchange, exchange_type="direct", durable=True)
            channel.queue_declare(source.dead_letter_queue, durable=True)
            channel.queue_bind(source.dead_letter_queue, source.dead_letter_exchange, routing_key=source.queue)
            args = {"x-dead-letter-exchange": source.dead_letter_exchange, "x-dead-letter-routing-key": source.queue}
            channel.queue_declare(source.queue, durable=True, arguments=args)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise ConfigError(
                    f"{self.manifest.origin}: source {source.name}",
                    source.queue,
                    f"the queue or exchange exists with other settings ({exc.reply_text}); delete it so the "
                    "activator declares it, or make deadLetterExchange match its x-dead-letter-exchange",
                ) from None
            raise

    def _on_message(
        self,
        connection: BlockingConnection,
        source: Source,
        channel: BlockingChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        tag = method.delivery_tag
        try:
            reason = self._handle(connection, source, props, body)
        except _Outage as exc:
            log.warning("message %s requeued: %s; retrying in %.1f s", props.message_id, exc, self._outage_delay)
            connection.sleep(self._outage_delay)
            self._outage_delay = min(self._outage_delay * 2, self.options.reconnect_max_delay_s)
            channel.basic_nack(tag, requeue=True)
            return
        except (pika.exceptions.AMQPError, OSError):
            raise
        except Exception as exc:  # a bug must neither crash the consumer nor loop on one message forever
            log.exception("message %s failed unexpectedly", props.message_id)
            if not method.redelivered:
                channel.basic_nack(tag, requeue=True)
                return
            reason = f"unexpected error: {type(exc).__name__}: {exc}"
        self._outage_delay = self.options.retry_delay_s or 0.1
        if reason:
            self._dead_letter(channel, source, props, body, reason)
        channel.basic_ack(tag)

    def _handle(self, connection: BlockingConnection, source: Source, props: BasicProperties, body: bytes) -> str:
        """Invoke every sink; return "" when all accepted, else the reason to dead-letter."""
        delivery = Delivery(
            body=body,
            content_type=props.content_type or "",
            message_id=props.message_id or "",
            correlation_id=props.correlation_id or "",
            app_id=props.app_id or "",
            user_id=props.user_id or "",
            type=props.type or "",
            headers=dict(props.headers or {}),
        )
        try:
            todo = invocations(delivery, source, self.manifest.sinks_of(source.name))
        except Unmappable as exc:
            return f"unmappable: {exc}"
        for invocation in todo:
            reason = self._deliver(connection, invocation)
            if reason:
                return f"sink {invocation.sink.name}: {reason}"
        return ""

    def _deliver(self, connection: BlockingConnection, inv: Invocation) -> str:
        """Send one invocation with bounded retries; return "" on acceptance, else why it failed."""
        suffix, delay, last = 0, self.options.retry_delay_s, ""
        for attempt in range(self.options.max_retries + 1):
            invocation_id = (inv.invocation_id + (f".r{suffix}" if suffix else "")) if inv.invocation_id else None
            try:
                self.client.invoke(
                    inv.sink.system,
                    inv.actor,
                    inv.action,
                    inv.payload,
                    parent=inv.parent,
                    async_mode=inv.sink.async_mode,
                    metadata=inv.metadata,
                    invocation_id=invocation_id,
                    timeout=inv.sink.timeout_s,
                )
                return ""
            except RequestError as exc:
                return f"{type(exc).__name__}: {exc}"
            except (TransportUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
                raise _Outage(f"{type(exc).__name__}: {exc}") from exc
            except SpawnError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ActorError):
                    suffix += 1  # the failure is recorded under that id (no state changed): retry under a new one
            if attempt < self.options.max_retries:
                log.info("invocation %s failed (%s); retry %d in %.2f s", invocation_id, last, attempt + 1, delay)
                connection.sleep(delay)
                delay *= 2
        return f"failed after {self.options.max_retries + 1} attempts: {last}"

    def _dead_letter(
        self, channel: BlockingChannel, source: Source, props: BasicProperties, body: bytes, reason: str
    ) -> None:
        """Publish the message to the dead-letter exchange with the reason; confirmed before the original is acked."""
        headers: dict[str, Any] = dict(props.headers or {})
        headers.update(
            {
                REASON_HEADER: reason[:4000],
                "x-spawn-source": source.name,
                "x-spawn-queue": source.queue,
                "x-spawn-activator": self.manifest.name,
            }
        )
        if props.user_id:  # RabbitMQ checks user_id against the publishing login, so it travels as a header
            headers["x-spawn-user-id"] = props.user_id
        copy = BasicProperties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            headers=headers,
            delivery_mode=2,
            correlation_id=props.correlation_id,
            reply_to=props.reply_to,
            message_id=props.message_id,
            timestamp=props.timestamp,
            type=props.type,
            app_id=props.app_id,
        )
        channel.basic_publish(source.dead_letter_exchange, source.queue, body, properties=copy, mandatory=True)
        log.warning("message %s dead-lettered to %s: %s", props.message_id, source.dead_letter_queue, reason)


def _safe(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.rpartition("@")
    return ("amqp://***@" + tail) if sep else url
