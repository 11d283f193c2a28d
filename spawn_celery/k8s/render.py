"""The whole stack as Kubernetes objects, from one :class:`StackConfig` (``spawn-celery k8s render``).

Pure functions returning plain dicts: gateway Deployment + Service + PodDisruptionBudget, one worker Deployment +
HorizontalPodAutoscaler + PodDisruptionBudget per :class:`WorkerGroup`, activator Deployments with their manifest in
a ConfigMap, and a development Redis (:mod:`.devstack`). Every pod template carries
``checksum/config``, a hash of the configuration it reads, so that a config change rolls the pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from spawn_celery.k8s import devstack, scaling
from spawn_celery.k8s import objects as o
from spawn_celery.k8s.activator import activator_workload
from spawn_celery.k8s.objects import ACTIVATOR_IMAGE, GATEWAY_IMAGE, WORKER_IMAGE
from spawn_celery.keys import queue as actor_queue

DEFAULT_APP = "spawn_celery.examples.counter:system"
"""The example actors of the quickstart; real deployments pass their own ``MODULE:ATTR``."""


@dataclass(frozen=True)
class WorkerGroup:
    """Workers that consume one set of actor queues and scale together.

    Attributes:
        name: Suffix of the Deployment name (``spawn-worker-<name>``).
        actors: Actor names whose queues (``spawn.<system>.<actor>``) the group consumes; empty means all of the app.
        min_replicas: HPA minimum.
        max_replicas: HPA maximum.
        concurrency: Worker processes per pod (0 = CPUs).
        cpu_percent: HPA CPU Utilization target.
        memory_percent: HPA memory Utilization target.
    """

    name: str = "default"
    actors: tuple[str, ...] = ()
    min_replicas: int = 1
    max_replicas: int = 10
    concurrency: int = 0
    cpu_percent: int = 80
    memory_percent: int = 80


@dataclass(frozen=True)
class StackConfig:
    """What to render. Defaults give a development stack in namespace ``spawn``.

    Attributes:
        system: Actor system name (``PROXY_ACTOR_SYSTEM_NAME``).
        namespace: Namespace of every object.
        gateway_image: Image of the gateway.
        worker_image: Image of the workers.
        activator_image: Image of the activators.
        app: ``MODULE:ATTR`` of the Python actors the workers host.
        config: Non-secret settings (ConfigMap ``spawn-config``).
        secret_name: Secret read through envFrom (``SPAWN_STATESTORE_KEY``, database credentials).
        secret_data: When given, the Secret is rendered too (for development only).
        gateway_replicas: Gateway replicas.
        workers: Worker groups.
        activators: Activator manifests (``kind: Activator``) to deploy.
        with_redis: Render the development Redis.
    """

    system: str = "spawn-system"
    namespace: str = "spawn"
    gateway_image: str = GATEWAY_IMAGE
    worker_image: str = WORKER_IMAGE
    activator_image: str = ACTIVATOR_IMAGE
    app: str = DEFAULT_APP
    config: Mapping[str, str] = field(default_factory=dict)
    secret_name: str = "spawn-secrets"
    secret_data: Mapping[str, str] | None = None
    gateway_replicas: int = 2
    workers: tuple[WorkerGroup, ...] = (WorkerGroup(),)
    activators: tuple[Mapping[str, Any], ...] = ()
    with_redis: bool = True

    def labels(self, instance: str, component: str) -> dict[str, str]:
        """Return the labels of an object of this stack."""
        return o.labels(instance, component, self.system)

    @property
    def config_checksum(self) -> str:
        """Hash of the configuration every pod reads (ConfigMap data and Secret)."""
        return o.checksum(dict(self.config), self.secret_name, dict(self.secret_data or {}))


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values in full: manifests read by people and kubectl carry no YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(docs: list[o.Manifest]) -> str:
    """Return objects as multi-document YAML in their key order, without anchors."""
    return yaml.dump_all(docs, Dumper=_PlainDumper, sort_keys=False)


def render_stack(config: StackConfig) -> list[o.Manifest]:
    """Return every object of the stack, configuration first.

    Args:
        config: What to render.

    Returns:
        Plain-dict Kubernetes objects in apply order.
    """
    docs: list[o.Manifest] = [
        o.config_map("spawn-config", config.namespace, config.labels("spawn-config", "config"), config.config)
    ]
    if config.secret_data is not None:
        docs.append(secret(config))
    docs += gateway(config)
    for group in config.workers:
        docs += worker_group(config, group)
    for manifest in config.activators:
        docs += activator(config, manifest)
    if config.with_redis:
        docs += devstack.redis(config.namespace, config.labels("redis", "redis"))
    return docs


def secret(config: StackConfig) -> o.Manifest:
    """Return the shared Secret from ``config.secret_data``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": o.metadata(config.secret_name, config.namespace, config.labels(config.secret_name, "config")),
        "type": "Opaque",
        "stringData": dict(config.secret_data or {}),
    }


