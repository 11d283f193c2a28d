"""compose/: the compose file against the Compose Specification schema, and its wiring checked by reading it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from spawn_celery.config import Settings
from spawn_celery.examples.counter import system as example_app
from tests.k8s.support import ROOT, cr_errors

COMPOSE = ROOT / "compose"
SCHEMA = Path(__file__).with_name("compose_spec_subset.json")  # source URL and commit in its "$comment"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE / "docker-compose.yml").read_text()))


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_schema_rejects_what_compose_rejects() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = _compose()
    broken["services"]["gateway"]["healthcheck"] = {"tests": ["CMD", "true"]}  # typo of `test`
    broken["services"]["redis"]["depends_on"] = {"gateway": {"condition": "service_ready"}}
    assert len(list(validator.iter_errors(broken))) == 2


def test_every_service_and_dependency_is_wired() -> None:
    services = _compose()["services"]
    wanted = {
        "redis",
        "rabbitmq",
        "postgres",
        "gateway",
        "worker",
        "worker-counter",
        "activator-cron",
        "activator-rabbitmq",
        "flower",
        "prometheus",
        "grafana",
    }
    assert wanted <= services.keys()
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (COMPOSE / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        deps = service.get("depends_on", {})
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dependency, rule in deps.items():
            assert dependency in services, (name, dependency)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), (name, source)


def test_published_ports_are_unique_and_well_formed() -> None:
    published = []
    for service in _compose()["services"].values():
        for port in service.get("ports", []):
            host, container = port.split(":")
            assert 0 < int(host) < 65536 and 0 < int(container) < 65536
            published.append(int(host))
    assert len(published) == len(set(published))
    assert 9001 in published  # the gateway on Spawn's proxy port


def test_process_environment_is_what_settings_reads() -> None:
    services = _compose()["services"]
    for name in ("gateway", "worker", "worker-counter", "activator-cron", "activator-rabbitmq"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = Settings.from_env(env)  # raises ConfigError on a malformed value
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.database_url.startswith("postgresql+psycopg2://spawn:spawn@postgres:5432/")
        assert settings.actor_system == example_app.system_name
    assert Settings.from_env(services["worker"]["environment"]).metrics_port == 9102


def test_activator_manifests_mounted_by_compose_are_valid() -> None:
    for name in ("activator-cron", "activator-rabbitmq"):
        (mount,) = _compose()["services"][name]["volumes"]
        source, target, _ = mount.split(":")
        assert target == "/etc/spawn/activator.yaml"
        assert cr_errors(yaml.safe_load((COMPOSE / source).read_text())) == []


def test_prometheus_scrapes_gateway_and_workers() -> None:
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert targets == {"gateway:9001", "worker:9102", "worker-counter:9102"}
    services = _compose()["services"]
    assert services["prometheus"]["volumes"] == ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro"]


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    datasources = yaml.safe_load((COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((COMPOSE / "grafana/provisioning/dashboards/spawn.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((COMPOSE / "grafana/dashboards/spawn.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(target["expr"].strip() for target in panel["targets"])


def test_dashboard_queries_metrics_that_are_exported() -> None:
    # Given the metric names the workers and the gateway register (read from their source, no process started)
    import re

    exported = set()
    for module in ("spawn_celery/metrics.py", "spawn_celery/gateway/metrics.py"):
        source = (ROOT / module).read_text()
        for kind, name in re.findall(r'(Counter|Histogram|GaugeMetricFamily)\(\s*"(\w+)"', source):
            base = name.removesuffix("_total")
            exported |= {f"{base}_total"} if kind == "Counter" else {name}
            if kind == "Histogram":
                exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    exported.add("up")  # written by Prometheus itself
    dashboard = json.loads((COMPOSE / "grafana/dashboards/spawn.json").read_text())
    used = {
        m
        for p in dashboard["panels"]
        for t in p["targets"]
        for m in re.findall(r"\b(\w+)\{?[^\w(]", t["expr"] + " ")
        if m.startswith(("spawn_", "up"))
    }
    assert used and used <= exported, used - exported
