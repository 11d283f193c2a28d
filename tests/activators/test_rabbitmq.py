"""RabbitMQ activator: real RabbitMQ, real `spawn-celery activator rabbitmq` processes, a real worker."""

from __future__ import annotations

import base64
import json
import signal

from google.protobuf import any_pb2

from spawn_celery.client import Client
from spawn_celery.errors import ActorNotFound
from spawn_celery.examples.domain_pb2 import Increment
from tests.activators.conftest import ActivatorProcess, Rabbit, Start, unique, wait_until

MANIFEST = """
apiVersion: spawn-eigr.io/v1
kind: Activator
metadata: {{name: {name}}}
spec:
  activator:
    type: AMQP
    settings:
      url: amqp://guest:guest@127.0.0.1:5672/%2F
      backpressure: {{prefetchCount: {prefetch}}}
      maxRetries: 2
      retryDelayMs: 50
      reconnectDelayMs: 200
  bindings:
    sources: [{{name: in, queue: {queue}}}]
    sinks:
      - name: rec
        system: acttests
        actor: recorder
        action: {action}
        async: {async_mode}
        nameFrom: {{strategy: metadata, value: correlation_id, prefixWith: "{prefix}-"}}
        binding: [{{name: in}}]
"""
ACTORS = 40


def start(
    activators: Start, queue: str, *, prefetch: int = 100, action: str = "record", async_mode: bool = True
) -> tuple[ActivatorProcess, str, str, str]:
    name, prefix = unique("amqp"), unique("r")
    text = MANIFEST.format(
        name=name, queue=queue, prefetch=prefetch, action=action, async_mode=str(async_mode).lower(), prefix=prefix
    )
    proc = activators("rabbitmq", text)
    proc.wait_for("consuming")
    return proc, name, prefix, text


def applied(client: Client, prefix: str, actors: int = ACTORS) -> list[int]:
    seqs: list[int] = []
    for k in range(actors):
        try:
            view = client.state("acttests", f"{prefix}-{k}")
        except ActorNotFound:
            continue
        seqs += view.value["seqs"] if view.value else []
    return seqs


def publish_numbered(rabbit: Rabbit, queue: str, numbers: range) -> None:
    for i in numbers:
        body = json.dumps({"seq": i}).encode()
        rabbit.publish(
            queue, body, message_id=f"m-{i}", correlation_id=str(i % ACTORS), content_type="application/json"
        )


def test_thousand_messages_are_applied_exactly_once(act_client: Client, rabbit: Rabbit, activators: Start) -> None:
    queue = rabbit.queue()
    _, _, prefix, _ = start(activators, queue)
    publish_numbered(rabbit, queue, range(1000))
    seqs = wait_until(lambda: len(got := applied(act_client, prefix)) >= 1000 and got, timeout=120)
    assert sorted(seqs) == list(range(1000))
    assert rabbit.depth(queue) == 0 and rabbit.depth(f"{queue}.dlq") == 0


def test_poison_messages_are_dead_lettered_with_reasons(act_client: Client, rabbit: Rabbit, activators: Start) -> None:
    # Given 20 poison messages of five kinds among 10 good ones
    queue = rabbit.queue()
    _, _, prefix, _ = start(activators, queue)
    kinds = {
        "bad-json": (b"{not json", {"content_type": "application/json", "correlation_id": "1"}, "not valid JSON"),
        "text": (b'{"seq": 2000}', {"content_type": "text/plain", "correlation_id": "1"}, "unsupported content type"),
        "no-name": (b'{"seq": 2000}', {"content_type": "application/json"}, "correlation_id"),
        "bad-any": (
            b"\xff\xff\xff",
            {"content_type": "application/protobuf", "correlation_id": "1"},
            "google.protobuf.Any",
        ),
        "bad-event": (
            b'{"specversion": "1.0", "source": "s", "type": "t"}',
            {"content_type": "application/cloudevents+json", "correlation_id": "1"},
            "lacks required attribute(s) id",
        ),
    }
    for i in range(20):
        kind = list(kinds)[i % 5]
        body, props, _ = kinds[kind]
        rabbit.publish(queue, body, message_id=f"p-{i}", headers={"kind": kind}, **props)
    publish_numbered(rabbit, queue, range(10))
    # Then every poison message is in the dead-letter queue with its reason, and none was applied
    assert wait_until(lambda: rabbit.depth(f"{queue}.dlq") >= 20, timeout=30)
    dead = rabbit.drain(f"{queue}.dlq")
    assert len(dead) == 20
    for props, _ in dead:
        assert kinds[props.headers["kind"]][2] in props.headers["x-spawn-reason"], props.headers
    assert sorted(wait_until(lambda: len(got := applied(act_client, prefix)) >= 10 and got)) == list(range(10))
    assert rabbit.depth(queue) == 0


