"""Run every benchmark in one go: ``.venv/bin/python -m bench.run [--quick]``.

Starts its own workers (real subprocesses): a plain Celery worker for the raw baseline (Redis db 7) and a
``spawn-celery worker`` hosting :mod:`bench.actors` (Redis db 6), both with the same prefork concurrency on the same
Redis server. Prints a table of p50/p99/throughput with ratios and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench import commands, gateway, procs, scenarios, stats
from bench.raw import create_app
from spawn_celery.client import Client
from spawn_celery.services import Services
from tests.support import WorkerProcess, make_settings

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"sync": 2000, "events": 500, "gateway": 1000, "hot": 5000, "distinct": 10_000, "scale": 100_000, "sample": 300,
        "rss": 20_000, "rss_chunk": 2500, "keys_wait": 120}
QUICK = {"sync": 400, "events": 100, "gateway": 200, "hot": 1000, "distinct": 2000, "scale": 10_000, "sample": 100,
         "rss": 6000, "rss_chunk": 1000, "keys_wait": 60}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (under a minute)")
    parser.add_argument("--concurrency", "-c", type=int, default=2, help="prefork processes per worker (both)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (dbs 6 and 7 are used)")
    parser.add_argument("--only", default="", help="comma-separated scenarios: sync,events,hot,distinct,scale,rss,keys")
    args = parser.parse_args(argv)
    p = QUICK if args.quick else FULL
    only = set(filter(None, args.only.split(",")))

    def want(step: str) -> bool:
        return not only or step in only

    tmp = Path(tempfile.mkdtemp(prefix="spawn-bench-"))
    settings = make_settings(tmp, redis_db=6, tick_ms=50, redis_url=f"{args.redis}/6")
    raw_url = f"{args.redis}/7"
    ours_redis, raw_redis = redis.Redis.from_url(settings.redis_url), redis.Redis.from_url(raw_url)
    ours_redis.flushdb()
    raw_redis.flushdb()
    raw_worker = procs.RawWorker(raw_url, args.concurrency, tmp / "raw-worker.log").start()
    ours_worker = WorkerProcess(settings, app="bench.actors:system", concurrency=args.concurrency,
                                log_path=tmp / "worker.log").start()
    b = scenarios.Bench(
        client=Client(services=Services.create(settings)), ours_redis=ours_redis, raw_app=create_app(raw_url),
        raw_redis=raw_redis, ours_pids=ours_worker.pool_pids, raw_pids=raw_worker.pool_pids,
    )
    results: dict[str, Any] = {}
    began = time.monotonic()
    try:
        steps = [
            ("sync", lambda: scenarios.sync_latency(b, p["sync"])),
            ("events", lambda: scenarios.raw_with_events(b, p["events"], p["hot"])),
            ("commands", lambda: commands.count(
                args.redis, {"ours": 6, "raw": 7},
                {"ours": lambda: b.ours_sync("sync-1"), "raw": lambda: b.raw_sync("raw:sync-1")}, 200)),
            ("hot", lambda: scenarios.hot_actor(b, p["hot"])),
            ("distinct", lambda: scenarios.distinct_actors(b, p["distinct"])),
            ("scale", lambda: scenarios.scale(b, p["scale"], p["sample"])),
            ("rss", lambda: scenarios.rss_growth(b, p["rss"], p["rss_chunk"])),
            ("gateway", lambda: gateway.invoke_p50(b, settings, tmp, p["gateway"])),
            ("noevents", lambda: scenarios.events_off(b, p["events"], p["hot"])),
            ("keys", lambda: scenarios.keys_after_deactivation(b, p["keys_wait"])),
        ]
        for name, step in steps:
            if want(name):
                t0 = time.monotonic()
                print(f"[bench] {name} ...", file=sys.stderr, flush=True)
                results[name] = step()
                print(f"[bench] {name} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        ours_worker.stop()
        raw_worker.stop()
    rows = build_rows(results)
    doc = {"params": p, "quick": args.quick, "concurrency": args.concurrency, "seconds": time.monotonic() - began,
           "python": platform.python_version(), "machine": platform.platform(), "results": results, "rows": rows,
           "redis_version": ours_redis.info("server")["redis_version"], "logs": str(tmp)}
    path = stats.write_json(RESULTS, doc)
    print(stats.table(rows))
    print(f"\n{len(rows)} rows in {doc['seconds']:.0f} s; JSON: {path}; worker logs: {tmp}")
    return 0


def ms(x: float) -> str:
    return f"{x:.2f} ms"


def build_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "sync" in r:
        o, w = r["sync"]["ours"], r["sync"]["raw"]
        ratio = o["p50_ms"] / w["p50_ms"]
        rows.append({"scenario": "sync invoke p50 (1 actor)", "ours": ms(o["p50_ms"]), "raw": ms(w["p50_ms"]),
                     "ratio": ratio, "target": "<= 1.15 (moonshot 1.0)", "ok": ratio <= 1.15})
        rows.append({"scenario": "sync invoke p99", "ours": ms(o["p99_ms"]), "raw": ms(w["p99_ms"]),
                     "ratio": o["p99_ms"] / w["p99_ms"], "target": "(info)", "ok": None})
        rows.append({"scenario": "sync calls/s (one caller)", "ours": f"{o['per_s']:.0f}/s",
                     "raw": f"{w['per_s']:.0f}/s", "ratio": o["per_s"] / w["per_s"], "target": "(info)", "ok": None})
        if "events" in r:
            eo, er = r["events"]["ours"], r["events"]["raw"]
            rows.append({"scenario": "sync p50 vs raw Celery WITH events (-E)", "ours": ms(eo["p50_ms"]),
                         "raw": ms(er["p50_ms"]), "ratio": eo["p50_ms"] / er["p50_ms"], "target": "(info)", "ok": None})
            eh = r["events"].get("hot")
            if eh:
                rows.append({"scenario": "one hot actor, updates/s vs raw Celery WITH events (-E)",
                             "ours": f"{eh['ours']['per_s']:.0f}/s", "raw": f"{eh['raw']['per_s']:.0f}/s",
                             "ratio": eh["ours"]["per_s"] / eh["raw"]["per_s"], "target": "(info)", "ok": None})
    if "commands" in r:
        o, w = r["commands"]["ours"], r["commands"]["raw"]
        rows.append({"scenario": "Redis commands per sync call (+ inside Lua)",
                     "ours": f"{o['commands_per_call']} (+{o['lua_per_call']})",
                     "raw": f"{w['commands_per_call']} (+{w['lua_per_call']})",
                     "ratio": o["commands_per_call"] / w["commands_per_call"], "target": "(info)", "ok": None})
    gateway_rows = (
        ("gunicorn", "", "gateway protobuf invoke p50 (gunicorn, stdlib http.client)", "<= 1.5"),
        ("gunicorn", "requests", "gateway p50 (gunicorn, requests.Session client)", "(info)"),
        ("dev", "", "gateway p50 (spawn-celery gateway dev server, stdlib client)", "(info)"),
    )
    for server, client, label, target in gateway_rows:
        if server in r.get("gateway", {}):
            found = r["gateway"][server]
            o, w = (found[client]["ours"], found[client]["raw"]) if client else (found["ours"], found["raw"])
            ratio = o["p50_ms"] / w["p50_ms"]
            rows.append({"scenario": label, "ours": ms(o["p50_ms"]), "raw": ms(w["p50_ms"]), "ratio": ratio,
                         "target": target, "ok": ratio <= 1.5 if target != "(info)" else None})
    throughput = (("hot", "one hot actor, updates/s", 1.0), ("distinct", "distinct actors, invocations/s", 0.8))
    for key, label, target in throughput:
        if key in r:
            o, w = r[key]["ours"], r[key]["raw"]
            ratio = o["per_s"] / w["per_s"]
            rows.append({"scenario": f"{label} (n={o['n']})", "ours": f"{o['per_s']:.0f}/s",
                         "raw": f"{w['per_s']:.0f}/s", "ratio": ratio, "target": f">= {target}", "ok": ratio >= target})
            if key == "hot":
                rows.append({"scenario": "hot actor final value (expected)",
                             "ours": f"{o['final_value']} ({o['expected']})",
                             "raw": f"{w['final_value']} ({w['expected']})",
                             "ratio": "", "target": "exact", "ok": o["final_value"] == o["expected"]})
    if "noevents" in r:
        n = r["noevents"]
        o, w, h = n["ours"], n["raw"], n["hot"]
        a = n["no_sent_event"]
        rows.append({"scenario": "[no task-sent event] sync invoke p50", "ours": ms(a["ours"]["p50_ms"]),
                     "raw": ms(a["raw"]["p50_ms"]), "ratio": a["ours"]["p50_ms"] / a["raw"]["p50_ms"],
                     "target": "(info)", "ok": None})
        rows.append({"scenario": "[events off] sync invoke p50", "ours": ms(o["p50_ms"]), "raw": ms(w["p50_ms"]),
                     "ratio": o["p50_ms"] / w["p50_ms"], "target": "(info)", "ok": None})
        rows.append({"scenario": "[events off] one hot actor, updates/s", "ours": f"{h['ours']['per_s']:.0f}/s",
                     "raw": f"{h['raw']['per_s']:.0f}/s", "ratio": h["ours"]["per_s"] / h["raw"]["per_s"],
                     "target": "(info)", "ok": None})
    if "scale" in r:
        s = r["scale"]
        ratio = s["warm"]["p50_ms"] / s["one"]["p50_ms"]
        one = ms(s["one"]["p50_ms"]) + " (1 actor)"
        rows.append({"scenario": f"p50 at N={s['actors']} actors (warm) / 1 actor", "ours": ms(s["warm"]["p50_ms"]),
                     "raw": one, "ratio": ratio, "target": "<= 1.2", "ok": ratio <= 1.2})
        cold_one = s.get("cold_one", s["one"])["p50_ms"]
        rows.append({"scenario": f"p50 first activation at N={s['actors']} / 1 actor", "ours": ms(s["cold"]["p50_ms"]),
                     "raw": ms(cold_one) + " (1 actor)", "ratio": s["cold"]["p50_ms"] / cold_one, "target": "(info)",
                     "ok": None})
        rate = s["spawned_now"] / max(s["spawn_seconds"], 1e-9)
        rows.append({"scenario": "spawn rate (pipelined registry)", "ours": f"{rate:.0f}/s",
                     "raw": "", "ratio": "", "target": "(info)", "ok": None})
    if "keys" in r:
        k = r["keys"]
        rows.append({"scenario": "per-actor Redis keys after deactivation", "ours": str(k["per_actor_keys"]),
                     "raw": "", "ratio": "", "target": "0", "ok": k["per_actor_keys"] == 0 and k["active"] == 0})
        rows.append({"scenario": "dedupe records left (TTL, per invocation)", "ours": str(k["dedupe_records"]),
                     "raw": "", "ratio": "", "target": "(info)", "ok": None})
    if "rss" in r:
        m = r["rss"]
        rows.append({"scenario": f"worker RSS growth ({m['invocations']} calls)",
                     "ours": f"{(m['rss_end'] - m['rss_start']) / 2**20:.1f} MiB",
                     "raw": f"{m['bytes_per_invocation']:.1f} B/call", "ratio": f"{m['mib_per_million']:.1f} MiB/1M",
                     "target": "< 50 MiB / 1M", "ok": m["mib_per_million"] < 50})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
