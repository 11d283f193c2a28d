"""``spawn-celery operator``: watch ActorSystem, ActorHost and Activator resources and reconcile them.

One watch per kind (all namespaces, or ``--namespace``). Each watch lists first, reconciles every item, then
watches from the list's ``resourceVersion``; a watch that ends is resumed from the last version seen, a ``410
Gone`` makes it list again, other errors back off exponentially (0.5 s doubling to 30 s). Every ``--resync-seconds``
it lists again, which also repairs children deleted or edited behind its back. Reconciles are serialised.

Run one replica (the Deployment in k8s/operator/ uses the Recreate strategy). Images used when a resource names
none: ``--worker-image`` / ``SPAWN_OPERATOR_WORKER_IMAGE`` and ``--activator-image`` /
``SPAWN_OPERATOR_ACTIVATOR_IMAGE``. The ``kubernetes`` client (extra ``k8s``) is imported only when it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from spawn_celery.config import Settings
from spawn_celery.k8s import desired as d
from spawn_celery.k8s.objects import ACTIVATOR_IMAGE, WORKER_IMAGE
from spawn_celery.k8s.reconcile import Reconciler, api_status

log = logging.getLogger(__name__)

ListFn = Callable[[str], Mapping[str, Any]]
"""kind -> a list answer (``items`` and ``metadata.resourceVersion``)."""
StreamFn = Callable[[str, str], Iterable[Mapping[str, Any]]]
"""(kind, resourceVersion) -> watch events (``type``, ``object``) until the watch ends."""


@dataclass
class Backoff:
    """Exponential backoff between failed watch rounds.

    Attributes:
        base: First delay in seconds.
        cap: Longest delay.
        current: The delay the next failure waits (reset after a good round).
    """

    base: float = 0.5
    cap: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        """Return the delay to wait now and double the next one."""
        self.current = min(self.cap, self.current * 2 if self.current else self.base)
        return self.current

    def reset(self) -> None:
        """Forget past failures."""
        self.current = 0.0


class Operator:
    """Watches the three kinds and hands every change to a :class:`~spawn_celery.k8s.reconcile.Reconciler`."""

    def __init__(
        self,
        *,
        reconciler: Reconciler,
        list_fn: ListFn,
        stream_fn: StreamFn,
        resync_seconds: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Wire the reconciler to the API.

        Args:
            reconciler: Does the work for one resource.
            list_fn: Lists a kind.
            stream_fn: Watches a kind from a resourceVersion.
            resync_seconds: How often to list again although the watch is healthy.
            clock: Monotonic clock (seconds).
        """
        import time

        self.reconciler = reconciler
        self.list_fn = list_fn
        self.stream_fn = stream_fn
        self.resync_seconds = resync_seconds
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()

    def handle(self, kind: str, event_type: str, obj: Mapping[str, Any]) -> None:
        """Reconcile what an event touches; a changed or deleted ActorSystem also touches its hosts and activators.

        A failing reconcile is logged and retried at the next resync; it never stops the watch.
        """
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        with self._lock:
            if event_type != "DELETED":
                self._reconcile(kind, namespace, name)
            if kind == "ActorSystem":
                for dependent in ("ActorHost", "Activator"):
                    for item in self.reconciler.custom.list_namespaced_custom_object(
                        d.GROUP, d.VERSION, namespace, d.PLURALS[dependent]
                    ).get("items", []):
                        if d.system_of(item) == name:
                            self._reconcile(dependent, namespace, item["metadata"]["name"])

    def watch_round(self, kind: str, resource_version: str | None, listed_at: float) -> tuple[str, float]:
        """List when needed, then follow one watch until it ends.

        Returns:
            The resourceVersion to resume from and when the kind was last listed.

        Raises:
            Exception: whatever the API raised; ``status == 410`` means list again.
        """
        if resource_version is None or self.clock() - listed_at >= self.resync_seconds:
            listing = self.list_fn(kind)
            for item in listing.get("items", []):
                self.handle(kind, "SYNC", item)
            resource_version, listed_at = str(listing["metadata"]["resourceVersion"]), self.clock()
        for event in self.stream_fn(kind, resource_version):
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                raise _WatchError(int(obj.get("code", 500)), str(obj.get("message", "")))
            resource_version = str((obj.get("metadata") or {}).get("resourceVersion", resource_version))
            if event.get("type") != "BOOKMARK":
                self.handle(kind, str(event.get("type")), obj)
        return resource_version, listed_at

    def watch(self, kind: str, stop: threading.Event, backoff: Backoff | None = None) -> None:
        """Run :meth:`watch_round` until ``stop`` is set, resuming, re-listing and backing off as needed."""
        backoff = backoff or Backoff()
        version: str | None = None
        listed_at = 0.0
        while not stop.is_set():
            try:
                version, listed_at = self.watch_round(kind, version, listed_at)
                backoff.reset()
            except Exception as exc:
                if api_status(exc) == 410:
                    log.info("%s watch expired (410 Gone); listing again", kind)
                    version = None
                    continue
                delay = backoff.next()
                log.warning("%s watch failed (%s); retrying in %.1f s", kind, exc, delay)
                stop.wait(delay)

    def run(self, stop: threading.Event) -> None:
        """Watch every kind in its own thread until ``stop`` is set."""
        threads = [
            threading.Thread(target=self.watch, args=(kind, stop), name=f"watch-{kind}", daemon=True)
            for kind in d.PLURALS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _reconcile(self, kind: str, namespace: str, name: str) -> None:
        try:
            outcome = self.reconciler.reconcile(kind, namespace, name)
        except Exception:
            log.exception("reconcile of %s %s/%s failed; retrying at the next resync", kind, namespace, name)
            return
        for verb, child_kind, child_name in outcome.actions:
            log.info("%s %s/%s: %s %s", kind, namespace, name, verb, f"{child_kind}/{child_name}")


class _WatchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"watch error {status}: {message}")
        self.status = status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``operator`` options."""
    parser.add_argument("--namespace", default="", help="watch one namespace (default: all)")
    parser.add_argument("--worker-image", default="", help="worker sidecar image of remote SDK hosts")
    parser.add_argument("--activator-image", default="", help="activator image")
    parser.add_argument("--resync-seconds", type=float, default=300.0, help="list everything again this often")
    parser.add_argument("--once", action="store_true", help="reconcile every resource once and exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Connect to the cluster (in-cluster config, else kubeconfig) and reconcile until SIGTERM.

    Returns:
        0 on a clean stop; 2 when the ``kubernetes`` client is missing.
    """
    try:
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes import watch as kube_watch
    except ImportError:
        print("spawn-celery operator needs the kubernetes client: pip install 'spawn-celery[k8s]'", file=sys.stderr)
        return 2
    config: Any = kube_config  # the client's config and watch modules carry no type hints
    watch: Any = kube_watch
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    custom = client.CustomObjectsApi()
    defaults = d.OperatorDefaults(
        worker_image=args.worker_image or settings.get("SPAWN_OPERATOR_WORKER_IMAGE", WORKER_IMAGE),
        activator_image=args.activator_image or settings.get("SPAWN_OPERATOR_ACTIVATOR_IMAGE", ACTIVATOR_IMAGE),
    )
    reconciler = Reconciler(
        core=client.CoreV1Api(),
        apps=client.AppsV1Api(),
        autoscaling=client.AutoscalingV2Api(),
        custom=custom,
        defaults=defaults,
    )
    namespace = args.namespace or settings.get("SPAWN_OPERATOR_NAMESPACE")

    def list_fn(kind: str) -> Mapping[str, Any]:
        if namespace:
            listing = custom.list_namespaced_custom_object(d.GROUP, d.VERSION, namespace, d.PLURALS[kind])
        else:
            listing = custom.list_cluster_custom_object(d.GROUP, d.VERSION, d.PLURALS[kind])
        return cast(Mapping[str, Any], listing)

    def stream_fn(kind: str, version: str) -> Iterable[Mapping[str, Any]]:
        scope = (namespace,) if namespace else ()
        fn = custom.list_namespaced_custom_object if namespace else custom.list_cluster_custom_object
        timeout = max(1, int(args.resync_seconds))
        events: Iterable[Mapping[str, Any]] = watch.Watch().stream(
            fn,
            d.GROUP,
            d.VERSION,
            *scope,
            d.PLURALS[kind],
            resource_version=version,
            timeout_seconds=timeout,
            allow_watch_bookmarks=True,
        )
        return events

    operator = Operator(reconciler=reconciler, list_fn=list_fn, stream_fn=stream_fn, resync_seconds=args.resync_seconds)
    if args.once:
        for kind in d.PLURALS:
            for item in list_fn(kind).get("items", []):
                operator.handle(kind, "SYNC", item)
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("operator watching %s", namespace or "all namespaces")
    operator.run(stop)
    return 0
