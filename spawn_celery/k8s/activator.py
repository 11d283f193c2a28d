"""What an Activator becomes: a ConfigMap holding its manifest and a Deployment running the activator process.

Used by ``spawn-celery k8s render`` (manifest files) and by the operator (``Activator`` resources). ``Cron`` runs
``spawn-celery activator cron``, 2 replicas by default (a Redis lock per fire time makes each fire happen once);
``AMQP`` runs ``spawn-celery activator rabbitmq``; ``Api`` needs no pod: the gateway's JSON route serves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from spawn_celery.errors import ConfigError
from spawn_celery.k8s import objects as o
from spawn_celery.k8s.desired import (
    API_VERSION,
    MANAGER,
    SYSTEM_ANNOTATION,
    OperatorDefaults,
    config_map_name,
    system_env,
    system_settings,
)


def activator_command(manifest: Mapping[str, Any]) -> str:
    """Return the ``spawn-celery activator`` subcommand for a manifest (``cron`` or ``rabbitmq``).

    Raises:
        ValueError: the type has no activator process (``Api`` is served by the gateway) or is unknown.
    """
    kind = str(manifest.get("spec", {}).get("activator", {}).get("type", "")).lower()
    commands = {"cron": "cron", "amqp": "rabbitmq"}
    if kind not in commands:
        raise ValueError(f"activator type {kind or '<missing>'!r} has no activator process (use Cron or AMQP)")
    return commands[kind]


def activator_pod(
    *, image: str, command: str, config_map: str, env_sources: list[o.Manifest], grace: int = 30
) -> o.Manifest:
    """Return the pod spec of an activator reading its manifest from the ConfigMap ``config_map``."""
    tmp, tmp_mount = o.tmp_volume()
    container = {
        "name": "activator",
        "image": image,
        "command": ["spawn-celery"],
        "args": ["activator", command, "-f", o.ACTIVATOR_MANIFEST_PATH],
        "envFrom": env_sources,
        "resources": o.default_resources(cpu="100m", memory="128Mi", memory_limit="256Mi"),
        "securityContext": o.container_security(),
        "volumeMounts": [tmp_mount, {"name": "manifest", "mountPath": "/etc/spawn", "readOnly": True}],
    }
    manifest_volume = {"name": "manifest", "configMap": {"name": config_map}}
    return o.pod_spec([container], [tmp, manifest_volume], grace)


def activator_workload(
    manifest: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    obj_labels: Mapping[str, str],
    image: str,
    env_sources: list[o.Manifest],
    env: list[o.Manifest] | None = None,
    config_hash: str = "",
    owners: list[o.Manifest] | None = None,
) -> list[o.Manifest]:
    """Return the ConfigMap holding ``manifest`` and the Deployment running it (Cron: 2 replicas by default).

    Raises:
        ConfigError: the type has no activator process, or a source or binding is wrong; names the field.
    """
    settings = manifest.get("spec", {}).get("activator") or {}
    try:
        command = activator_command(manifest)
    except ValueError as exc:
        raise ConfigError("spec.activator.type", str(settings.get("type", "")), str(exc)) from None
    check_bindings(manifest["spec"], command)
    text = yaml.safe_dump(dict(manifest), sort_keys=False)
    pod = activator_pod(image=image, command=command, config_map=name, env_sources=env_sources)
    if env:
        pod["containers"][0]["env"] = env
    cm = o.config_map(name, namespace, obj_labels, {"activator.yaml": text})
    if owners:
        cm["metadata"]["ownerReferences"] = owners
    deployment = o.deployment(
        name=name,
        namespace=namespace,
        obj_labels=obj_labels,
        pod_spec=pod,
        replicas=int(settings.get("replicas", 2 if command == "cron" else 1)),
        pod_annotations={o.CHECKSUM_ANNOTATION: o.checksum(config_hash, text)},
        owner_references=owners,
    )
    return [cm, deployment]


def activator_objects(
    activator: Mapping[str, Any], system: Mapping[str, Any], defaults: OperatorDefaults
) -> list[o.Manifest]:
    """Return the manifest ConfigMap and Deployment of an Activator (none for ``Api``: the gateway serves it)."""
    meta, spec = activator["metadata"], activator.get("spec", {})
    settings = spec.get("activator") or {}
    if str(settings.get("type", "")).lower() == "api":
        return []
    system_name = system["metadata"]["name"]
    name = f"{meta['name']}-activator"
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "Activator",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "annotations": {SYSTEM_ANNOTATION: system_name},
        },
        "spec": spec,
    }
    sources = o.env_from(config_map_name(system_name))
    amqp_secret = settings.get("paramsSecretRef") or (settings.get("settings") or {}).get("credentialsSecretRef")
    if amqp_secret:
        sources.append({"prefix": "SPAWN_AMQP_", "secretRef": {"name": amqp_secret}})
    return activator_workload(
        manifest,
        name=name,
        namespace=meta["namespace"],
        obj_labels={**o.labels(name, "activator", system_name), o.MANAGED_BY_LABEL: MANAGER},
        image=str(settings.get("image") or defaults.activator_image),
        env_sources=sources,
        env=system_env(system, statestore=False),
        config_hash=o.checksum(system_settings(system)),
        owners=[o.owner_reference(activator)],
    )


def check_bindings(spec: Mapping[str, Any], command: str) -> None:
    """Check what the CRD schema cannot: per-type source fields and sink bindings that name real sources.

    Raises:
        ConfigError: naming the offending field.
    """
    bindings = spec.get("bindings") or {}
    sources = bindings.get("sources") or []
    needed = "expr" if command == "cron" else "queue"
    for i, source in enumerate(sources):
        if not source.get(needed):
            raise ConfigError(f"spec.bindings.sources[{i}].{needed}", "", f"is required for a {command} activator")
    names = {s.get("name") for s in sources}
    for i, sink in enumerate(bindings.get("sinks") or []):
        for j, ref in enumerate(sink.get("binding") or []):
            if ref.get("name") not in names:
                raise ConfigError(
                    f"spec.bindings.sinks[{i}].binding[{j}].name",
                    str(ref.get("name")),
                    f"names no source; sources are {sorted(str(n) for n in names)}",
                )
