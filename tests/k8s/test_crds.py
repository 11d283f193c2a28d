"""Our CRDs: valid, structural, Namespaced, Spawn's names, Spawn's schema/code mismatches fixed; CRs checked."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.k8s.support import K8S, cr_errors, crd, crd_schema, k8s_error, load_docs, structural_problems

KINDS = {
    "ActorSystem": ["as", "actorsys", "system"],
    "ActorHost": ["ac", "ah", "actor", "actors", "hosts"],
    "Activator": ["act", "acts"],
}


def _examples() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted((K8S / "examples").glob("*.yaml")):
        for doc in load_docs(path):
            docs.setdefault(f"{path.stem}:{doc['kind']}", doc)
    return docs


@pytest.mark.parametrize("kind", KINDS)
def test_crd_is_valid_namespaced_and_named_as_in_spawn(kind: str) -> None:
    definition = crd(kind)
    assert k8s_error(definition) is None
    spec = definition["spec"]
    assert (spec["group"], spec["scope"]) == ("spawn-eigr.io", "Namespaced")
    assert spec["names"]["shortNames"] == KINDS[kind]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}
    assert definition["metadata"]["name"] == f"{spec['names']['plural']}.spawn-eigr.io"


@pytest.mark.parametrize("kind", KINDS)
def test_crd_schema_is_structural_with_valid_defaults(kind: str) -> None:
    schema = crd_schema(kind)
    assert structural_problems(schema) == []
    assert "spec" in schema["required"]
    assert schema["properties"]["spec"]["properties"]  # a real schema, not preserve-unknown-fields


def test_spawn_schema_mismatches_are_fixed() -> None:
    host = crd_schema("ActorHost")["properties"]["spec"]["properties"]
    assert "pullSecretRef" in host["host"]["properties"]  # the name the code reads
    assert "terminationGracePeriodSeconds" in host
    store = crd_schema("ActorSystem")["properties"]["spec"]["properties"]["statestore"]["properties"]
    assert {"ssl", "sslVerify"} <= store.keys()
    assert {"MySql", "MariaDB", "Postgres", "SQLite"} <= set(store["type"]["enum"])
    activator = crd_schema("Activator")["properties"]["spec"]["properties"]
    assert {"activator", "bindings"} <= activator.keys()


@pytest.mark.parametrize("name", list(_examples()))
def test_example_resources_match_their_crd(name: str) -> None:
    doc = _examples()[name]
    if doc["apiVersion"].startswith("spawn-eigr.io/"):
        assert cr_errors(doc) == []
    else:
        assert k8s_error(doc) is None


def _broken(name: str, path: list[Any], value: Any) -> list[str]:
    doc = copy.deepcopy(_examples()[name])
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cr_errors(doc)


_DELETE = object()


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("actorhost-python:ActorHost", ["spec", "host", "image"], _DELETE),
        ("actorhost-python:ActorHost", ["spec", "host", "imagee"], "typo"),
        ("actorhost-python:ActorHost", ["spec", "autoscaler", "averageCpuUtilizationPercentage"], 0),
        ("actorhost-python:ActorHost", ["spec", "host", "app"], "not a module path"),
        ("actorhost-remote:ActorHost", ["spec", "host", "sdk"], "cobol"),
        ("actorsystem:ActorSystem", ["spec", "statestore", "type"], "Oracle"),
        ("actorsystem:ActorSystem", ["spec", "statestore", "pool", "size"], "ten"),
        ("actorsystem:ActorSystem", ["spec", "statestore", "credentialsSecretRef"], _DELETE),
        ("activator-cron:Activator", ["spec", "activator", "type"], "gRPC"),
        ("activator-cron:Activator", ["spec", "bindings", "sinks", 0, "action"], _DELETE),
        ("activator-cron:Activator", ["spec", "bindings", "sources"], []),
        ("activator-cron:Activator", ["spec", "activator", "kind"], "daemonset"),
    ],
)
def test_bad_resources_are_rejected(name: str, path: list[Any], value: Any) -> None:
    assert _broken(name, path, value) != []


def test_spawn_spellings_are_accepted() -> None:
    # Spawn's examples: pool size as a string, the deprecated pullSecretsRef, ssl_verify, a sink's `command`
    assert _broken("actorsystem:ActorSystem", ["spec", "statestore", "pool", "size"], "10") == []
    assert _broken("actorsystem:ActorSystem", ["spec", "statestore", "ssl_verify"], True) == []
    assert _broken("actorhost-remote:ActorHost", ["spec", "host", "pullSecretsRef"], "old-name") == []
    sink = {"name": "s", "actor": "robert", "command": "setLanguage", "binding": [{"name": "every-minute"}]}
    assert _broken("activator-cron:Activator", ["spec", "bindings", "sinks"], [sink]) == []


def _activator_manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted([*K8S.rglob("*.yaml"), *(K8S.parent / "activators").glob("*.yaml")]):
        for doc in load_docs(path):
            if doc.get("kind") == "Activator":
                found.append((str(path.relative_to(K8S.parent)), doc))
    return found


@pytest.mark.parametrize(("path", "doc"), _activator_manifests(), ids=[p for p, _ in _activator_manifests()])
def test_activator_manifests_pass_both_the_crd_and_the_activators_schema(path: str, doc: dict[str, Any]) -> None:
    # The operator deploys what the CRD admits, and the activator process then validates it with its own schema:
    # a manifest that passes one must pass the other.
    from spawn_celery.activators.manifest import schema

    assert cr_errors(doc) == []
    assert [e.message for e in jsonschema.Draft202012Validator(schema()).iter_errors(doc)] == []
