"""The ``Activator`` manifest: load a YAML file, validate it against ``schema.json``, and return plain objects.

The shape follows Spawn's examples (``spec.activator.type``, ``spec.bindings.sources[]``, ``spec.bindings.sinks[]``
with ``binding[].name``) plus our fields, all in ``schema.json``. Every problem is reported at once, each naming its
field path and the fix (the fix texts are the schema's ``description`` strings).
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from spawn_celery.errors import ConfigError, SpawnError

SYSTEM_ANNOTATION = "spawn-eigr.io/actor-system"


class ManifestError(ConfigError):
    """An Activator manifest is unreadable or invalid. ``problems`` lists ``(field path, what to fix)``."""

    def __init__(self, origin: str, problems: list[tuple[str, str]]) -> None:
        """Report every problem of the manifest read from ``origin``."""
        self.variable, self.value, self.origin, self.problems = origin, "", origin, problems
        self.reason = "; ".join(f"{path}: {text}" for path, text in problems)
        lines = "\n".join(f"  - {path}: {text}" for path, text in problems)
        SpawnError.__init__(self, f"activator manifest {origin} is invalid:\n{lines}")


@dataclass(frozen=True)
class Selector:
    """Where a name comes from: a message property or header, a CloudEvent attribute, or a fixed value.

    Attributes:
        strategy: ``metadata``, ``cloudevent`` or ``fixed``.
        value: the property/header/attribute name, or the fixed name.
        prefix: text put before the value (``prefixWith``).
        suffix: text put after the value (``suffixWith``).
    """

    strategy: str
    value: str
    prefix: str = ""
    suffix: str = ""

    def wrap(self, raw: str) -> str:
        """Return ``raw`` with the prefix and suffix."""
        return f"{self.prefix}{raw}{self.suffix}"


@dataclass(frozen=True)
class Source:
    """One event source: a cron schedule (``expr``), a RabbitMQ queue (``queue``) or an HTTP path (``path``)."""

    name: str
    expr: str = ""
    timezone: str = "UTC"
    misfire_grace_time: int = 1
    queue: str = ""
    dead_letter_exchange: str = ""
    dead_letter_queue: str = ""
    content_type: str = "application/json"
    require_message_id: bool = False
    path: str = ""
    method: str = "POST"


@dataclass(frozen=True)
class Sink:
    """One target: ``system/actor.action``, fed by the sources named in ``sources``.

    Attributes:
        name_from: where the instance name comes from (``actor`` is then the unnamed template), or ``None``.
        action_from: where the action comes from, or ``None`` (``action`` is fixed).
        async_mode: send and move on (default) or wait for the answer.
        timeout_s: how long a sync invocation waits (``None``: the settings' default).
        payload: JSON payload of cron invocations (``None``: no payload).
        metadata: metadata added to every invocation.
    """

    name: str
    system: str
    actor: str
    action: str
    sources: tuple[str, ...]
    name_from: Selector | None = None
    action_from: Selector | None = None
    async_mode: bool = True
    timeout_s: float | None = None
    payload: Any = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A validated Activator manifest.

    Attributes:
        name: ``metadata.name``.
        type: ``cron``, ``amqp`` or ``api`` (lower case).
        sources: the sources, in file order.
        sinks: the sinks, in file order.
        settings: ``spec.activator.settings`` as written.
        origin: where it was read from (for messages).
    """

    name: str
    type: str
    sources: tuple[Source, ...]
    sinks: tuple[Sink, ...]
    settings: Mapping[str, Any]
    origin: str = "<manifest>"

    def sinks_of(self, source: str) -> list[Sink]:
        """The sinks bound to the source named ``source``."""
        return [sink for sink in self.sinks if source in sink.sources]


@cache
def schema() -> dict[str, Any]:
    """The JSON schema of Activator manifests (``spawn_celery/activators/schema.json``)."""
    doc: dict[str, Any] = json.loads((Path(__file__).with_name("schema.json")).read_text(encoding="utf-8"))
    return doc


def load(path: str | Path, *, default_system: str = "spawn-system") -> Manifest:
    """Read and validate the manifest at ``path``.

    Raises:
        ManifestError: the file is missing, not YAML, or invalid; the message names each field and its fix.
    """
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror}); pass an existing file with -f"
        raise ManifestError(origin, [("(file)", problem)]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(origin, [(where, f"is not valid YAML ({problem}); fix the syntax")]) from None
    return parse(doc, origin=origin, default_system=default_system)


def parse(doc: Any, *, origin: str = "<manifest>", default_system: str = "spawn-system") -> Manifest:
    """Validate a loaded manifest document and build the :class:`Manifest`.

    Raises:
        ManifestError: listing every problem with its field path and fix.
    """
    errors = sorted(Draft202012Validator(schema()).iter_errors(doc), key=lambda e: (_path(e.absolute_path), e.message))
    problems = list(dict.fromkeys(_explain(error) for error in errors))
    if problems:
        raise ManifestError(origin, problems)
    spec, meta = doc["spec"], doc["metadata"]
    settings: Mapping[str, Any] = spec["activator"].get("settings") or {}
    kind = str(spec["activator"]["type"]).lower()
    grace = int(settings.get("misfireGraceTime", settings.get("misfire_grace_time", 1)))
    zone = str(settings.get("timezone", "UTC"))
    sources = tuple(_source(raw, zone, grace) for raw in spec["bindings"]["sources"])
    system = (meta.get("annotations") or {}).get(SYSTEM_ANNOTATION) or default_system
    sinks = tuple(_sink(raw, system) for raw in spec["bindings"]["sinks"])
    manifest = Manifest(meta["name"], kind, sources, sinks, settings, origin)
    if problems := _cross_check(manifest, spec):
        raise ManifestError(origin, problems)
    return manifest


def _source(raw: Mapping[str, Any], zone: str, grace: int) -> Source:
    queue = str(raw.get("queue", ""))
    return Source(
        name=raw["name"],
        expr=" ".join(str(raw.get("expr", "")).split()),
        timezone=str(raw.get("timezone", zone)),
        misfire_grace_time=int(raw.get("misfireGraceTime", grace)),
        queue=queue,
        dead_letter_exchange=str(raw.get("deadLetterExchange") or (queue + ".dlx" if queue else "")),
        dead_letter_queue=str(raw.get("deadLetterQueue") or (queue + ".dlq" if queue else "")),
        content_type=str(raw.get("contentType", "application/json")),
        require_message_id=bool(raw.get("requireMessageId", False)),
        path=str(raw.get("path", "")),
        method=str(raw.get("method", "POST")),
    )


def _selector(raw: Mapping[str, Any] | None) -> Selector | None:
    if raw is None:
        return None
    return Selector(raw["strategy"], raw["value"], str(raw.get("prefixWith", "")), str(raw.get("suffixWith", "")))


def _sink(raw: Mapping[str, Any], system: str) -> Sink:
    timeout = raw.get("timeoutMs")
    return Sink(
        name=raw["name"],
        system=str(raw.get("system") or system),
        actor=raw["actor"],
        action=str(raw.get("action") or raw.get("command") or ""),
        sources=tuple(ref["name"] for ref in raw["binding"]),
        name_from=_selector(raw.get("nameFrom")),
        action_from=_selector(raw.get("actionFrom")),
        async_mode=bool(raw.get("async", True)),
        timeout_s=timeout / 1000.0 if timeout else None,
        payload=raw.get("payload"),
        metadata=dict(raw.get("metadata") or {}),
    )


def _cross_check(manifest: Manifest, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the schema cannot say: unique names, bindings that name real sources, known time zones."""
    problems: list[tuple[str, str]] = []
    names = [source.name for source in manifest.sources]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(
                (f"spec.bindings.sources[{i}].name", f"{name!r} is used twice; give each source its own name")
            )
    sink_names = [sink.name for sink in manifest.sinks]
    for i, sink in enumerate(manifest.sinks):
        if sink.name in sink_names[:i]:
            problems.append(
                (f"spec.bindings.sinks[{i}].name", f"{sink.name!r} is used twice; give each sink its own name")
            )
        for j, ref in enumerate(sink.sources):
            if ref not in names:
                problems.append(
                    (f"spec.bindings.sinks[{i}].binding[{j}].name", f"{ref!r} names no source; use one of {names}")
                )
    bound = {ref for sink in manifest.sinks for ref in sink.sources}
    for i, source in enumerate(manifest.sources):
        if source.name not in bound:
            problems.append(
                (
                    f"spec.bindings.sources[{i}]",
                    f"{source.name!r} feeds no sink; bind it in a sink's `binding` or remove it",
                )
            )
        if manifest.type == "cron":
            try:
                zoneinfo.ZoneInfo(source.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                where = (
                    "timezone" if "timezone" in spec["bindings"]["sources"][i] else "(spec.activator.settings.timezone)"
                )
                problems.append(
                    (
                        f"spec.bindings.sources[{i}].{where}",
                        f"{source.timezone!r} is not a known time zone; use e.g. UTC",
                    )
                )
    return problems


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _explain(error: ValidationError) -> tuple[str, str]:
    """Turn a schema error into ``(field path, what is wrong and how to fix it)``."""
    path = _path(error.absolute_path)
    schema_here: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    props: Mapping[str, Any] = schema_here.get("properties", {})
    hint = str(schema_here.get("description", ""))
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        fix = str(props.get(missing, {}).get("description", "")) or "see docs/activators.md"
        prefix = f"{path}.{missing}" if path != "(top level)" else missing
        return prefix, f"is missing; add it ({fix})"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(props)) if isinstance(error.instance, Mapping) else []
        where = f"{path}.{extra[0]}" if extra and path != "(top level)" else (extra[0] if extra else path)
        return where, f"is not a known field; remove it or fix its spelling (allowed here: {', '.join(props)})"
    if error.validator == "anyOf" and all("required" in alt for alt in error.validator_value):
        options = " or ".join(f"`{alt['required'][0]}`" for alt in error.validator_value)
        return path, f"needs {options}; add e.g. `action: increment`"
    shown = (
        json.dumps(error.instance)[:60]
        if not isinstance(error.instance, (dict, list))
        else type(error.instance).__name__
    )
    if error.validator == "type":
        return path, f"is {shown}, not of type {error.validator_value}; expected {hint or error.validator_value}"
    if error.validator in ("minItems", "minLength") and not error.instance:
        return path, f"is empty; expected {hint or error.message}"
    if error.validator in ("const", "enum", "pattern", "minimum", "maximum", "minLength", "minItems"):
        return path, f"is {shown}; expected {hint or error.message}"
    return path, f"{error.message}; {hint}" if hint else str(error.message)
