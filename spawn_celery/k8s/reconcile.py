"""The reconcile step: make the children of one custom resource match what :mod:`.desired` says, then report.

:class:`Reconciler` takes the Kubernetes API objects as keyword arguments (``CoreV1Api``, ``AppsV1Api``,
``AutoscalingV2Api``, ``CustomObjectsApi`` or anything with their methods, such as :mod:`.fake`). It never imports
the client: an API error is recognised by its ``status`` attribute, as ``kubernetes.client.ApiException`` has.

One pass per resource: read the resource (gone -> nothing to do: ownerReferences let the garbage collector remove
its children), compute the desired children, create the missing ones, patch (JSON merge patch) only those that
differ, delete owned children no longer wanted, and write ``status`` (conditions, observedGeneration) through the
status subresource only when it changed. A second pass over an unchanged resource writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spawn_celery.errors import ConfigError
from spawn_celery.k8s import desired as d
from spawn_celery.k8s.activator import activator_objects
from spawn_celery.k8s.objects import Manifest
from spawn_celery.k8s.patch import MERGE_PATCH, contains, last_applied, prune_none, three_way_patch, with_last_applied

log = logging.getLogger(__name__)

_CHILD_KINDS = {  # kind -> (API attribute, method suffix)
    "ConfigMap": ("core", "namespaced_config_map"),
    "Deployment": ("apps", "namespaced_deployment"),
    "HorizontalPodAutoscaler": ("autoscaling", "namespaced_horizontal_pod_autoscaler"),
}


def _possible_children(kind: str, name: str) -> list[tuple[str, str]]:
    """Return what a resource may own, so that what is no longer wanted can be deleted."""
    if kind == "ActorSystem":
        return [("ConfigMap", d.config_map_name(name))]
    if kind == "ActorHost":
        return [("Deployment", name), ("HorizontalPodAutoscaler", name)]
    return [("ConfigMap", f"{name}-activator"), ("Deployment", f"{name}-activator")]


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def api_status(exc: BaseException) -> int | None:
    """Return the HTTP status of a Kubernetes API error (None for other errors)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class _SystemMissing(Exception):
    """The ActorSystem a resource names does not exist (yet): reported in its status, retried on its event."""


@dataclass
class Outcome:
    """What one reconcile pass did.

    Attributes:
        kind: Kind of the custom resource.
        namespace: Its namespace.
        name: Its name.
        actions: ``(verb, kind, name)`` for every write: created, patched, deleted, status.
        ready: The Ready condition written (None when the resource is gone).
        reason: The condition's reason.
    """

    kind: str
    namespace: str
    name: str
    actions: list[tuple[str, str, str]] = field(default_factory=list)
    ready: bool | None = None
    reason: str = ""


