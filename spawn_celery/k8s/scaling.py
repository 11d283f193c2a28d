"""Scaling and disruption objects: autoscaling/v2 HorizontalPodAutoscalers and policy/v1 PodDisruptionBudgets."""

from __future__ import annotations

from collections.abc import Mapping

from spawn_celery.k8s.objects import Manifest, metadata, selector


def memory_target(percent: int | None = None, value: int | str | None = None) -> Manifest:
    """Return the HPA memory target: AverageValue when ``value`` is given (bare integers are Mi), else Utilization.

    This is the shape Spawn's operator got wrong (it wrote a value under ``averageUtilization``).
    """
    if value is not None:
        quantity = f"{value}Mi" if isinstance(value, int) or str(value).isdigit() else str(value)
        return {"type": "AverageValue", "averageValue": quantity}
    return {"type": "Utilization", "averageUtilization": percent or 80}


def hpa(
    *,
    name: str,
    namespace: str,
    obj_labels: Mapping[str, str],
    min_replicas: int,
    max_replicas: int,
    cpu_percent: int = 80,
    memory: Manifest | None = None,
    owner_references: list[Manifest] | None = None,
) -> Manifest:
    """Return an autoscaling/v2 HorizontalPodAutoscaler on CPU and memory for the Deployment ``name``.

    Scale-down is slowed (5 minute window, one pod a minute) so that bursts do not churn workers, each of which
    drains for up to a minute when stopped.
    """
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, obj_labels, ownerReferences=owner_references),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max(max_replicas, min_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}},
                },
                {"type": "Resource", "resource": {"name": "memory", "target": memory or memory_target()}},
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }


def pdb(name: str, namespace: str, obj_labels: Mapping[str, str], **budget: int | str) -> Manifest:
    """Return a policy/v1 PodDisruptionBudget for the workload ``name``.

    Args:
        name: The workload (and budget) name.
        namespace: Its namespace.
        obj_labels: Labels of the budget.
        **budget: ``minAvailable=`` or ``maxUnavailable=`` (an int or a percentage).
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, namespace, obj_labels),
        "spec": {**budget, "selector": {"matchLabels": selector(name)}},
    }
