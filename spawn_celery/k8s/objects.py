"""Builders of plain Kubernetes objects (dicts) shared by ``spawn-celery k8s render`` and the operator.

Everything here is a pure function: no Kubernetes client, no IO. Objects are the JSON the API server takes, so they
can be printed as YAML, validated offline and sent with any client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

Manifest = dict[str, Any]
"""A Kubernetes object as plain JSON-compatible data."""

PART_OF = "spawn-celery"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
SYSTEM_LABEL = "spawn-eigr.io/actor-system"
CHECKSUM_ANNOTATION = "checksum/config"
"""Pod-template annotation holding a hash of the configuration: a config change changes it and rolls the pods."""

METRICS_PORT = 9102
"""Worker Prometheus port (``SPAWN_METRICS_PORT``)."""
WORKER_GRACE_S = 60
"""Worker drain budget: SIGTERM finishes in-flight invocations and flushes dirty state within it."""
GATEWAY_PRESTOP_S = 10
"""Gateway preStop sleep: endpoints and load balancers stop sending before SIGTERM reaches gunicorn."""
GATEWAY_DRAIN_S = 36
"""Gateway drain after SIGTERM: gunicorn's ``graceful_timeout`` (web/gunicorn.conf.py: SPAWN_DRAIN_DELAY_MS 1 s +
SPAWN_DRAIN_TIMEOUT_MS 30 s + 5 s). Readiness answers 503 and in-flight requests finish within it."""
GATEWAY_GRACE_S = GATEWAY_PRESTOP_S + GATEWAY_DRAIN_S + 5
"""terminationGracePeriodSeconds of the gateway: preStop + drain + a margin before SIGKILL."""
UID = 10001
"""The non-root user of our images (see the Dockerfiles)."""
ACTIVATOR_MANIFEST_PATH = "/etc/spawn/activator.yaml"
GATEWAY_IMAGE = "spawn-celery-web:0.1.0"
WORKER_IMAGE = "spawn-celery-worker:0.1.0"
ACTIVATOR_IMAGE = "spawn-celery-activator:0.1.0"
"""Images built from web/, workers/ and activators/ (the package is the same; extras and commands differ)."""


def labels(instance: str, component: str, system: str) -> dict[str, str]:
    """Return the standard labels of one of our objects.

    Args:
        instance: The object name (``app.kubernetes.io/instance``), also the pod selector.
        component: ``gateway``, ``worker``, ``activator``, ``redis``, ``config``.
        system: The actor system name.
    """
    return {
        NAME_LABEL: PART_OF,
        INSTANCE_LABEL: instance,
        COMPONENT_LABEL: component,
        PART_OF_LABEL: PART_OF,
        SYSTEM_LABEL: system,
    }


def selector(instance: str) -> dict[str, str]:
    """Return the immutable pod selector of a workload (a subset of :func:`labels`)."""
    return {NAME_LABEL: PART_OF, INSTANCE_LABEL: instance}


def checksum(*parts: Any) -> str:
    """Return a stable sha256 hex digest of JSON-compatible values (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def metadata(name: str, namespace: str, obj_labels: Mapping[str, str], **extra: Any) -> Manifest:
    """Return an ``ObjectMeta``; ``extra`` adds fields such as ``annotations`` or ``ownerReferences``."""
    meta: Manifest = {"name": name, "namespace": namespace, "labels": dict(obj_labels)}
    meta.update({k: v for k, v in extra.items() if v})
    return meta


def config_map(name: str, namespace: str, obj_labels: Mapping[str, str], data: Mapping[str, str]) -> Manifest:
    """Return a ConfigMap with string ``data``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, namespace, obj_labels),
        "data": {k: str(v) for k, v in data.items()},
    }


def container_security() -> Manifest:
    """Return the container securityContext of the ``restricted`` Pod Security Standard, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> Manifest:
    """Return the pod securityContext: our non-root uid and the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_from(config_map_name: str, secret_name: str | None = None) -> list[Manifest]:
    """Return ``envFrom`` entries for the shared ConfigMap and, when given, the shared Secret."""
    sources: list[Manifest] = [{"configMapRef": {"name": config_map_name}}]
    if secret_name:
        sources.append({"secretRef": {"name": secret_name}})
    return sources


def tmp_volume() -> tuple[Manifest, Manifest]:
    """Return the ``/tmp`` emptyDir (volume, mount): the only writable path with a read-only root filesystem."""
    return {"name": "tmp", "emptyDir": {}}, {"name": "tmp", "mountPath": "/tmp"}


def worker_args(app: str | None, queues: Sequence[str] = (), concurrency: int = 0) -> list[str]:
    """Return the arguments of ``spawn-celery`` for a worker.

    Args:
        app: ``MODULE:ATTR`` for in-process Python actors; None runs a remote-host worker (``--remote``).
        queues: Celery queues to consume; empty means every queue of the app.
        concurrency: Worker processes; 0 leaves the default (CPUs).
    """
    args = ["worker", "--app", app] if app else ["worker", "--remote"]
    if queues:
        args += ["--queues", ",".join(queues)]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    return args


def worker_container(
    *,
    image: str,
    args: Sequence[str],
    env_sources: list[Manifest],
    env: Sequence[Manifest] = (),
    resources: Manifest | None = None,
    name: str = "worker",
) -> Manifest:
    """Return a worker container: metrics port, probes on it, restricted security, ``/tmp`` mounted."""

    def probe(period: int, failures: int) -> Manifest:
        return {
            "httpGet": {"path": "/metrics", "port": "metrics"},
            "timeoutSeconds": 5,
            "periodSeconds": period,
            "failureThreshold": failures,
        }

    container: Manifest = {
        "name": name,
        "image": image,
        "command": ["spawn-celery"],
        "args": list(args),
        "envFrom": env_sources,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": resources or default_resources(),
        "startupProbe": probe(2, 60),
        "livenessProbe": probe(30, 4),
        "securityContext": container_security(),
        "volumeMounts": [tmp_volume()[1]],
    }
    if env:
        container["env"] = list(env)
    return container


def default_resources(cpu: str = "250m", memory: str = "256Mi", memory_limit: str = "1Gi") -> Manifest:
    """Return container resources. Requests are what HPA Utilization targets are measured against."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def deployment(
    *,
    name: str,
    namespace: str,
    obj_labels: Mapping[str, str],
    pod_spec: Manifest,
    replicas: int | None,
    pod_annotations: Mapping[str, str] | None = None,
    owner_references: list[Manifest] | None = None,
    max_surge: str = "25%",
) -> Manifest:
    """Return an apps/v1 Deployment. ``replicas=None`` leaves the count to a HorizontalPodAutoscaler."""
    spec: Manifest = {
        "selector": {"matchLabels": selector(name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": dict(obj_labels), "annotations": dict(pod_annotations or {})},
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    if not spec["template"]["metadata"]["annotations"]:
        del spec["template"]["metadata"]["annotations"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, obj_labels, ownerReferences=owner_references),
        "spec": spec,
    }


def metrics_annotations(port: int, path: str = "/metrics") -> dict[str, str]:
    """Return the Prometheus scrape annotations of a pod template."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": path}


def owner_reference(owner: Mapping[str, Any]) -> Manifest:
    """Return the controller ownerReference pointing at the custom resource ``owner`` (garbage collection)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_spec(containers: list[Manifest], volumes: list[Manifest], grace: int) -> Manifest:
    """Return a pod spec with our defaults: grace period, restricted security, no service account token."""
    return {
        "terminationGracePeriodSeconds": grace,
        "securityContext": pod_security(),
        "automountServiceAccountToken": False,
        "containers": containers,
        "volumes": volumes,
    }