def gateway(config: StackConfig) -> list[o.Manifest]:
    """Return the gateway Deployment, Service and PodDisruptionBudget.

    Readiness follows draining (503 after SIGTERM), a preStop sleep lets endpoints update before SIGTERM, and the
    grace period covers preStop plus gunicorn's graceful timeout.
    """
    name, port = "spawn-gateway", int(config.config.get("PROXY_HTTP_PORT", "9001"))
    obj_labels = config.labels(name, "gateway")
    volume, mount = o.tmp_volume()
    container = {
        "name": "gateway",
        "image": config.gateway_image,
        "command": ["gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:app"],
        "envFrom": o.env_from("spawn-config", config.secret_name),
        "ports": [{"name": "http", "containerPort": port}],
        "resources": o.default_resources(cpu="250m", memory="256Mi", memory_limit="512Mi"),
        "startupProbe": _http_probe("/health/liveness", period=2, failures=30),
        "readinessProbe": _http_probe("/health/readiness", period=5, failures=1),
        "livenessProbe": _http_probe("/health/liveness", period=10, failures=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(o.GATEWAY_PRESTOP_S)]}}},
        "securityContext": o.container_security(),
        "volumeMounts": [mount],
    }
    pod = o.pod_spec([container], [volume], o.GATEWAY_GRACE_S)
    annotations = {o.CHECKSUM_ANNOTATION: config.config_checksum, **o.metrics_annotations(port)}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": o.metadata(name, config.namespace, obj_labels),
        "spec": {"selector": o.selector(name), "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }
    return [
        o.deployment(
            name=name,
            namespace=config.namespace,
            obj_labels=obj_labels,
            pod_spec=pod,
            replicas=config.gateway_replicas,
            pod_annotations=annotations,
        ),
        service,
        scaling.pdb(name, config.namespace, obj_labels, minAvailable=1),
    ]


def worker_group(config: StackConfig, group: WorkerGroup) -> list[o.Manifest]:
    """Return the Deployment, HPA and PodDisruptionBudget of one worker group."""
    name = f"spawn-worker-{group.name}"
    obj_labels = config.labels(name, "worker")
    queues = [actor_queue(config.system, actor) for actor in group.actors]
    container = o.worker_container(
        image=config.worker_image,
        args=o.worker_args(config.app, queues, group.concurrency),
        env_sources=o.env_from("spawn-config", config.secret_name),
    )
    pod = o.pod_spec([container], [o.tmp_volume()[0]], o.WORKER_GRACE_S)
    annotations = {o.CHECKSUM_ANNOTATION: config.config_checksum, **o.metrics_annotations(o.METRICS_PORT)}
    return [
        o.deployment(
            name=name,
            namespace=config.namespace,
            obj_labels=obj_labels,
            pod_spec=pod,
            replicas=None,
            pod_annotations=annotations,
        ),
        scaling.hpa(
            name=name,
            namespace=config.namespace,
            obj_labels=obj_labels,
            min_replicas=group.min_replicas,
            max_replicas=group.max_replicas,
            cpu_percent=group.cpu_percent,
            memory=scaling.memory_target(group.memory_percent),
        ),
        scaling.pdb(name, config.namespace, obj_labels, maxUnavailable=1),
    ]


def activator(config: StackConfig, manifest: Mapping[str, Any]) -> list[o.Manifest]:
    """Return the ConfigMap (manifest) and Deployment of one activator; Cron also gets a PodDisruptionBudget.

    Raises:
        ConfigError: the manifest cannot run (an ``Api`` type, a source without ``expr``/``queue``, a bad binding).
    """
    name = f"spawn-activator-{manifest['metadata']['name']}"
    obj_labels = config.labels(name, "activator")
    docs = activator_workload(
        manifest,
        name=name,
        namespace=config.namespace,
        obj_labels=obj_labels,
        image=config.activator_image,
        env_sources=o.env_from("spawn-config", config.secret_name),
        config_hash=config.config_checksum,
    )
    if docs[1]["spec"]["replicas"] > 1:
        docs.append(scaling.pdb(name, config.namespace, obj_labels, minAvailable=1))
    return docs


def _http_probe(path: str, *, period: int, failures: int) -> o.Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }
