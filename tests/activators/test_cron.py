"""Cron activator: real `spawn-celery activator cron` replicas, a real worker, real Redis."""

from __future__ import annotations

import signal
import time
from datetime import datetime

from spawn_celery.client import Client
from tests.activators.conftest import Start, unique, wait_until

MANIFEST = """
apiVersion: spawn-eigr.io/v1
kind: Activator
metadata: {{name: {name}}}
spec:
  activator: {{type: Cron}}
  bindings:
    sources:
      - {{name: every-second, expr: "* * * * * *"}}
    sinks:
      - name: tick
        system: acttests
        actor: {actor}
        action: tick
        payload: {{"from": "cron"}}
        binding: [{{name: every-second}}]
"""

GRACE_3 = "{type: Cron, settings: {misfireGraceTime: 3}}"


def fires_of(client: Client, actor: str) -> list[str]:
    view = client.state("acttests", actor)
    return list(view.value["fires"]) if view.value else []


def test_two_replicas_send_each_fire_once(act_client: Client, activators: Start) -> None:
    # Given two replicas of the same 1-second schedule
    actor = unique("ticker")
    act_client.spawn("acttests", actor, "tickers")
    # (misfireGraceTime 3: a fire delayed by a loaded machine still counts)
    text = MANIFEST.format(name=unique("cron"), actor=actor).replace("{type: Cron}", GRACE_3)
    replicas = [activators("cron", text), activators("cron", text)]
    replicas[0].wait_for("started on replica")
    started = time.monotonic()
    replicas[1].wait_for("started on replica")
    # When they run side by side for about 5 seconds (a starting replica also catches up the last second)
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))
    for replica in replicas:
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGTERM)
    assert [replica.proc.wait(20) for replica in replicas if replica.proc] == [0, 0]
    ran_s = time.monotonic() - started  # more than 4.5 s when the replicas were slow to stop
    sent = sum(replica.log().count(f" -> {actor}.tick") for replica in replicas)
    # Then the actor saw every fire exactly once: one invocation per fire time, whichever replica won it
    fires = wait_until(lambda: len(got := fires_of(act_client, actor)) >= sent and got, timeout=30)
    assert len(fires) == len(set(fires)) == sent
    assert 4 <= len(fires) <= ran_s + 2, (fires, ran_s)  # one per second, plus the caught-up second
    assert act_client.state("acttests", actor).value["payloads"][0] == {"from": "cron"}


def test_bad_expression_refuses_to_start(activators: Start) -> None:
    text = MANIFEST.replace("* * * * * *", "61 * * * *").format(name=unique("cron"), actor="ticks")
    proc = activators("cron", text)
    assert proc.proc is not None and proc.proc.wait(30) == 2
    assert "every-second" in proc.log() and "'61 * * * *' is not a valid cron expression" in proc.log()


def test_restarted_replica_catches_up_only_the_grace_period(act_client: Client, activators: Start) -> None:
    # Given a 1-second schedule with misfireGraceTime 2 that ran, then was down for about 4 seconds
    actor = unique("ticker")
    act_client.spawn("acttests", actor, "tickers")
    text = MANIFEST.format(name=unique("cron"), actor=actor).replace(
        "{type: Cron}", "{type: Cron, settings: {misfireGraceTime: 2}}"
    )
    first = activators("cron", text)
    first.wait_for(f" -> {actor}.tick", count=2)
    assert first.stop() == 0
    time.sleep(4)
    # When a replica starts again
    second = activators("cron", text)
    second.wait_for("started on replica")
    assert second.stop() == 0
    # Then it sent the fires of the last 2 seconds before it started, but not the older backlog
    log = second.log()
    assert 0 < log.count(f" -> {actor}.tick", 0, log.index("started on replica")) <= 2
    sent = first.log().count(f" -> {actor}.tick") + log.count(f" -> {actor}.tick")
    fires = sorted(wait_until(lambda: len(got := fires_of(act_client, actor)) >= sent and got, timeout=30))
    seconds = [int(datetime.fromisoformat(f.replace("Z", "+00:00")).timestamp()) for f in fires]
    assert len(set(fires)) == len(fires) and seconds[-1] - seconds[0] + 1 - len(seconds) >= 2, fires
