"""Offline checks shared by the Kubernetes, compose and image tests.

- :func:`k8s_error`: validate one object with kubernetes-validate (strict: unknown fields fail) against the newest
  Kubernetes schema it ships (1.37).
- :func:`assemble`: a kustomize-lite build of a kustomization directory (resources, components, generators,
  ``$patch: delete``, namespace) without hash suffixes, enough to check references between objects.
- :func:`cr_errors` / :func:`structural_problems`: our custom resources against our CRDs' openAPIV3Schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
K8S_VERSION = "1.37.0"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
KUSTOMIZE_FILES = {"kustomization.yaml"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Return the non-empty YAML documents of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files(root: Path = K8S) -> Iterator[Path]:
    """Yield every YAML file under ``root`` that is not a kustomization."""
    for path in sorted(root.rglob("*.yaml")):
        if path.name not in KUSTOMIZE_FILES:
            yield path


def k8s_error(obj: dict[str, Any]) -> str | None:
    """Return None when ``obj`` is valid, ``"no schema"`` for kinds the validator does not know, else the error."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return "no schema"
    except kubernetes_validate.ValidationError as exc:  # a jsonschema.ValidationError with the same fields
        path = "/".join(str(p) for p in exc.absolute_path)
        return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {path}: {exc.message}"
    return _semantic_error(obj)


_TARGET_FIELD = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}


def _semantic_error(obj: dict[str, Any]) -> str | None:
    """Rules the API server enforces beyond the schema, where a manifest can be well-formed and still refused."""
    if obj.get("kind") == "HorizontalPodAutoscaler":
        spec = obj["spec"]
        if spec.get("minReplicas", 1) > spec["maxReplicas"]:
            return "HPA minReplicas > maxReplicas"
        for metric in spec.get("metrics", []):
            target = metric.get(metric["type"].lower()[0] + metric["type"][1:], {}).get("target", {})
            fields = set(target) - {"type"}
            if fields != {_TARGET_FIELD[target["type"]]}:  # Spawn's operator wrote averageUtilization for AverageValue
                return f"HPA target {target} must set exactly {_TARGET_FIELD[target['type']]}"
    return None


def assemble(directory: Path) -> list[dict[str, Any]]:
    """Build a kustomization the way kustomize would, minus name hashes and non-delete patches."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []) + spec.get("components", []):
        path = directory / entry
        docs += assemble(path) if path.is_dir() else load_docs(path)
    options = spec.get("generatorOptions", {})
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in spec.get(key, []):
            docs.append(_generate(kind, directory, generator, options))
    for patch in spec.get("patches", []):
        body = yaml.safe_load(patch.get("patch", "")) if isinstance(patch.get("patch"), str) else None
        if isinstance(body, dict) and body.get("$patch") == "delete":
            target = patch["target"]
            docs = [d for d in docs if (d["kind"], d["metadata"]["name"]) != (target["kind"], target["name"])]
    if spec.get("namespace"):
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


def _generate(kind: str, directory: Path, generator: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for entry in generator.get("files", []):
        key, _, rel = entry.partition("=")
        data[key] = (directory / rel).read_text()
    labels = {**options.get("labels", {}), **generator.get("options", {}).get("labels", {})}
    meta: dict[str, Any] = {"name": generator["name"]}
    if labels:
        meta["labels"] = labels
    field = "stringData" if kind == "Secret" else "data"
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, field: data}


def crd(kind: str) -> dict[str, Any]:
    """Return our CustomResourceDefinition of ``kind``."""
    for path in (K8S / "crds").glob("*.yaml"):
        for doc in load_docs(path):
            if doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
                return doc
    raise LookupError(kind)


def crd_schema(kind: str) -> dict[str, Any]:
    """Return the openAPIV3Schema of our CRD for ``kind`` (version v1)."""
    (version,) = crd(kind)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` rejecting unknown fields where the API server would prune them (field validation Strict)."""
    node = copy.deepcopy(schema)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("additionalProperties", False)
    for key in ("properties",):
        for name, sub in node.get(key, {}).items():
            if name == "metadata" and sub == {"type": "object"}:
                continue
            node[key][name] = strict(sub)
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    return node


def cr_errors(doc: dict[str, Any]) -> list[str]:
    """Return the schema errors of one of our custom resources (empty when valid)."""
    validator = jsonschema.Draft7Validator(strict(crd_schema(doc["kind"])))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def structural_problems(node: dict[str, Any], path: str = "") -> list[str]:
    """Return the ways ``node`` breaks Kubernetes' structural-schema rules (the subset that can go wrong here)."""
    problems: list[str] = []
    int_or_string = node.get("x-kubernetes-int-or-string")
    if "type" not in node and not int_or_string:
        problems.append(f"{path or '/'}: no type")
    if int_or_string and "type" in node:
        problems.append(f"{path}: int-or-string must not set a type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        if not keys or not set(keys) <= set(node["items"].get("required", [])):
            problems.append(f"{path}: list-type map needs required list-map-keys")
    if "default" in node:
        sub = {k: v for k, v in node.items() if k != "default"}
        for error in jsonschema.Draft7Validator(sub).iter_errors(node["default"]):
            problems.append(f"{path}: default {node['default']!r} invalid: {error.message}")
    for junctor in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(junctor, []):
            if "properties" in branch or ("type" in branch and not int_or_string):
                problems.append(f"{path}: {junctor} branches may not declare types or properties")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}/{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}/*")
    return problems
