"""An in-memory Kubernetes API with the server's semantics, for testing the operator without a cluster.

:class:`FakeCluster` stores objects as JSON dicts and answers like the API server does where the operator depends
on it: 404 for a missing object, 409 for creating an existing one, 422 for an object the client's own model classes
reject, 415 for a patch that is not a JSON merge patch, server-side defaults on Deployments, ``resourceVersion`` and
``generation`` bookkeeping, a status subresource for custom resources, garbage collection through
ownerReferences, and a watch that resumes from a resourceVersion (410 Gone once it is compacted away).
Reads return the client's model objects (``V1Deployment`` ...), as the real client does. Needs the ``k8s`` extra.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

from kubernetes.client import V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler
from kubernetes.client.exceptions import ApiException

from spawn_celery.k8s.patch import MERGE_PATCH, apply_merge_patch

_MODELS: dict[str, Any] = {
    "ConfigMap": V1ConfigMap,
    "Deployment": V1Deployment,
    "HorizontalPodAutoscaler": V2HorizontalPodAutoscaler,
}
Key = tuple[str, str, str]


class FakeCluster:
    """The shared store behind the fake API objects.

    Attributes:
        objects: ``(kind, namespace, name)`` -> stored object.
        writes: Every successful write as ``(verb, kind, namespace, name)``, in order.
        events: Watch events as ``(resourceVersion, type, kind, object)``.
    """

    def __init__(self) -> None:
        """Start empty."""
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str, str]] = []
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []
        self._revision = itertools.count(1)
        self._uids = itertools.count(1)
        self._compacted = 0
        self.core = FakeCoreV1Api(self)
        self.apps = FakeAppsV1Api(self)
        self.autoscaling = FakeAutoscalingV2Api(self)
        self.custom = FakeCustomObjectsApi(self)

    def apis(self) -> dict[str, Any]:
        """Return the keyword arguments of :class:`~spawn_celery.k8s.reconcile.Reconciler` for this cluster."""
        return {"core": self.core, "apps": self.apps, "autoscaling": self.autoscaling, "custom": self.custom}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """Return a stored object (a copy) or raise 404."""
        try:
            return copy.deepcopy(self.objects[(kind, namespace, name)])
        except KeyError:
            raise ApiException(status=404, reason=f"{kind} {namespace}/{name} not found") from None

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a new object: 409 when it exists, 422 when the client's model rejects it."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name or meta.get("namespace", namespace) != namespace:
            raise ApiException(status=422, reason="metadata.name missing or namespace mismatch")
        if (kind, namespace, name) in self.objects:
            raise ApiException(status=409, reason=f"{kind} {namespace}/{name} already exists")
        self._validate(kind, obj)
        meta.update(
            namespace=namespace, uid=f"uid-{next(self._uids)}", generation=1, creationTimestamp="2026-01-01T00:00:00Z"
        )
        if kind == "Deployment":
            _deployment_defaults(obj)
        return self._store("create", kind, obj)

    def patch(
        self, kind: str, namespace: str, name: str, body: Any, content_type: str | None, *, status: bool = False
    ) -> dict[str, Any]:
        """Apply a JSON merge patch (415 for any other patch type), to the status only when ``status``."""
        if content_type != MERGE_PATCH or not isinstance(body, dict):
            raise ApiException(status=415, reason=f"unsupported patch content type {content_type!r}")
        old = self.get(kind, namespace, name)
        if status:
            new = {**old, "status": apply_merge_patch(old.get("status") or {}, body.get("status") or {})}
        else:
            new = apply_merge_patch(old, {k: v for k, v in body.items() if k != "status"})
            new["metadata"].update({k: old["metadata"][k] for k in ("uid", "namespace", "name", "generation")})
            self._validate(kind, new)
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            if kind == "Deployment":
                _deployment_defaults(new)
        return self._store("patch_status" if status else "patch", kind, new)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove an object (404 when missing) and, like the garbage collector, the objects it owns."""
        obj = self.get(kind, namespace, name)
        del self.objects[(kind, namespace, name)]
        self.writes.append(("delete", kind, namespace, name))
        self.events.append((next(self._revision), "DELETED", kind, obj))
        uid = obj["metadata"]["uid"]
        for key, child in list(self.objects.items()):
            if any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or []):
                self.delete(*key)

    def compact(self) -> None:
        """Forget the watch history so far: resuming a watch from an older resourceVersion gets 410 Gone."""
        self._compacted = self.events[-1][0] if self.events else 0

    def watch(self, kind: str, resource_version: str | None) -> Iterator[dict[str, Any]]:
        """Yield the watch events of ``kind`` after ``resource_version`` (410 when compacted away)."""
        since = int(resource_version or 0)
        if since < self._compacted:
            raise ApiException(status=410, reason="Gone: too old resource version")
        for revision, event_type, event_kind, obj in list(self.events):
            if revision > since and event_kind == kind:
                yield {"type": event_type, "object": copy.deepcopy(obj)}

    def revision(self) -> str:
        """Return the newest resourceVersion (what a list answers with)."""
        return str(self.events[-1][0]) if self.events else "0"

    def _store(self, verb: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        revision = next(self._revision)
        obj["metadata"]["resourceVersion"] = str(revision)
        key = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.objects[key] = obj
        self.writes.append((verb, *key))
        self.events.append((revision, "ADDED" if verb == "create" else "MODIFIED", kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    @staticmethod
    def _validate(kind: str, obj: dict[str, Any]) -> None:
        model = _MODELS.get(kind)
        if model is None:
            return
        try:
            model.from_dict(obj)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ApiException(status=422, reason=f"{kind} is invalid: {exc}") from None


def _deployment_defaults(obj: dict[str, Any]) -> None:
    """Fill the defaults the API server adds to a Deployment (a representative subset)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("schedulerName", "default-scheduler")
    for container in pod.get("containers", []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        latest = ":" not in container.get("image", "").rsplit("/", 1)[-1] or container["image"].endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")


class _TypedApi:
    kind = ""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def _read(self, name: str, namespace: str, **_: Any) -> Any:
        return _MODELS[self.kind].from_dict(self.cluster.get(self.kind, namespace, name))

    def _create(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        return _MODELS[self.kind].from_dict(self.cluster.create(self.kind, namespace, body))

    def _patch(self, name: str, namespace: str, body: Any, _content_type: str | None = None, **_: Any) -> Any:
        return _MODELS[self.kind].from_dict(self.cluster.patch(self.kind, namespace, name, body, _content_type))

    def _delete(self, name: str, namespace: str, **_: Any) -> None:
        self.cluster.delete(self.kind, namespace, name)


class FakeCoreV1Api(_TypedApi):
    """ConfigMaps, as ``CoreV1Api`` serves them."""

    kind = "ConfigMap"
    read_namespaced_config_map = _TypedApi._read
    create_namespaced_config_map = _TypedApi._create
    patch_namespaced_config_map = _TypedApi._patch
    delete_namespaced_config_map = _TypedApi._delete


class FakeAppsV1Api(_TypedApi):
    """Deployments, as ``AppsV1Api`` serves them."""

    kind = "Deployment"
    read_namespaced_deployment = _TypedApi._read
    create_namespaced_deployment = _TypedApi._create
    patch_namespaced_deployment = _TypedApi._patch
    delete_namespaced_deployment = _TypedApi._delete


class FakeAutoscalingV2Api(_TypedApi):
    """HorizontalPodAutoscalers, as ``AutoscalingV2Api`` serves them."""

    kind = "HorizontalPodAutoscaler"
    read_namespaced_horizontal_pod_autoscaler = _TypedApi._read
    create_namespaced_horizontal_pod_autoscaler = _TypedApi._create
    patch_namespaced_horizontal_pod_autoscaler = _TypedApi._patch
    delete_namespaced_horizontal_pod_autoscaler = _TypedApi._delete


_KINDS = {"actorsystems": "ActorSystem", "actorhosts": "ActorHost", "activators": "Activator"}


class FakeCustomObjectsApi:
    """Our custom resources, as ``CustomObjectsApi`` serves them (plain dicts, status subresource)."""

    def __init__(self, cluster: FakeCluster) -> None:
        """Serve ``cluster``."""
        self.cluster = cluster

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **_: Any
    ) -> dict[str, Any]:
        """Return one resource (404 when missing)."""
        return self.cluster.get(_KINDS[plural], namespace, name)

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any], **_: Any
    ) -> dict[str, Any]:
        """Create a resource (409 when it exists); ``status`` in the body is dropped, as the server does."""
        return self.cluster.create(_KINDS[plural], namespace, {k: v for k, v in body.items() if k != "status"})

    def patch_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        _content_type: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Merge-patch a resource's spec/metadata (status is ignored: it has its own subresource)."""
        return self.cluster.patch(_KINDS[plural], namespace, name, body, _content_type)

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        _content_type: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Merge-patch the status subresource only."""
        return self.cluster.patch(_KINDS[plural], namespace, name, body, _content_type, status=True)

    def delete_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **_: Any
    ) -> None:
        """Delete a resource and garbage-collect what it owns."""
        self.cluster.delete(_KINDS[plural], namespace, name)

    def list_cluster_custom_object(self, group: str, version: str, plural: str, **_: Any) -> dict[str, Any]:
        """List a kind in every namespace, with the resourceVersion to watch from."""
        kind = _KINDS[plural]
        items = [copy.deepcopy(v) for (k, _ns, _n), v in sorted(self.cluster.objects.items()) if k == kind]
        return {"items": items, "metadata": {"resourceVersion": self.cluster.revision()}}

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **_: Any
    ) -> dict[str, Any]:
        """List a kind in one namespace."""
        listing = self.list_cluster_custom_object(group, version, plural)
        listing["items"] = [i for i in listing["items"] if i["metadata"]["namespace"] == namespace]
        return listing
