"""What the operator wants to exist for each custom resource: pure functions from CR dicts to Kubernetes objects.

- ``ActorSystem`` -> ConfigMap ``<system>-config`` (Redis and statestore settings). Secrets are referenced, never
  copied: pods read ``spec.statestore.credentialsSecretRef`` (same namespace) through ``secretKeyRef``.
- ``ActorHost`` -> worker Deployment (and an autoscaling/v2 HPA when ``spec.autoscaler`` is set).
- ``Activator`` -> ConfigMap with the manifest + activator Deployment (``Api`` needs none: the gateway serves it).

Every object lands in the custom resource's own namespace and carries a controller ownerReference to it.
A spec the operator cannot honour raises :class:`~spawn_celery.errors.ConfigError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spawn_celery.errors import ConfigError
from spawn_celery.k8s import objects as o
from spawn_celery.k8s import scaling
from spawn_celery.k8s.objects import ACTIVATOR_IMAGE, WORKER_IMAGE
from spawn_celery.keys import queue as actor_queue

GROUP = "spawn-eigr.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"ActorSystem": "actorsystems", "ActorHost": "actorhosts", "Activator": "activators"}
SYSTEM_ANNOTATION = "spawn-eigr.io/actor-system"
APP_PORT_ANNOTATION = "spawn-eigr.io/app-port"
SIDECAR_IMAGE_ANNOTATION = "spawn-eigr.io/sidecar-image-tag"
DEFAULT_SYSTEM = "spawn-system"
MANAGER = "spawn-celery-operator"
_DB_TYPES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "native": "sqlite",
}
_SECRET_KEYS = (  # env var <- key of the statestore credentials Secret; only encryptionKey is required
    ("SPAWN_STATESTORE_KEY", "encryptionKey", False),
    ("PROXY_DATABASE_USERNAME", "username", True),
    ("PROXY_DATABASE_SECRET", "password", True),
    ("PROXY_DATABASE_HOST", "host", True),
    ("PROXY_DATABASE_PORT", "port", True),
    ("PROXY_DATABASE_NAME", "database", True),
    ("SPAWN_DATABASE_URL", "url", True),
)


@dataclass(frozen=True)
class OperatorDefaults:
    """Images the operator uses when a custom resource names none.

    Attributes:
        worker_image: Worker sidecar of remote SDK hosts (annotation ``spawn-eigr.io/sidecar-image-tag`` wins).
        activator_image: Activator processes (``spec.activator.image`` wins).
    """

    worker_image: str = WORKER_IMAGE
    activator_image: str = ACTIVATOR_IMAGE


def system_of(resource: Mapping[str, Any]) -> str:
    """Return the ActorSystem name an ActorHost or Activator belongs to (annotation, default ``spawn-system``)."""
    annotations = resource.get("metadata", {}).get("annotations") or {}
    return str(annotations.get(SYSTEM_ANNOTATION) or DEFAULT_SYSTEM)


def config_map_name(system: str) -> str:
    """Return the name of the ConfigMap holding an actor system's settings."""
    return f"{system}-config"


def system_objects(system: Mapping[str, Any]) -> list[o.Manifest]:
    """Return the objects of an ActorSystem: its settings ConfigMap."""
    name, namespace = system["metadata"]["name"], system["metadata"]["namespace"]
    obj_labels = {**o.labels(config_map_name(name), "config", name), o.MANAGED_BY_LABEL: MANAGER}
    cm = o.config_map(config_map_name(name), namespace, obj_labels, system_settings(system))
    cm["metadata"]["ownerReferences"] = [o.owner_reference(system)]
    return [cm]


