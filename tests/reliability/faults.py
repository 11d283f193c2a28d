"""Fault-injection helpers: worker nodes we can kill, pause and stop; client load; throwaway Redis and PostgreSQL.

Everything is a real process. A worker node runs in its own session (process group), so one ``killpg`` reaches
its main process and its pool children together, as a container runtime or the kernel's OOM killer would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.errors import InvocationTimeout, SpawnError
from spawn_celery.examples import domain_pb2  # noqa: F401 - registers CounterValue, so replies unpack
from spawn_celery.runtime import Runtime
from spawn_celery.services import Services
from tests.support import ROOT, env_of, gated

SYSTEM = "reltests"
APP = "tests.reliability.apps:system"


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass
class Node:
    """One ``spawn-celery worker`` node (main process + ``concurrency`` pool processes) in its own session."""

    settings: Settings
    name: str
    log_path: Path
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Node:
        """Start the node and wait until Celery reports it ready."""
        args = [
            sys.executable,
            "-m",
            "spawn_celery.cli",
            "worker",
            "--app",
            APP,
            "-c",
            str(self.concurrency),
            "-n",
            f"{self.name}@reliability",
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                env={**env_of(self.settings), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {proc.returncode}:\n{self.log()[-3000:]}")
            return b" ready." in self.log_path.read_bytes()[offset:]

        wait_for(ready, timeout, f"worker {self.name} to be ready", every=0.05)
        return self

    @property
    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the main process and every pool process."""
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole node: no shutdown code runs, nothing is acknowledged or flushed."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill_pool_process(self) -> int:
        """SIGKILL one pool process only (an OOM kill): the main process requeues its task and forks a new one."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False).stdout
        pid = int(out.split()[0])
        os.kill(pid, signal.SIGKILL)
        return pid

    def pause(self) -> None:
        """SIGSTOP the whole node (a GC pause, a frozen VM, a partition that heals later)."""
        self.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the whole node."""
        self.signal_group(signal.SIGCONT)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM the main process only (what Kubernetes does) and wait for it to exit; return its exit code."""
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        """Everything the node (in all its lives) wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def in_process(settings: Settings) -> tuple[Services, Runtime]:
    """The worker's real runtime in this process, on its own connections, hosting the suite's actors (a worker node
    must have registered their types). Close ``services.redis`` when done."""
    from tests.reliability.apps import system as app

    services = Services.create(settings, actors=app.actors)
    runtime = services.runtime()
    assert isinstance(runtime, Runtime)
    return services, runtime


def new_client(settings: Settings) -> Client:
    """A client with its own connections (one per thread: Celery result waiting is not shared across threads)."""
    return Client(services=Services.create(settings))


def close_client(client: Client) -> None:
    """Release a client's connections."""
    client.services.app.close()
    client.services.redis.close()


def spawn_counter(client: Client, template: str = "counter") -> str:
    """Spawn a fresh instance of ``template`` and return its name."""
    name = f"{template}-{uuid.uuid4().hex[:8]}"
    client.spawn(SYSTEM, name, template)
    return name


RUNNING_LOADS: list[Load] = []
"""Every load started by the current test; the suite's conftest stops them when the test ends, even a failed one."""


class Load:
    """Client threads invoking one actor, every call with its own invocation id.

    ``acked`` maps each acknowledged invocation id to the value its reply carried; ``unacked`` lists the ids whose
    call got no reply in time (their effect may or may not have been applied); ``errors`` lists any other failure.
    """

    def __init__(
        self,
        settings: Settings,
        actor: str,
        *,
        action: str = "increment",
        threads: int = 8,
        per_thread: int = 0,
        timeout: float = 20.0,
    ) -> None:
        """Send ``per_thread`` calls per thread (0: until :meth:`stop`), waiting ``timeout`` s for each reply."""
        self.settings, self.actor, self.action = settings, actor, action
        self.per_thread, self.timeout = per_thread, timeout
        self.acked: dict[str, int] = {}
        self.unacked: list[str] = []
        self.errors: list[tuple[str, SpawnError]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"load-{i}", daemon=True) for i in range(threads)]
        RUNNING_LOADS.append(self)

    def start(self) -> Load:
        """Start the client threads."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Ask the threads to finish their current call and stop."""
        self._stop.set()

    def join(self, timeout: float = 120.0) -> Load:
        """Wait for every thread to finish."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
            assert not thread.is_alive(), f"{thread.name} still running"
        return self

    @property
    def sent(self) -> int:
        """How many distinct invocation ids were sent."""
        return len(self.acked) + len(self.unacked) + len(self.errors)

    def _run(self) -> None:
        client = new_client(self.settings)
        try:
            done = 0
            while not self._stop.is_set() and (not self.per_thread or done < self.per_thread):
                invocation_id = uuid.uuid4().hex
                try:
                    reply = client.invoke(
                        SYSTEM, self.actor, self.action, invocation_id=invocation_id, timeout=self.timeout
                    )
                except InvocationTimeout:
                    with self._lock:
                        self.unacked.append(invocation_id)
                except SpawnError as exc:
                    with self._lock:
                        self.errors.append((invocation_id, exc))
                else:
                    with self._lock:
                        self.acked[invocation_id] = reply.value
                done += 1
        finally:
            close_client(client)


def broker_settled(settings: Settings, *queues: str) -> bool:
    """Whether no invocation is queued or taken-but-unacknowledged on the broker (nothing left to redeliver)."""
    r = redis.Redis.from_url(settings.broker)
    try:
        pending = sum(r.llen(q) for q in queues) + r.hlen("unacked")
    finally:
        r.close()
    return pending == 0


@dataclass
class RedisServer:
    """A throwaway ``redis-server`` on its own port, without persistence: a restart comes back empty."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._pings, 10, f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        """Stop it; everything it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _pings(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb into a temporary directory) we may stop and start at will."""

    port: int
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="spawn-pg-")))

    @property
    def url(self) -> str:
        """SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+psycopg2://spawn@127.0.0.1:{self.port}/postgres"

    def init(self) -> PostgresCluster:
        """Create the cluster (trust authentication, no fsync: it is thrown away)."""
        shutil.chown(self.root, "postgres")
        self._as_postgres(["initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "spawn", "--no-sync"])
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            ["pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "log"), "-w", "start"]
        )

    def stop(self) -> None:
        """Stop the server, closing every client connection (``-m fast``)."""
        self._as_postgres(["pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"], check=False)

    def remove(self) -> None:
        """Stop and delete the cluster."""
        if (self.root / "data" / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _as_postgres(self, args: list[str], *, check: bool = True) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + args, check=check, capture_output=True, cwd=self.root)


def call_slow(
    settings: Settings, name: str, seconds: float, invocation_id: str, out: dict[str, Any], gate: str = ""
) -> threading.Thread:
    """Invoke ``slow`` (sleeps ``seconds``, then adds 1) on its own client in a thread; its reply value goes to
    ``out["value"]``, or the exception to ``out["error"]`` (a killed holder may leave it unanswered).

    With ``gate``, the action waits until :func:`open_gate` opens it (``seconds`` at most) instead of sleeping."""
    request = gated(settings, gate, seconds) if gate else {"s": seconds}

    def call() -> None:
        own = new_client(settings)
        try:
            out["value"] = own.invoke(SYSTEM, name, "slow", request, invocation_id=invocation_id, timeout=60).value
        except Exception as exc:
            out["error"] = exc
        finally:
            close_client(own)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread

