"""Worker subprocesses for the benchmark and their memory (RSS of the prefork pool processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT


class RawWorker:
    """A plain ``celery worker`` subprocess serving :mod:`bench.raw`."""

    def __init__(self, url: str, concurrency: int, log_path: Path) -> None:
        self.url, self.concurrency, self.log_path = url, concurrency, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> RawWorker:
        env = dict(os.environ, BENCH_RAW_REDIS_URL=self.url, PYTHONPATH=str(ROOT))
        args = [sys.executable, "-m", "celery", "-A", "bench.raw:app", "worker", "-c", str(self.concurrency),
                "-P", "prefork", "-Q", "bench.raw", "-l", "INFO", "-n", f"raw-{os.getpid()}@%h",
                "--without-mingle", "--without-gossip"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"raw worker exited with {self.proc.returncode}; log: {self.log_path}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"raw worker not ready in {timeout} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def pool_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def rss_bytes(pids: list[int]) -> int:
    """Sum of the resident set sizes of ``pids`` (from /proc)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total
