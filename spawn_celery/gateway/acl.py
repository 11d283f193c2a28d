"""The ACL policy file: allow/deny rules from a caller to a target, enforced on the target at the gateway.

A YAML file (``SPAWN_ACL_FILE``)::

    default: deny            # what happens when no rule matches (default: deny)
    policies:
      - name: reporting-reads
        type: allow          # or deny; a matching deny always wins over any allow
        principals: [alice]  # authenticated user (Basic) or JWT ``sub``; default any
        from_systems: ["*"]  # InvocationRequest.caller.system; default any
        from_actors: ["*"]   # InvocationRequest.caller.name; default any
        systems: [shop]      # target actor system; default any
        actors: ["cart-*"]   # target actor (instance) name; default any
        actions: [get, sum]  # target action; default any

Patterns are shell-style (``fnmatch``). Unlike Spawn (spawn-protocol.md 6.1 and 13.14) the target is checked,
lists are real YAML lists, and a denial is a 403 answer, not a crashed actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from spawn_celery.errors import ConfigError, Forbidden

_FIELDS = ("principals", "from_systems", "from_actors", "systems", "actors", "actions")
_ALIASES = {"fromActorSystems": "from_systems", "actor_systems": "systems", "effect": "type"}


@dataclass(frozen=True)
class Call:
    """Who calls what: the subject of one ACL decision."""

    principal: str
    from_system: str
    from_actor: str
    system: str
    actor: str
    action: str


@dataclass(frozen=True)
class Rule:
    """One policy: ``allow`` or ``deny`` when every listed field matches."""

    name: str
    allow: bool
    patterns: tuple[tuple[str, ...], ...]

    def matches(self, call: Call) -> bool:
        """Whether every field of ``call`` matches one of this rule's patterns."""
        values = (call.principal, call.from_system, call.from_actor, call.system, call.actor, call.action)
        return all(any(fnmatchcase(v, p) for p in pats) for v, pats in zip(values, self.patterns, strict=True))


class Policy:
    """A set of rules and a default; ``Policy()`` allows everything (no file configured)."""

    def __init__(self, rules: tuple[Rule, ...] = (), *, default_allow: bool = True) -> None:
        """Use ``rules``; ``default_allow`` decides calls no rule matches."""
        self.rules = rules
        self.default_allow = default_allow

    @classmethod
    def load(cls, path: str) -> Policy:
        """Read a policy file ("" means allow all).

        Raises:
            ConfigError: unreadable file or a malformed rule; the message names it.
        """
        if not path:
            return cls()
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError("SPAWN_ACL_FILE", path, f"cannot read the policy file: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("policies", []), list):
            raise ConfigError("SPAWN_ACL_FILE", path, "must be a mapping with a 'policies' list")
        default = str(doc.get("default", "deny")).lower()
        if default not in ("allow", "deny"):
            raise ConfigError("SPAWN_ACL_FILE", path, f"default must be allow or deny, not {default!r}")
        rules = tuple(_rule(path, i, item) for i, item in enumerate(doc.get("policies", [])))
        return cls(rules, default_allow=default == "allow")

    def check(self, call: Call) -> None:
        """Allow ``call`` or raise.

        Raises:
            Forbidden: a deny rule matches, or no allow rule matches and the default is deny.
        """
        allowed = self.default_allow
        matched = ""
        for rule in self.rules:
            if rule.matches(call):
                if not rule.allow:
                    raise Forbidden(f"ACL policy {rule.name!r} denies {_describe(call)}")
                allowed, matched = True, rule.name
        if not allowed:
            raise Forbidden(f"no ACL policy allows {_describe(call)}")
        del matched


def _describe(call: Call) -> str:
    who = call.principal or "anonymous"
    caller = f"{call.from_system}/{call.from_actor}" if call.from_actor else "an external caller"
    return f"{who} ({caller}) calling {call.system}/{call.actor}.{call.action}"


def _rule(path: str, index: int, item: Any) -> Rule:
    if not isinstance(item, dict):
        raise ConfigError("SPAWN_ACL_FILE", path, f"policy #{index} must be a mapping")
    item = {_ALIASES.get(k, k): v for k, v in item.items()}
    name = str(item.get("name", f"#{index}"))
    kind = str(item.get("type", "allow")).lower()
    if kind not in ("allow", "deny"):
        raise ConfigError("SPAWN_ACL_FILE", path, f"policy {name!r}: type must be allow or deny, not {kind!r}")
    unknown = set(item) - {"name", "type", *_FIELDS}
    if unknown:
        raise ConfigError("SPAWN_ACL_FILE", path, f"policy {name!r}: unknown keys {sorted(unknown)}")
    patterns = []
    for field in _FIELDS:
        value = item.get(field, ["*"])
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ConfigError("SPAWN_ACL_FILE", path, f"policy {name!r}: {field} must be a string or a list of strings")
        patterns.append(tuple(values))
    return Rule(name, kind == "allow", tuple(patterns))
