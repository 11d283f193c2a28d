"""The README quickstart: `spawn-celery dev --demo` on a machine where no Redis answers at the configured URL."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_demo_starts_embedded_redis_worker_gateway_and_invokes(tmp_path: Path) -> None:
    # Given no Redis at the configured URL and no key or database configured
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("SPAWN_", "PROXY_"))}
    env |= {"SPAWN_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "PYTHONPATH": str(ROOT)}
    # When the quickstart runs
    out = subprocess.run(
        [sys.executable, "-m", "spawn_celery.cli", "dev", "--demo", "--dir", str(tmp_path / ".spawn"),
         "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    # Then it used an embedded Valkey, SQLite, and real invocations replied in order
    assert out.returncode == 0, out.stdout + out.stderr
    assert "started embedded Valkey" in out.stdout
    assert "counter.increment(by=3) -> value=6" in out.stdout
    assert "state of counter: value=6 revision=3" in out.stdout
    assert '"total":15' in out.stdout  # the JSON route of the gateway answered too
    assert (tmp_path / ".spawn" / "spawn.db").exists() and (tmp_path / ".spawn" / "statestore.key").exists()
