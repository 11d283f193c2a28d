"""The operator's reconcile logic against the in-memory API (real server semantics, the client's model classes)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import V1Deployment
from kubernetes.client.exceptions import ApiException

from spawn_celery.activators.manifest import load as load_manifest
from spawn_celery.k8s import desired as d
from spawn_celery.k8s.fake import FakeCluster
from spawn_celery.k8s.operator import Backoff, Operator
from spawn_celery.k8s.reconcile import Reconciler
from tests.k8s.support import K8S, k8s_error, load_docs

NS = "spawn"


def _example(stem: str, kind: str) -> dict[str, Any]:
    (doc,) = [x for x in load_docs(K8S / "examples" / f"{stem}.yaml") if x["kind"] == kind]
    return copy.deepcopy(doc)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def reconciler(cluster: FakeCluster) -> Reconciler:
    return Reconciler(**cluster.apis(), clock=lambda: "2026-11-25T12:00:00Z")


def _create(cluster: FakeCluster, doc: dict[str, Any]) -> dict[str, Any]:
    return cluster.custom.create_namespaced_custom_object(d.GROUP, d.VERSION, NS, d.PLURALS[doc["kind"]], doc)


def _patch_spec(cluster: FakeCluster, kind: str, name: str, spec: dict[str, Any]) -> None:
    cluster.custom.patch_namespaced_custom_object(
        d.GROUP, d.VERSION, NS, d.PLURALS[kind], name, {"spec": spec}, _content_type="application/merge-patch+json"
    )


def _ready(cluster: FakeCluster, kind: str, name: str) -> dict[str, Any]:
    (condition,) = cluster.get(kind, NS, name)["status"]["conditions"]
    return condition


@pytest.fixture
def system(cluster: FakeCluster, reconciler: Reconciler) -> dict[str, Any]:
    doc = _create(cluster, _example("actorsystem", "ActorSystem"))
    reconciler.reconcile("ActorSystem", NS, "example")
    return doc


def test_actor_system_becomes_an_owned_config_map_and_ready_status(
    cluster: FakeCluster, system: dict[str, Any]
) -> None:
    cm = cluster.get("ConfigMap", NS, "example-config")
    assert cm["data"]["PROXY_ACTOR_SYSTEM_NAME"] == "example"
    assert cm["data"]["SPAWN_REDIS_URL"] == "redis://redis:6379/0"
    assert (cm["data"]["PROXY_DATABASE_TYPE"], cm["data"]["PROXY_DATABASE_HOST"]) == ("postgres", "postgres")
    assert cm["metadata"]["ownerReferences"][0]["uid"] == system["metadata"]["uid"]
    assert "encryptionKey" not in str(cm["data"]) and "password" not in str(cm["data"])  # secrets are referenced
    condition = _ready(cluster, "ActorSystem", "example")
    assert (condition["status"], condition["reason"], condition["observedGeneration"]) == ("True", "Reconciled", 1)
    assert cluster.get("ActorSystem", NS, "example")["status"]["configMap"] == "example-config"


def test_actor_host_becomes_worker_deployment_and_hpa_consuming_its_queues(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    host = _create(cluster, _example("actorhost-python", "ActorHost"))
    outcome = reconciler.reconcile("ActorHost", NS, "counter-workers")
    assert ("created", "Deployment", "counter-workers") in outcome.actions
    deployment = cluster.apps.read_namespaced_deployment("counter-workers", NS)
    assert isinstance(deployment, V1Deployment)  # the client's own model, as a real read returns
    (container,) = deployment.spec.template.spec.containers
    assert container.args == [
        "worker",
        "--app",
        "spawn_celery.examples.counter:system",
        "--queues",
        "spawn.example.counter",
        "--concurrency",
        "2",
    ]
    assert deployment.metadata.owner_references[0].uid == host["metadata"]["uid"]
    assert deployment.spec.template.spec.termination_grace_period_seconds == 60
    env = {e.name: e.value_from.secret_key_ref.name for e in container.env if e.value_from}
    assert env["SPAWN_STATESTORE_KEY"] == "example-statestore"
    hpa = cluster.get("HorizontalPodAutoscaler", NS, "counter-workers")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 8)
    assert hpa["metrics"][1]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    status = cluster.get("ActorHost", NS, "counter-workers")["status"]
    assert status["queues"] == ["spawn.example.counter"] and status["deployment"] == "counter-workers"
    for kind, name in (("Deployment", "counter-workers"), ("HorizontalPodAutoscaler", "counter-workers")):
        assert k8s_error(cluster.get(kind, NS, name)) is None  # what the server stored, defaults included


def test_a_second_pass_writes_nothing(cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    _create(cluster, _example("activator-cron", "Activator"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    reconciler.reconcile("Activator", NS, "minute-counter")
    writes = len(cluster.writes)
    # When everything is reconciled again
    outcomes = [
        reconciler.reconcile(k, NS, n)
        for k, n in (("ActorSystem", "example"), ("ActorHost", "counter-workers"), ("Activator", "minute-counter"))
    ]
    # Then nothing was written, although the server added defaults to the Deployments
    assert [o.actions for o in outcomes] == [[], [], []]
    assert len(cluster.writes) == writes


def test_spec_change_patches_only_what_changed(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    _patch_spec(cluster, "ActorHost", "counter-workers", {"autoscaler": {"max": 12}})
    outcome = reconciler.reconcile("ActorHost", NS, "counter-workers")
    assert outcome.actions == [
        ("patched", "HorizontalPodAutoscaler", "counter-workers"),
        ("status", "ActorHost", "counter-workers"),
    ]
    assert cluster.get("HorizontalPodAutoscaler", NS, "counter-workers")["spec"]["maxReplicas"] == 12
    assert _ready(cluster, "ActorHost", "counter-workers")["observedGeneration"] == 2


def test_image_change_keeps_server_defaults_and_removed_fields_go_away(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    # When the image changes and the nodeSelector is dropped from the spec
    _patch_spec(cluster, "ActorHost", "counter-workers", {"host": {"image": "worker:2"}, "topology": None})
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    pod = cluster.get("Deployment", NS, "counter-workers")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "worker:2"
    assert "nodeSelector" not in pod  # three-way merge: what we stopped setting is removed
    assert pod["dnsPolicy"] == "ClusterFirst"  # what the server defaulted stays


def test_drift_and_deleted_children_are_repaired(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    # Given someone deletes the HPA and edits the Deployment's container
    cluster.autoscaling.delete_namespaced_horizontal_pod_autoscaler("counter-workers", NS)
    live = cluster.get("Deployment", NS, "counter-workers")
    live["spec"]["template"]["spec"]["containers"][0]["args"] = ["worker", "--app", "other:app"]
    cluster.apps.patch_namespaced_deployment(
        "counter-workers", NS, {"spec": live["spec"]}, _content_type="application/merge-patch+json"
    )
    outcome = reconciler.reconcile("ActorHost", NS, "counter-workers")
    assert ("created", "HorizontalPodAutoscaler", "counter-workers") in outcome.actions
    assert ("patched", "Deployment", "counter-workers") in outcome.actions
    args = cluster.get("Deployment", NS, "counter-workers")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "spawn_celery.examples.counter:system" in args


def test_removing_the_autoscaler_deletes_the_owned_hpa_only(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    _patch_spec(cluster, "ActorHost", "counter-workers", {"autoscaler": None, "replicas": 3})
    outcome = reconciler.reconcile("ActorHost", NS, "counter-workers")
    assert ("deleted", "HorizontalPodAutoscaler", "counter-workers") in outcome.actions
    assert cluster.get("Deployment", NS, "counter-workers")["spec"]["replicas"] == 3
    # An HPA somebody else made under the same name is never deleted
    foreign = copy.deepcopy(
        d.host_objects(
            cluster.get("ActorHost", NS, "counter-workers")
            | {"spec": _example("actorhost-python", "ActorHost")["spec"]},
            system,
            d.OperatorDefaults(),
        )[1]
    )
    del foreign["metadata"]["ownerReferences"]
    cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, foreign)
    assert reconciler.reconcile("ActorHost", NS, "counter-workers").actions == []
    assert cluster.get("HorizontalPodAutoscaler", NS, "counter-workers")


def test_remote_sdk_host_runs_next_to_a_worker_sidecar(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-remote", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "joe-host")
    pod = cluster.get("Deployment", NS, "joe-host")["spec"]["template"]["spec"]
    host, worker = pod["containers"]
    assert host["image"] == "registry.example.com/joe-python-sdk:1.0.0"
    assert {"name": "PROXY_HTTP_HOST", "value": "spawn-gateway"} in host["env"]
    assert worker["args"] == ["worker", "--remote", "--queues", "spawn.example.joe"]
    assert {"name": "USER_FUNCTION_PORT", "value": "8091"} in worker["env"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert cluster.get("Deployment", NS, "joe-host")["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in {k for k, _, _ in cluster.objects}


def test_activators_get_their_manifest_mounted(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any], tmp_path: Path
) -> None:
    _create(cluster, _example("activator-cron", "Activator"))
    _create(cluster, _example("activator-amqp", "Activator"))
    reconciler.reconcile("Activator", NS, "minute-counter")
    reconciler.reconcile("Activator", NS, "tally-events")
    cron = cluster.get("Deployment", NS, "minute-counter-activator")
    amqp = cluster.get("Deployment", NS, "tally-events-activator")
    assert (cron["spec"]["replicas"], amqp["spec"]["replicas"]) == (2, 1)
    assert amqp["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["activator", "rabbitmq"]
    assert {"prefix": "SPAWN_AMQP_", "secretRef": {"name": "rabbitmq-connection"}} in amqp["spec"]["template"]["spec"][
        "containers"
    ][0]["envFrom"]
    manifest = yaml.safe_load(cluster.get("ConfigMap", NS, "minute-counter-activator")["data"]["activator.yaml"])
    assert manifest["spec"]["bindings"]["sources"][0]["expr"] == "* * * * *"
    for name in ("minute-counter-activator", "tally-events-activator"):  # what the activator process will load
        mounted = tmp_path / f"{name}.yaml"
        mounted.write_text(cluster.get("ConfigMap", NS, name)["data"]["activator.yaml"])
        load_manifest(mounted)
    assert cluster.get("Activator", NS, "tally-events")["status"]["deployment"] == "tally-events-activator"
    assert [k8s_error(obj) for obj in cluster.objects.values() if obj["kind"] in ("Deployment", "ConfigMap")] == [
        None
    ] * sum(obj["kind"] in ("Deployment", "ConfigMap") for obj in cluster.objects.values())


def test_api_activator_needs_no_pod(cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]) -> None:
    doc = _example("activator-cron", "Activator")
    doc["spec"]["activator"]["type"] = "Api"
    _create(cluster, doc)
    outcome = reconciler.reconcile("Activator", NS, "minute-counter")
    assert outcome.actions == [("status", "Activator", "minute-counter")]
    assert _ready(cluster, "Activator", "minute-counter")["status"] == "True"


def test_invalid_spec_is_reported_in_status_not_applied(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    doc = _example("activator-cron", "Activator")
    del doc["spec"]["bindings"]["sources"][1]["expr"]
    _create(cluster, doc)
    outcome = reconciler.reconcile("Activator", NS, "minute-counter")
    condition = _ready(cluster, "Activator", "minute-counter")
    assert (outcome.ready, condition["reason"]) == (False, "InvalidSpec")
    assert "spec.bindings.sources[1].expr" in condition["message"]
    assert not any(kind == "Deployment" for kind, _, _ in cluster.objects)


def test_missing_actor_system_then_created(cluster: FakeCluster, reconciler: Reconciler) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    first = _ready(cluster, "ActorHost", "counter-workers")
    assert (first["status"], first["reason"]) == ("False", "ActorSystemNotFound")
    # When the ActorSystem appears, its event reconciles the hosts that name it
    operator = Operator(reconciler=reconciler, list_fn=lambda kind: {}, stream_fn=lambda kind, rv: [])
    operator.handle("ActorSystem", "ADDED", _create(cluster, _example("actorsystem", "ActorSystem")))
    later = _ready(cluster, "ActorHost", "counter-workers")
    assert (later["status"], later["reason"]) == ("True", "Reconciled")
    assert later["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert cluster.get("Deployment", NS, "counter-workers")


def test_deleting_the_resource_garbage_collects_its_children(
    cluster: FakeCluster, reconciler: Reconciler, system: dict[str, Any]
) -> None:
    _create(cluster, _example("actorhost-python", "ActorHost"))
    reconciler.reconcile("ActorHost", NS, "counter-workers")
    cluster.custom.delete_namespaced_custom_object(d.GROUP, d.VERSION, NS, "actorhosts", "counter-workers")
    assert reconciler.reconcile("ActorHost", NS, "counter-workers").actions == []
    assert {k for k, _, _ in cluster.objects} == {"ActorSystem", "ConfigMap"}


def test_fake_answers_like_the_server() -> None:
    cluster = FakeCluster()
    with pytest.raises(ApiException) as missing:
        cluster.apps.read_namespaced_deployment("nope", NS)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    cluster.core.create_namespaced_config_map(NS, body)
    with pytest.raises(ApiException) as exists:
        cluster.core.create_namespaced_config_map(NS, body)
    with pytest.raises(ApiException) as wrong_patch:  # the client's default content type is a JSON patch
        cluster.core.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})
    with pytest.raises(ApiException) as invalid:
        cluster.apps.create_namespaced_deployment(
            NS, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}
        )
    assert [e.value.status for e in (missing, exists, wrong_patch, invalid)] == [404, 409, 415, 422]


def test_watch_resumes_from_the_last_version_and_relists_after_410(
    cluster: FakeCluster, reconciler: Reconciler
) -> None:
    seen: list[tuple[str, str]] = []

    class RecordingOperator(Operator):
        def handle(self, kind: str, event_type: str, obj: Any) -> None:
            seen.append((event_type, obj["metadata"]["name"]))
            super().handle(kind, event_type, obj)

    operator = RecordingOperator(
        reconciler=reconciler,
        list_fn=lambda kind: cluster.custom.list_cluster_custom_object(d.GROUP, d.VERSION, d.PLURALS[kind]),
        stream_fn=cluster.watch,
    )
    _create(cluster, _example("actorsystem", "ActorSystem"))
    version, listed = operator.watch_round("ActorSystem", None, 0.0)
    assert seen[0] == ("SYNC", "example")  # listed first
    # When a new system appears, the next round resumes after `version` and sees only the new one
    other = _example("actorsystem", "ActorSystem")
    other["metadata"]["name"] = "other"
    _create(cluster, other)
    seen.clear()
    version, _ = operator.watch_round("ActorSystem", version, listed)
    assert ("ADDED", "other") in seen and ("SYNC", "example") not in seen
    # When the history is compacted, resuming fails with 410 and watch() lists again
    cluster.compact()
    _create(cluster, dict(other, metadata={"name": "third"}))
    with pytest.raises(ApiException) as gone:
        list(cluster.watch("ActorSystem", "1"))
    assert gone.value.status == 410


def test_watch_backs_off_on_errors_and_stops_on_request(cluster: FakeCluster, reconciler: Reconciler) -> None:
    delays: list[float] = []

    class RecordingStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            delays.append(float(timeout or 0))
            return self.is_set()

    stop = RecordingStop()
    calls = {"n": 0}

    def stream(kind: str, version: str) -> list[dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise ApiException(status=500, reason="etcd unavailable")
        if calls["n"] == 4:
            raise ApiException(status=410, reason="Gone")
        stop.set()
        return []

    operator = Operator(
        reconciler=reconciler,
        list_fn=lambda kind: {"items": [], "metadata": {"resourceVersion": "7"}},
        stream_fn=stream,
    )
    operator.watch("ActorHost", stop, Backoff(base=0.5, cap=1.5))
    assert delays == [0.5, 1.0, 1.5]  # doubling, capped; the 410 re-lists without waiting
    assert calls["n"] == 5


def test_spawn_memory_value_becomes_a_well_formed_average_value_target(system: dict[str, Any]) -> None:
    # Spawn wrote averageMemoryUtilizationValue under averageUtilization (13.16); here it is an AverageValue
    host = _example("actorhost-python", "ActorHost")
    host["metadata"].update(namespace=NS, uid="uid-host")
    host["spec"]["autoscaler"] = {"min": 2, "averageMemoryUtilizationValue": 512}
    _, hpa = d.host_objects(host, system, d.OperatorDefaults())
    assert hpa["spec"]["metrics"][1]["resource"]["target"] == {"type": "AverageValue", "averageValue": "512Mi"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert k8s_error(hpa) is None


def test_reconciler_drives_the_real_kubernetes_client_over_http(cluster: FakeCluster) -> None:
    # Given the in-memory cluster behind a loopback HTTP server, and the kubernetes client's own API classes
    from kubernetes import client

    from tests.k8s.apiserver import serve

    with serve(cluster) as (url, requests):
        configuration = client.Configuration()
        configuration.host = url
        api = client.ApiClient(configuration)
        reconciler = Reconciler(
            core=client.CoreV1Api(api),
            apps=client.AppsV1Api(api),
            autoscaling=client.AutoscalingV2Api(api),
            custom=client.CustomObjectsApi(api),
        )
        _create(cluster, _example("actorsystem", "ActorSystem"))
        _create(cluster, _example("actorhost-python", "ActorHost"))
        # When it reconciles twice
        first = [
            reconciler.reconcile(k, NS, n) for k, n in (("ActorSystem", "example"), ("ActorHost", "counter-workers"))
        ]
        _patch_spec(cluster, "ActorHost", "counter-workers", {"host": {"image": "worker:3"}})
        second = reconciler.reconcile("ActorHost", NS, "counter-workers")
        third = reconciler.reconcile("ActorHost", NS, "counter-workers")
        api.close()
    # Then the objects were made, the image patched with a JSON merge patch, and the last pass wrote nothing
    assert [o.ready for o in first] == [True, True]
    assert ("patched", "Deployment", "counter-workers") in second.actions and third.actions == []
    assert (
        cluster.get("Deployment", NS, "counter-workers")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "worker:3"
    )
    patches = {content_type for method, _, content_type in requests if method == "PATCH"}
    assert patches == {"application/merge-patch+json"}
    assert (
        "PATCH",
        f"/apis/spawn-eigr.io/v1/namespaces/{NS}/actorhosts/counter-workers/status",
        "application/merge-patch+json",
    ) in requests
