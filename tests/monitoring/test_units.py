"""Pure pieces of the monitoring code, against real objects (no worker needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import redis

from spawn_celery.gateway import create_app
from spawn_celery.message import TASK_NAME
from spawn_celery.metrics import RedisGauges
from spawn_celery.services import Services
from spawn_celery.transport import create_celery, readable_kwargs
from tests.support import make_settings


def test_redis_gauges_skip_quietly_when_redis_is_down() -> None:
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert list(RedisGauges(client=down, queues=["spawn.mon.counter"]).collect()) == []


def test_task_arguments_are_readable_without_the_payload() -> None:
    kwargs = {"system": "s", "actor": "a", "action": "go", "id": "i1", "reply_to": "", "depth": 0,
              "request": base64.b64encode(b"x" * 30).decode()}
    shown = readable_kwargs(kwargs)
    assert "'system': 's'" in shown and "'id': 'i1'" in shown and "<InvocationRequest, 30 bytes>" in shown
    assert kwargs["request"] not in shown


def test_dashboard_asks_for_credentials_when_auth_is_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_db=8, auth_basic="ops:secret")
    client = create_app(services=Services.create(settings)).test_client()
    refused = client.get("/dashboard")
    assert refused.status_code == 401 and "Basic" in refused.headers["WWW-Authenticate"]
    assert client.get("/dashboard", auth=("ops", "secret")).status_code == 200


def test_task_sent_event_carries_the_readable_name(tmp_path: Path) -> None:
    amqp = create_celery(make_settings(tmp_path, redis_db=8)).amqp
    message = amqp.create_task_message("id-1", TASK_NAME, (), {}, create_sent_event=True, shadow="mon.a.go")
    assert message.sent_event["name"] == "mon.a.go" and message.headers["task"] == TASK_NAME