def system_settings(system: Mapping[str, Any]) -> dict[str, str]:
    """Return the non-secret environment of every pod of an actor system (the ConfigMap data)."""
    spec = system.get("spec", {})
    store = spec.get("statestore", {})
    kind = str(store.get("type", "postgres")).lower()
    if kind not in _DB_TYPES:
        raise ConfigError("spec.statestore.type", kind, "must be Postgres, MySql, MariaDB or SQLite")
    data = {
        "PROXY_ACTOR_SYSTEM_NAME": system["metadata"]["name"],
        "PROXY_DATABASE_TYPE": _DB_TYPES[kind],
        "PROXY_DATABASE_POOL_SIZE": str(store.get("pool", {}).get("size", 10)),
        "PROXY_DATABASE_SSL": _bool(store.get("ssl", False)),
        "PROXY_DATABASE_SSL_VERIFY": _bool(store.get("sslVerify", store.get("ssl_verify", False))),
        "SPAWN_METRICS_PORT": str(o.METRICS_PORT),
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus",
    }
    for var, key in (
        ("PROXY_DATABASE_HOST", "host"),
        ("PROXY_DATABASE_PORT", "port"),
        ("PROXY_DATABASE_NAME", "database"),
    ):
        if key in store:
            data[var] = str(store[key])
    redis = spec.get("redis", {})
    if not redis.get("urlSecretRef"):
        data["SPAWN_REDIS_URL"] = str(redis.get("url", "redis://redis:6379/0"))
    data.update({str(k): str(v) for k, v in (spec.get("config") or {}).items()})
    return data


