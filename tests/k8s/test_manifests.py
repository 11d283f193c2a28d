"""The plain manifests under k8s/ and what ``spawn-celery k8s render`` prints, validated offline."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from spawn_celery.cli import main
from spawn_celery.examples.counter import system as example_app
from spawn_celery.k8s import objects as o
from spawn_celery.k8s.render import StackConfig, WorkerGroup, render_stack
from tests.k8s.support import K8S, K8S_VERSION, assemble, cr_errors, k8s_error, load_docs, manifest_files

SCALED_OBJECT = {  # the fields of KEDA's ScaledObject we use (kubernetes-validate ships no schema for it)
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {"metadata": {"type": "object", "additionalProperties": {"type": "string"}}},
                    },
                },
            },
        },
    },
}


def _by(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_validator_ships_kubernetes_137() -> None:
    major, minor = kubernetes_validate.utils.latest_version().split(".")[:2]
    assert (int(major), int(minor)) >= (1, 37)
    assert K8S_VERSION.startswith(f"{major}.{minor}") or (int(major), int(minor)) > (1, 37)
    assert k8s_error({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "bogus": 1})


@pytest.mark.parametrize("path", list(manifest_files()), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_is_valid(path: Any) -> None:
    # Given every YAML document under k8s/: built-in kinds go to kubernetes-validate --strict, ours to our CRDs
    for doc in load_docs(path):
        if doc["apiVersion"].startswith("spawn-eigr.io/"):
            assert cr_errors(doc) == [], path
        elif doc["kind"] == "ScaledObject":
            import jsonschema

            jsonschema.validate(doc, SCALED_OBJECT)
        else:
            assert k8s_error(doc) is None


@pytest.mark.parametrize("directory", ["base", "overlays/example", "operator", "crds"])
def test_kustomizations_assemble_to_valid_objects(directory: str) -> None:
    docs = assemble(K8S / directory)
    assert docs
    assert [k8s_error(d) for d in docs if d["kind"] != "ScaledObject"] == [None] * sum(
        d["kind"] != "ScaledObject" for d in docs
    )


def test_overlay_references_resolve() -> None:
    # Given the example overlay assembled like kustomize would
    docs = assemble(K8S / "overlays" / "example")
    config_maps, secrets = _by(docs, "ConfigMap"), _by(docs, "Secret")
    deployments = {**_by(docs, "Deployment"), **_by(docs, "StatefulSet")}
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"spawn"}
    for workload in deployments.values():
        pod = workload["spec"]["template"]
        # selectors select their own pods
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                assert ref["name"] in (config_maps if "configMapRef" in source else secrets)
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"]
        for volume in pod["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    for hpa in _by(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    for budget in _by(docs, "PodDisruptionBudget").values():
        assert budget["metadata"]["name"] in deployments
    for service in _by(docs, "Service").values():
        pod_labels = deployments[service["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()


def test_gateway_drains_before_it_is_killed() -> None:
    gateway = _by(load_docs(K8S / "base" / "gateway.yaml"), "Deployment")["spawn-gateway"]
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["readinessProbe"]["failureThreshold"] == 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    # Then the grace period covers preStop plus gunicorn's graceful drain
    assert pod["terminationGracePeriodSeconds"] >= sleep + o.GATEWAY_DRAIN_S
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_workers_get_a_minute_to_drain_and_scale_on_cpu_and_memory() -> None:
    docs = load_docs(K8S / "base" / "worker.yaml")
    worker = _by(docs, "Deployment")["spawn-worker-default"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert "replicas" not in worker["spec"]  # the HPA owns the count
    metrics = _by(docs, "HorizontalPodAutoscaler")["spawn-worker-default"]["spec"]["metrics"]
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in metrics}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 80},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    requests = worker["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert {"cpu", "memory"} <= requests.keys()  # Utilization is measured against requests


def test_cron_activator_runs_two_replicas_with_its_manifest() -> None:
    docs = assemble(K8S / "base")
    cron = _by(docs, "Deployment")["spawn-activator-cron"]
    assert cron["spec"]["replicas"] == 2
    args = cron["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["activator", "cron", "-f", o.ACTIVATOR_MANIFEST_PATH]
    manifest = yaml.safe_load(_by(docs, "ConfigMap")["spawn-activator-cron"]["data"]["activator.yaml"])
    assert manifest["spec"]["activator"]["type"] == "Cron"


def test_redis_is_fenced_by_a_network_policy() -> None:
    docs = load_docs(K8S / "base" / "redis.yaml")
    policy = _by(docs, "NetworkPolicy")["redis"]
    redis_pods = _by(docs, "StatefulSet")["redis"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_pods.items()
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {o.PART_OF_LABEL: o.PART_OF}}}]
    assert "noeviction" in _by(docs, "StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_keda_component_replaces_the_hpas_and_watches_real_queues() -> None:
    # Given the example overlay with the KEDA component added
    docs = assemble(K8S / "overlays" / "example") + assemble(K8S / "optional" / "keda")
    deleted = [
        p["target"]["name"] for p in yaml.safe_load((K8S / "optional/keda/kustomization.yaml").read_text())["patches"]
    ]
    scaled = _by(docs, "ScaledObject")
    hpas = _by(docs, "HorizontalPodAutoscaler")
    # Then every ScaledObject targets a worker Deployment whose HPA the component deletes
    assert set(scaled) == set(deleted) <= set(hpas) & set(_by(docs, "Deployment"))
    queues = {f"spawn.{example_app.system_name}.{name}" for name in example_app.actors}
    lists = {t["metadata"]["listName"] for s in scaled.values() for t in s["spec"]["triggers"] if t["type"] == "redis"}
    assert lists == queues


def test_render_output_is_valid_for_several_configurations() -> None:
    cron = load_docs(K8S / "base" / "files" / "cron-activator.yaml")[0]
    amqp = load_docs(K8S / "base" / "files" / "rabbitmq-activator.yaml")[0]
    configs = [
        StackConfig(),
        StackConfig(
            system="shop",
            namespace="prod",
            with_redis=False,
            secret_data={"SPAWN_STATESTORE_KEY": "k"},
            workers=(WorkerGroup(), WorkerGroup(name="hot", actors=("cart",), min_replicas=2, max_replicas=30)),
            activators=(cron, amqp),
        ),
    ]
    for config in configs:
        docs = render_stack(config)
        assert [k8s_error(d) for d in docs] == [None] * len(docs)
        assert {d["metadata"]["namespace"] for d in docs} == {config.namespace}


def test_config_checksum_rolls_pods_when_the_config_changes() -> None:
    def checksum(config: StackConfig) -> str:
        gateway = _by(render_stack(config), "Deployment")["spawn-gateway"]
        return str(gateway["spec"]["template"]["metadata"]["annotations"][o.CHECKSUM_ANNOTATION])

    base = StackConfig(config={"SPAWN_LOG_LEVEL": "INFO"})
    assert checksum(base) == checksum(StackConfig(config={"SPAWN_LOG_LEVEL": "INFO"}))
    assert checksum(base) != checksum(StackConfig(config={"SPAWN_LOG_LEVEL": "DEBUG"}))


def _render(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["k8s", "render", *argv])
    return code, [d for d in yaml.safe_load_all(out.getvalue()) if d]


def test_render_command_prints_valid_multi_document_yaml() -> None:
    code, docs = _render(
        "--system",
        "example",
        "--namespace",
        "demo",
        "--worker-group",
        "default",
        "--worker-group",
        "hot=counter,tally",
        "--workers-min",
        "2",
        "--workers-max",
        "7",
        "--activator",
        str(K8S / "base/files/cron-activator.yaml"),
        "--image",
        "reg/spawn:1",
    )
    assert code == 0
    assert [k8s_error(d) for d in docs] == [None] * len(docs)
    hot = _by(docs, "Deployment")["spawn-worker-hot"]
    args = hot["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--queues") + 1] == "spawn.example.counter,spawn.example.tally"
    hpa = _by(docs, "HorizontalPodAutoscaler")["spawn-worker-hot"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)
    images = {c["image"] for d in _by(docs, "Deployment").values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"reg/spawn:1"}


def test_render_command_refuses_bad_input_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPAWN_STATESTORE_KEY", raising=False)
    assert _render("--with-secret")[0] == 2
    assert _render("--workers-min", "5", "--workers-max", "2")[0] == 2
    assert _render("--activator", str(K8S / "base" / "kustomization.yaml"))[0] == 2
    assert "not an Activator manifest" in capsys.readouterr().err
    broken = load_docs(K8S / "base" / "files" / "cron-activator.yaml")[0]
    broken["spec"]["bindings"]["sinks"][0]["binding"] = [{"name": "every-hour"}]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert _render("--activator", str(tmp_path / "broken.yaml"))[0] == 2
    assert "spec.bindings.sinks[0].binding[0].name" in capsys.readouterr().err


def test_gateway_grace_covers_gunicorns_graceful_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given gunicorn's settings with the default drain settings
    import runpy

    for name in ("SPAWN_DRAIN_DELAY_MS", "SPAWN_DRAIN_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    graceful = runpy.run_path(str(K8S.parent / "web" / "gunicorn.conf.py"))["graceful_timeout"]
    pod = _by(load_docs(K8S / "base" / "gateway.yaml"), "Deployment")["spawn-gateway"]["spec"]["template"]["spec"]
    # Then preStop + gunicorn's drain end before Kubernetes sends SIGKILL
    assert graceful <= o.GATEWAY_DRAIN_S
    assert o.GATEWAY_PRESTOP_S + graceful < pod["terminationGracePeriodSeconds"] == o.GATEWAY_GRACE_S
