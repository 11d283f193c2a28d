"""Activator manifests: the shipped examples are valid; each bad manifest is refused with a message naming the
field and the fix (through the real `spawn-celery activator` command where the process must refuse to start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spawn_celery.activators.manifest import ManifestError, load, parse
from tests.support import ROOT

CRON = """
apiVersion: spawn-eigr.io/v1
kind: Activator
metadata: {name: ticker}
spec:
  activator: {type: Cron}
  bindings:
    sources: [{name: every-minute, expr: "* * * * *"}]
    sinks: [{name: s, system: acttests, actor: ticks, action: tick, binding: [{name: every-minute}]}]
"""
AMQP = """
apiVersion: spawn-eigr.io/v1
kind: Activator
metadata: {name: orders}
spec:
  activator: {type: AMQP, settings: {backpressure: {prefetchCount: 10}}}
  bindings:
    sources: [{name: in, queue: orders}]
    sinks:
      - name: s
        actor: recorder
        action: record
        nameFrom: {strategy: metadata, value: correlation_id}
        binding: [{name: in}]
"""


@pytest.mark.parametrize(
    "path",
    [
        "activators/cron.yaml",
        "activators/rabbitmq.yaml",
        "k8s/base/files/cron-activator.yaml",
        "k8s/examples/activator-amqp.yaml",
    ],
)
def test_shipped_manifests_are_valid(path: str) -> None:
    manifest = load(ROOT / path)
    assert manifest.sources and all(manifest.sinks_of(s.name) for s in manifest.sources)


def test_a_valid_manifest_becomes_sources_and_sinks() -> None:
    manifest = parse(yaml.safe_load(AMQP), default_system="shop")
    [sink] = manifest.sinks
    assert manifest.type == "amqp" and manifest.sources[0].dead_letter_queue == "orders.dlq"
    assert sink.system == "shop" and sink.name_from is not None and sink.name_from.value == "correlation_id"


BAD = [
    (CRON, "kind: Activator", "kind: ActorHost", 'kind: is "ActorHost"; expected `kind: Activator`'),
    (CRON, "type: Cron", "type: gRPC", 'spec.activator.type: is "gRPC"; expected one of Cron, AMQP, Api'),
    (CRON, ', expr: "* * * * *"', "", "spec.bindings.sources[0].expr: is missing; add it (a cron expression"),
    (CRON, "expr:", "expresion:", "spec.bindings.sources[0].expresion: is not a known field"),
    (
        CRON,
        "binding: [{name: every-minute}]",
        "binding: [{name: nope}]",
        "sinks[0].binding[0].name: 'nope' names no source",
    ),
    (CRON, "action: tick, ", "", "spec.bindings.sinks[0]: needs `action` or `command` or `actionFrom`"),
    (
        CRON,
        "{name: every-minute, ",
        "{name: every-minute, timezone: Mars/Base, ",
        "'Mars/Base' is not a known time zone",
    ),
    (
        CRON,
        "metadata: {name: ticker}",
        "metadata: {name: Ticker_1}",
        'metadata.name: is "Ticker_1"; expected a DNS-style name',
    ),
    (AMQP, "queue: orders", "queue: ''", "spec.bindings.sources[0].queue: is empty"),
    (AMQP, ", queue: orders", "", "spec.bindings.sources[0].queue: is missing"),
    (
        AMQP,
        "prefetchCount: 10",
        "prefetchCount: 0",
        "backpressure.prefetchCount: is 0; expected unacked messages per consumer",
    ),
    (
        AMQP,
        "strategy: metadata",
        "strategy: cloudevent",
        'sinks[0].nameFrom.value: is "correlation_id"; expected one of id, source',
    ),
    (AMQP, "sinks:", "sinks: []\n    other:", "spec.bindings.other: is not a known field"),
    (AMQP, "[{name: in, queue: orders}]", "[{name: in, queue: a}, {name: in, queue: b}]", "'in' is used twice"),
    ("", "", "", "(top level): is null, not of type object"),
]


@pytest.mark.parametrize(("base", "old", "new", "expected"), BAD, ids=[b[3][:40] for b in BAD])
def test_bad_manifest_is_rejected_naming_the_problem(base: str, old: str, new: str, expected: str) -> None:
    assert old in base
    with pytest.raises(ManifestError) as caught:
        parse(yaml.safe_load(base.replace(old, new, 1)), origin="bad.yaml")
    assert expected in str(caught.value), str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spawn_celery.cli", "activator", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_command_refuses_invalid_yaml_and_wrong_type(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [\n")
    result = run_cli("cron", "-f", str(broken))
    assert result.returncode == 2 and "line 2" in result.stderr and "is not valid YAML" in result.stderr
    amqp = tmp_path / "amqp.yaml"
    amqp.write_text(AMQP)
    result = run_cli("cron", "-f", str(amqp))
    assert result.returncode == 2 and "is amqp, not cron; run `spawn-celery activator rabbitmq" in result.stderr


def test_check_names_the_source_of_a_bad_cron_expression(tmp_path: Path) -> None:
    path = tmp_path / "cron.yaml"
    path.write_text(CRON.replace('"* * * * *"', '"*/5 * * 13 *"'))
    result = run_cli("check", "-f", str(path))
    assert result.returncode == 2
    assert (
        "spec.bindings.sources[0].expr: source 'every-minute': '*/5 * * 13 *' is not a valid cron expression"
        in result.stderr
    )
    assert run_cli("check", "-f", str(ROOT / "activators/cron.yaml")).returncode == 0