def system_env(system: Mapping[str, Any], *, statestore: bool = True) -> list[o.Manifest]:
    """Return the ``env`` entries reading an actor system's secrets (statestore credentials, Redis URL).

    Optional keys that the Secret lacks leave the ConfigMap value in place (kubelet skips them).
    """
    spec = system.get("spec", {})
    env: list[o.Manifest] = []
    secret = spec.get("statestore", {}).get("credentialsSecretRef")
    if statestore and secret:
        for var, key, optional in _SECRET_KEYS:
            ref: o.Manifest = {"name": secret, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    redis_ref = spec.get("redis", {}).get("urlSecretRef")
    if redis_ref:
        ref = {"name": redis_ref["name"], "key": redis_ref.get("key", "url")}
        env.append({"name": "SPAWN_REDIS_URL", "valueFrom": {"secretKeyRef": ref}})
    return env


def host_objects(host: Mapping[str, Any], system: Mapping[str, Any], defaults: OperatorDefaults) -> list[o.Manifest]:
    """Return the worker Deployment of an ActorHost, plus its HPA when ``spec.autoscaler`` is set."""
    meta, spec = host["metadata"], host.get("spec", {})
    name, namespace, system_name = meta["name"], meta["namespace"], system["metadata"]["name"]
    host_spec = spec.get("host") or {}
    if not host_spec.get("image"):
        raise ConfigError("spec.host.image", "", "is required: the image of the actor host")
    obj_labels = {**o.labels(name, "worker", system_name), o.MANAGED_BY_LABEL: MANAGER}
    owners = [o.owner_reference(host)]
    queues = host_queues(host, system_name)
    args = o.worker_args(host_spec.get("app"), queues, int(host_spec.get("concurrency", 0)))
    sources = o.env_from(config_map_name(system_name))
    env = system_env(system)
    containers, pod_security = _host_containers(meta, host_spec, system, args, sources, env, defaults)
    pod = _host_pod(spec, host_spec, containers)
    if pod_security:
        pod["securityContext"] = o.pod_security()
    autoscaler = spec.get("autoscaler")
    replicas = None if autoscaler else int(spec.get("replicas", 1))
    annotations = {
        o.CHECKSUM_ANNOTATION: o.checksum(system_settings(system), env),
        **o.metrics_annotations(o.METRICS_PORT),
    }
    docs = [
        o.deployment(
            name=name,
            namespace=namespace,
            obj_labels=obj_labels,
            pod_spec=pod,
            replicas=replicas,
            pod_annotations=annotations,
            owner_references=owners,
            max_surge="50%",
        )
    ]
    if autoscaler:
        low = int(autoscaler.get("min", 1))
        high = int(autoscaler.get("max", max(low, int(spec.get("replicas", 1)), 4)))
        memory = scaling.memory_target(
            autoscaler.get("averageMemoryUtilizationPercentage"), autoscaler.get("averageMemoryUtilizationValue")
        )
        docs.append(
            scaling.hpa(
                name=name,
                namespace=namespace,
                obj_labels=obj_labels,
                min_replicas=low,
                max_replicas=high,
                cpu_percent=int(autoscaler.get("averageCpuUtilizationPercentage", 80)),
                memory=memory,
                owner_references=owners,
            )
        )
    return docs


def host_queues(host: Mapping[str, Any], system_name: str) -> list[str]:
    """Return the Celery queues an ActorHost consumes (empty: every queue of its app)."""
    return [actor_queue(system_name, a) for a in (host.get("spec", {}).get("host") or {}).get("actors") or ()]


def _host_containers(
    meta: Mapping[str, Any],
    host_spec: Mapping[str, Any],
    system: Mapping[str, Any],
    args: list[str],
    sources: list[o.Manifest],
    env: list[o.Manifest],
    defaults: OperatorDefaults,
) -> tuple[list[o.Manifest], bool]:
    """Return (containers, whether the pod runs only our non-root images)."""
    user_env = list(host_spec.get("env") or [])
    mounts = list(host_spec.get("volumeMounts") or [])
    resources = host_spec.get("resources")
    if host_spec.get("app"):  # Python actors in-process: the user image is a worker image with their code
        worker = o.worker_container(
            image=host_spec["image"], args=args, env_sources=sources, env=env + user_env, resources=resources
        )
        worker["volumeMounts"] += mounts
        return [worker], True
    ports = list(host_spec.get("ports") or [])
    annotations = meta.get("annotations") or {}
    app_port = str(annotations.get(APP_PORT_ANNOTATION) or (ports[0]["containerPort"] if ports else 8090))
    gateway = system.get("spec", {}).get("gateway") or {}
    host_env = [
        {"name": "USER_FUNCTION_PORT", "value": app_port},
        {"name": "PROXY_HTTP_HOST", "value": str(gateway.get("host", "spawn-gateway"))},
        {"name": "PROXY_HTTP_PORT", "value": str(gateway.get("port", 9001))},
        {"name": "PROXY_ACTOR_SYSTEM_NAME", "value": system["metadata"]["name"]},
    ]
    actorhost: o.Manifest = {
        "name": "actorhost",
        "image": host_spec["image"],
        "env": host_env + user_env,
        "resources": resources or o.default_resources(cpu="100m", memory="128Mi", memory_limit="512Mi"),
    }
    if ports:
        actorhost["ports"] = ports
    if mounts:
        actorhost["volumeMounts"] = mounts
    sidecar_env = [
        {"name": "USER_FUNCTION_HOST", "value": "127.0.0.1"},
        {"name": "USER_FUNCTION_PORT", "value": app_port},
    ]
    image = str(annotations.get(SIDECAR_IMAGE_ANNOTATION) or defaults.worker_image)
    worker = o.worker_container(image=image, args=args, env_sources=sources, env=env + sidecar_env)
    worker["securityContext"] = {**worker["securityContext"], "runAsUser": o.UID, "runAsGroup": o.UID}
    return [actorhost, worker], False


def _host_pod(spec: Mapping[str, Any], host_spec: Mapping[str, Any], containers: list[o.Manifest]) -> o.Manifest:
    topology = spec.get("topology") or {}
    pod: o.Manifest = {
        "terminationGracePeriodSeconds": int(spec.get("terminationGracePeriodSeconds", o.WORKER_GRACE_S)),
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": [o.tmp_volume()[0], *(spec.get("volumes") or [])],
    }
    pull_secret = host_spec.get("pullSecretRef") or host_spec.get("pullSecretsRef")
    if pull_secret:
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    affinity = spec.get("affinity") or topology.get("affinity")
    for key, value in (
        ("affinity", affinity),
        ("nodeSelector", topology.get("nodeSelector")),
        ("tolerations", topology.get("tolerations")),
    ):
        if value:
            pod[key] = value
    return pod


def _bool(value: Any) -> str:
    return "true" if value is True or str(value).lower() == "true" else "false"
