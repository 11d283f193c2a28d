"""Development-only backing services for a cluster without managed ones: a single-node Redis.

Production should use a managed Redis (or an HA operator) and point ``SPAWN_REDIS_URL`` at it (k8s/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from spawn_celery.k8s import objects as o

REDIS_IMAGE = "redis:7.4.2-alpine"


def redis(namespace: str, obj_labels: Mapping[str, str]) -> list[o.Manifest]:
    """Return a single-node development Redis: StatefulSet, Service and a NetworkPolicy admitting only our pods.

    ``noeviction`` matters: queues, locks and hot state must never be evicted under memory pressure. Production
    should use a managed Redis instead (see k8s/README.md).
    """
    name, ns = "redis", namespace

    def probe(failures: int) -> o.Manifest:
        return {
            "exec": {"command": ["redis-cli", "ping"]},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        "args": ["--appendonly", "yes", "--maxmemory-policy", "noeviction", "--dir", "/data"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "resources": o.default_resources(cpu="100m", memory="256Mi", memory_limit="512Mi"),
        "readinessProbe": probe(1),
        "livenessProbe": probe(6),
        "securityContext": o.container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod = {
        "terminationGracePeriodSeconds": 30,
        "securityContext": {**o.pod_security(), "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": o.metadata(name, ns, obj_labels),
            "spec": {
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": o.selector(name)},
                "template": {"metadata": {"labels": dict(obj_labels)}, "spec": pod},
                "volumeClaimTemplates": [claim],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": o.metadata(name, ns, obj_labels),
            "spec": {"selector": o.selector(name), "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]},
        },
        redis_network_policy(ns, obj_labels),
    ]


def redis_network_policy(namespace: str, obj_labels: Mapping[str, str]) -> o.Manifest:
    """Return the NetworkPolicy that lets only pods labelled ``app.kubernetes.io/part-of: spawn-celery`` reach Redis."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": o.metadata("redis", namespace, obj_labels),
        "spec": {
            "podSelector": {"matchLabels": o.selector("redis")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {o.PART_OF_LABEL: o.PART_OF}}}],
                    "ports": [{"protocol": "TCP", "port": 6379}],
                }
            ],
        },
    }
