"""Percentiles, the results table and the JSON record."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any


def pct(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples`` (nearest rank)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/mean in ms and calls/s of sequential calls."""
    return {
        "n": len(samples_s),
        "p50_ms": pct(samples_s, 0.5) * 1000,
        "p99_ms": pct(samples_s, 0.99) * 1000,
        "mean_ms": statistics.fmean(samples_s) * 1000 if samples_s else float("nan"),
        "per_s": len(samples_s) / sum(samples_s) if samples_s else float("nan"),
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points."""
    if len(points) < 2:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def table(rows: list[dict[str, Any]]) -> str:
    """Render result rows as a Markdown table."""
    head = ["scenario", "ours", "raw Celery", "ratio", "target", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = r.get("ratio")
        lines.append("| " + " | ".join([
            r["scenario"], r.get("ours", ""), r.get("raw", ""),
            f"{ratio:.2f}" if isinstance(ratio, float) else str(ratio or ""),
            r.get("target", ""), {True: "yes", False: "NO", None: ""}[r.get("ok")],
        ]) + " |")
    return "\n".join(lines)


def write_json(directory: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` to ``directory/bench-<time>.json`` and ``latest.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / time.strftime("bench-%Y%m%d-%H%M%S.json")
    text = json.dumps(doc, indent=2, sort_keys=True, default=str)
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
