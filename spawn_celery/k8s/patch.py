"""JSON merge patches (RFC 7386) computed the way ``kubectl apply`` does it, without a cluster.

The operator owns a subset of each child object; the API server adds defaults and other controllers add status.
So "in sync" means *the live object contains the desired one* (:func:`contains`), and the patch to send is a
three-way diff (:func:`three_way_patch`) of live, desired and the last desired state we applied (kept in the
annotation :data:`LAST_APPLIED`), so that a field we stop setting is removed rather than left behind.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

LAST_APPLIED = "spawn-eigr.io/last-applied"
"""Annotation holding the JSON of the desired object we last applied."""
MERGE_PATCH = "application/merge-patch+json"

_MISSING = object()


def contains(live: Any, desired: Any) -> bool:
    """Return whether ``live`` holds everything ``desired`` sets (extra keys in live, e.g. defaults, are fine).

    Lists must have the same length and contain each other element by element.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    return bool(live == desired)


def with_last_applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``desired`` whose metadata records itself in :data:`LAST_APPLIED`."""
    result = copy.deepcopy(dict(desired))
    meta = result.setdefault("metadata", {})
    meta.setdefault("annotations", {})[LAST_APPLIED] = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    return result


def last_applied(live: Mapping[str, Any]) -> dict[str, Any]:
    """Return the desired object recorded on ``live`` (empty when none or unreadable)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def three_way_patch(live: Mapping[str, Any], desired: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, Any]:
    """Return the merge patch that makes ``live`` contain ``desired`` and drops what only ``last`` set.

    Args:
        live: The object as the API server returned it.
        desired: What we want (including the :data:`LAST_APPLIED` annotation).
        last: What we applied last time (from the annotation); ``{}`` when unknown.

    Returns:
        A JSON merge patch; empty when nothing needs to change.
    """
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = live.get(key, _MISSING)
        prev = last.get(key, _MISSING)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = three_way_patch(have, want, prev if isinstance(prev, Mapping) else {})
            if sub:
                patch[key] = sub
        elif have is _MISSING or not contains(have, want) or (isinstance(want, list) and prev not in (_MISSING, want)):
            patch[key] = want
    for key in last:
        if key not in desired and key in live:
            patch[key] = None
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the result (inputs are not modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def prune_none(value: Any) -> Any:
    """Return ``value`` without None members (a client model's dict form carries every unset field as None)."""
    if isinstance(value, Mapping):
        return {str(k): prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [prune_none(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