def test_failing_invocation_is_retried_then_dead_lettered(
    act_client: Client, rabbit: Rabbit, activators: Start
) -> None:
    queue = rabbit.queue()
    proc, _, _, _ = start(activators, queue, action="fail", async_mode=False)
    rabbit.publish(queue, b'{"seq": 1}', message_id="f-1", correlation_id="1", content_type="application/json")
    assert wait_until(lambda: rabbit.depth(f"{queue}.dlq") >= 1, timeout=30)
    [(props, _)] = rabbit.drain(f"{queue}.dlq")
    assert "failed after 3 attempts" in props.headers["x-spawn-reason"] and "boom" in props.headers["x-spawn-reason"]
    assert proc.log().count("retry ") == 2


def test_dropped_connection_and_killed_consumer_apply_each_message_once(
    act_client: Client, rabbit: Rabbit, activators: Start
) -> None:
    # Given 1,000 messages, 800 of them published before the faults and 200 only after the kill, so the stream
    # goes on across both faults however fast the first activator drains what it was given
    queue = rabbit.queue()
    first, name, prefix, text = start(activators, queue, prefetch=20)
    publish_numbered(rabbit, queue, range(800))
    # When the broker drops the activator's connection mid-stream, and later the activator is killed and restarted
    assert wait_until(lambda: len(applied(act_client, prefix)) >= 50, interval=0.01)
    assert rabbit.close_connections(f"spawn-activator:{name}") == 1
    first.wait_for("consuming", count=2)
    assert wait_until(lambda: len(applied(act_client, prefix)) >= 200, interval=0.01)
    first.stop(signal.SIGKILL)
    mid = len(applied(act_client, prefix))
    publish_numbered(rabbit, queue, range(800, 1000))
    second = activators("rabbitmq", text)
    second.wait_for("consuming")
    # Then every message was applied exactly once
    seqs = wait_until(lambda: len(got := applied(act_client, prefix)) >= 1000 and got, timeout=180)
    assert 200 <= mid <= 800 and "connection lost" in first.log()
    assert sorted(seqs) == list(range(1000))


CLOUDEVENTS = """
apiVersion: spawn-eigr.io/v1
kind: Activator
metadata: {{name: {name}}}
spec:
  activator: {{type: AMQP, settings: {{url: "amqp://guest:guest@127.0.0.1:5672/%2F"}}}}
  bindings:
    sources: [{{name: events, queue: {queue}}}]
    sinks:
      - name: spawn-style
        system: acttests
        actor: recorder
        nameFrom: {{strategy: cloudevent, value: id, prefixWith: "{prefix}-"}}
        actionFrom: {{strategy: cloudevent, value: source}}
        binding: [{{name: events}}]
"""


def test_cloudevent_names_actor_and_action_and_protobuf_any_is_passed_on(
    act_client: Client, rabbit: Rabbit, activators: Start
) -> None:
    # Given Spawn's old mapping: CloudEvent id -> actor, source -> action
    queue, prefix = rabbit.queue(), unique("ce")
    activators("rabbitmq", CLOUDEVENTS.format(name=unique("amqp"), queue=queue, prefix=prefix)).wait_for("consuming")
    packed = any_pb2.Any()
    packed.Pack(Increment(by=5))
    events = [
        {"specversion": "1.0", "id": "0", "source": "record", "type": "t", "data": {"seq": 7}},
        {
            "specversion": "1.0",
            "id": "0",
            "source": "record",
            "type": "t",
            "data_base64": base64.b64encode(packed.SerializeToString()).decode(),
        },
    ]
    for i, event in enumerate(events):
        rabbit.publish(
            queue, json.dumps(event).encode(), message_id=f"ce-{i}", content_type="application/cloudevents+json"
        )

    # Then the JSON data and the protobuf Any both reached recorder instance <prefix>-0's action `record`
    def seen() -> dict[str, list[object]] | None:
        if not act_client.exists("acttests", f"{prefix}-0"):
            return None
        value = act_client.state("acttests", f"{prefix}-0").value
        return value if value and len(value["seqs"]) + len(value["other"]) >= 2 else None

    state = wait_until(seen, timeout=30)
    assert state["seqs"] == [7] and state["other"] in (["Increment"], ["Any"])
    assert rabbit.depth(f"{queue}.dlq") == 0


def test_queue_declared_otherwise_refuses_to_start(rabbit: Rabbit, activators: Start) -> None:
    # Given a queue that exists without the dead-letter arguments
    queue = rabbit.queue()
    rabbit.channel.queue_declare(queue, durable=True)
    text = MANIFEST.format(name=unique("amqp"), queue=queue, prefetch=1, action="record", async_mode="true", prefix="x")
    proc = activators("rabbitmq", text)
    # Then the activator stops with a message naming the queue and the fix
    assert proc.proc is not None and proc.proc.wait(30) == 2
    assert f"'{queue}': the queue or exchange exists with other settings" in proc.log() and "delete it" in proc.log()