class Reconciler:
    """Reconciles ActorSystem, ActorHost and Activator resources into their children."""

    def __init__(
        self,
        *,
        core: Any,
        apps: Any,
        autoscaling: Any,
        custom: Any,
        defaults: d.OperatorDefaults | None = None,
        clock: Callable[[], str] = _utcnow,
    ) -> None:
        """Keep the API objects.

        Args:
            core: ``CoreV1Api`` (ConfigMaps).
            apps: ``AppsV1Api`` (Deployments).
            autoscaling: ``AutoscalingV2Api`` (HorizontalPodAutoscalers).
            custom: ``CustomObjectsApi`` (our resources and their status).
            defaults: Images used when a resource names none.
            clock: Returns the RFC 3339 time written in ``lastTransitionTime``.
        """
        self.apis = {"core": core, "apps": apps, "autoscaling": autoscaling}
        self.custom = custom
        self.defaults = defaults or d.OperatorDefaults()
        self.clock = clock

    def reconcile(self, kind: str, namespace: str, name: str) -> Outcome:
        """Bring the children of one resource in line and write its status.

        Args:
            kind: ``ActorSystem``, ``ActorHost`` or ``Activator``.
            namespace: The resource's namespace (its children go there too).
            name: The resource's name.

        Returns:
            What was done. Errors of the API other than 404/409 propagate (the caller retries with backoff).
        """
        outcome = Outcome(kind, namespace, name)
        resource = self._get_resource(kind, namespace, name)
        if resource is None:
            return outcome
        extra: dict[str, Any] = {}
        try:
            wanted = self._desired(kind, resource)
        except _SystemMissing as exc:
            outcome.ready, outcome.reason, message = False, "ActorSystemNotFound", str(exc)
        except ConfigError as exc:
            outcome.ready, outcome.reason, message = False, "InvalidSpec", str(exc)
        else:
            for child in wanted:
                verb = self.apply(child)
                if verb != "unchanged":
                    outcome.actions.append((verb, child["kind"], child["metadata"]["name"]))
            outcome.actions += self._prune(kind, resource, wanted)
            outcome.ready, outcome.reason = True, "Reconciled"
            message = f"{len(wanted)} object(s) in sync" if wanted else "nothing to run: the gateway serves it"
            extra = self._status_extra(kind, resource, wanted)
        if self._write_status(kind, resource, outcome, message, extra):
            outcome.actions.append(("status", kind, name))
        return outcome

    def apply(self, desired: Manifest) -> str:
        """Create ``desired`` or patch the live object so that it contains it.

        Returns:
            ``created``, ``patched`` or ``unchanged``.
        """
        meta = desired["metadata"]
        body = with_last_applied(desired)
        live = self._read(desired["kind"], meta["namespace"], meta["name"])
        if live is None:
            try:
                self._call("create", desired["kind"], meta["namespace"], body=body)
                return "created"
            except Exception as exc:
                if api_status(exc) != 409:  # 409: created meanwhile; patch it below
                    raise
            live = self._read(desired["kind"], meta["namespace"], meta["name"]) or {}
        patch = three_way_patch(live, body, last_applied(live))
        if not patch:
            return "unchanged"
        self._call("patch", desired["kind"], meta["namespace"], meta["name"], body=patch, _content_type=MERGE_PATCH)
        return "patched"

    def _desired(self, kind: str, resource: Manifest) -> list[Manifest]:
        if kind == "ActorSystem":
            return d.system_objects(resource)
        namespace, system_name = resource["metadata"]["namespace"], d.system_of(resource)
        system = self._get_resource("ActorSystem", namespace, system_name)
        if system is None:
            raise _SystemMissing(f"ActorSystem {system_name!r} not found in namespace {namespace!r}")
        if kind == "ActorHost":
            return d.host_objects(resource, system, self.defaults)
        return activator_objects(resource, system, self.defaults)

    def _prune(self, kind: str, resource: Manifest, wanted: list[Manifest]) -> list[tuple[str, str, str]]:
        keep = {(c["kind"], c["metadata"]["name"]) for c in wanted}
        namespace, uid = resource["metadata"]["namespace"], resource["metadata"]["uid"]
        done = []
        for child_kind, child_name in _possible_children(kind, resource["metadata"]["name"]):
            if (child_kind, child_name) in keep:
                continue
            live = self._read(child_kind, namespace, child_name)
            owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in owners):  # never delete what someone else made
                self._call("delete", child_kind, namespace, child_name)
                done.append(("deleted", child_kind, child_name))
        return done

    def _status_extra(self, kind: str, resource: Manifest, wanted: list[Manifest]) -> dict[str, Any]:
        meta = resource["metadata"]
        if kind == "ActorSystem":
            return {"configMap": d.config_map_name(meta["name"])}
        deployments = [c["metadata"]["name"] for c in wanted if c["kind"] == "Deployment"]
        if not deployments:
            return {}
        extra: dict[str, Any] = {"deployment": deployments[0]}
        if kind == "ActorHost":
            extra["queues"] = d.host_queues(resource, d.system_of(resource))
            live = self._read("Deployment", meta["namespace"], deployments[0]) or {}
            extra["availableReplicas"] = int((live.get("status") or {}).get("availableReplicas", 0))
        return extra

    def _write_status(
        self, kind: str, resource: Manifest, outcome: Outcome, message: str, extra: Mapping[str, Any]
    ) -> bool:
        meta = resource["metadata"]
        old = resource.get("status") or {}
        old_ready: dict[str, Any] = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), {})
        condition = {
            "type": "Ready",
            "status": "True" if outcome.ready else "False",
            "reason": outcome.reason,
            "message": message,
            "observedGeneration": meta.get("generation", 0),
        }
        unchanged_since = old_ready.get("status") == condition["status"] and old_ready.get("lastTransitionTime")
        condition["lastTransitionTime"] = unchanged_since or self.clock()
        status = {"observedGeneration": meta.get("generation", 0), "conditions": [condition], **extra}
        if contains(old, status):
            return False
        body = {"status": status}
        self.custom.patch_namespaced_custom_object_status(
            d.GROUP, d.VERSION, meta["namespace"], d.PLURALS[kind], meta["name"], body, _content_type=MERGE_PATCH
        )
        return True

    def _get_resource(self, kind: str, namespace: str, name: str) -> Manifest | None:
        try:
            found = self.custom.get_namespaced_custom_object(d.GROUP, d.VERSION, namespace, d.PLURALS[kind], name)
        except Exception as exc:
            if api_status(exc) == 404:
                return None
            raise
        return dict(found)

    def _read(self, kind: str, namespace: str, name: str) -> Manifest | None:
        try:
            found = self._call("read", kind, namespace, name)
        except Exception as exc:
            if api_status(exc) == 404:
                return None
            raise
        return _plain(found)

    def _call(self, verb: str, kind: str, namespace: str, name: str | None = None, **kwargs: Any) -> Any:
        api_name, suffix = _CHILD_KINDS[kind]
        method = getattr(self.apis[api_name], f"{verb}_{suffix}")
        if name is None:
            return method(namespace, **kwargs)
        return method(name, namespace, **kwargs)


def _plain(obj: Any) -> Manifest:
    """Return a client model (or dict) as the camelCase dict the API server sent."""
    if hasattr(obj, "to_dict") and not isinstance(obj, dict):
        obj = obj.to_dict(serialize=True)
    value = prune_none(obj)
    return value if isinstance(value, dict) else {}
