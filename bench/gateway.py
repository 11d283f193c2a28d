"""The gateway scenario: Spawn's HTTP/protobuf invoke through ``spawn-celery gateway`` vs a raw Celery round trip."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from google.protobuf import any_pb2

from bench import scenarios, stats
from spawn_celery.config import Settings
from spawn_celery.examples.domain_pb2 import Increment
from spawn_celery.proto import actor_pb2, protocol_pb2
from tests.support import ROOT, env_of

PB = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    settings: Settings, log_path: Path, server: str, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the gateway (``dev``: ``spawn-celery gateway``; ``gunicorn``: web/ as deployed) on a free port."""
    port = _free_port()
    env = env_of(settings)
    env.update(settings.to_env())
    env.update(PYTHONPATH=str(ROOT), PROXY_HTTP_HOST="127.0.0.1", PROXY_HTTP_PORT=str(port))
    if server == "dev":
        args = [sys.executable, "-m", "spawn_celery.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    else:
        args = [sys.executable, "-m", "gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:app"]
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}; log: {log_path}")
        try:
            if requests.get(url + "/health", timeout=1).status_code < 500:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway not up in {timeout} s; log: {log_path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)


def invoke_p50(b: scenarios.Bench, settings: Settings, log_dir: Path, calls: int) -> dict[str, Any]:
    """Both servers: the deployed one (gunicorn, web/) and the development one (``spawn-celery gateway``)."""
    return {server: _invoke_p50(b, settings, log_dir / f"gateway-{server}.log", calls, server)
            for server in ("gunicorn", "dev")}


def _invoke_p50(b: scenarios.Bench, settings: Settings, log_path: Path, calls: int, server: str) -> dict[str, Any]:
    """Protobuf ``POST /api/v1/system/bench/actors/<actor>/invoke`` paired call by call with raw Celery, from two
    clients: the standard library's ``http.client`` and ``requests`` (both keep-alive). The client's own CPU is
    part of what is measured; ``requests`` costs about 1 ms more per call here."""
    proc, url = start(settings, log_path, server)
    try:
        actor = "gw-1"
        b.spawn([actor])
        request = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=scenarios.SYSTEM),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=scenarios.SYSTEM)),
            action_name=scenarios.ACTION,
        )
        packed = any_pb2.Any()
        packed.Pack(Increment(by=1))
        request.value.CopyFrom(packed)
        body = request.SerializeToString()
        path = f"/api/v1/system/{scenarios.SYSTEM}/actors/{actor}/invoke"
        session = requests.Session()
        parsed = urlsplit(url)
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=20)

        def lean() -> None:  # the standard library's HTTP/1.1 client on one keep-alive connection
            conn.request("POST", path, body=body, headers=PB)
            answer = conn.getresponse()
            content = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"gateway answered {answer.status}: {content[:200]!r}")

        def with_requests() -> None:  # requests.Session (keep-alive), as spawn-python-sdk calls the proxy
            answer = session.post(url + path, data=body, headers=PB, timeout=20)
            if answer.status_code != 200:
                raise RuntimeError(f"gateway answered {answer.status_code}: {answer.content[:200]!r}")

        raw = lambda: b.raw_sync("raw:gw-1")  # noqa: E731
        scenarios.paired(lean, raw, 50)
        scenarios.paired(with_requests, raw, 50)
        ours, baseline = scenarios.paired(lean, raw, calls)
        ours_rq, baseline_rq = scenarios.paired(with_requests, raw, calls)
        conn.close()
        return {
            "ours": stats.latency(ours),
            "raw": stats.latency(baseline),
            "requests": {"ours": stats.latency(ours_rq), "raw": stats.latency(baseline_rq)},
            "server": server,
        }
    finally:
        stop(proc)
