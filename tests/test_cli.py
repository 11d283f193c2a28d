"""The spawn-celery command line, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from spawn_celery.client import Client
from spawn_celery.config import Settings
from tests.support import ROOT, env_of


def cli(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spawn_celery.cli", *args],
        env=env_of(settings), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def test_keygen_prints_a_32_byte_key(settings: Settings) -> None:
    import base64

    out = cli(settings, "keygen")
    assert out.returncode == 0 and len(base64.b64decode(out.stdout.strip())) == 32


def test_invoke_and_state_commands(settings: Settings, client: Client) -> None:
    name = "cli-" + uuid.uuid4().hex[:8]
    out = cli(settings, "invoke", "tests", name, "increment", "--parent", "counter", "--data", '{"by": 4}',
              "--type", "spawn_celery.examples.Increment", "--import", "spawn_celery.examples.domain_pb2")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == {"value": "4"}
    state = cli(settings, "state", "tests", name, "--import", "spawn_celery.examples.domain_pb2")
    doc = json.loads(state.stdout)
    assert doc["revision"] == 1 and doc["state"] == {"value": "4"}


def test_unknown_actor_exits_non_zero_with_message(settings: Settings, client: Client) -> None:
    out = cli(settings, "invoke", "tests", "nobody-" + uuid.uuid4().hex, "increment")
    assert out.returncode == 1 and "ActorNotFound" in out.stderr


def test_missing_key_refuses_to_start_with_how_to(settings: Settings, tmp_path: Path) -> None:
    out = cli(settings.replace(statestore_key=""), "worker", "--app", "tests.apps:system", timeout=60)
    assert out.returncode == 2 and "spawn-celery keygen" in out.stderr


def test_malformed_key_is_refused(settings: Settings) -> None:
    out = cli(settings.replace(statestore_key="not-base64!"), "worker", "--app", "tests.apps:system")
    assert out.returncode == 2 and "SPAWN_STATESTORE_KEY" in out.stderr


def test_unreachable_database_refuses_to_start(settings: Settings) -> None:
    bad = settings.replace(database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    out = cli(bad, "worker", "--app", "tests.apps:system")
    assert out.returncode == 1 and "StateStoreError" in out.stderr


def test_bad_integer_setting_names_the_variable(settings: Settings) -> None:
    env = env_of(settings) | {"SPAWN_LOCK_LEASE_MS": "soon"}
    out = subprocess.run([sys.executable, "-m", "spawn_celery.cli", "keygen"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "SPAWN_LOCK_LEASE_MS" in out.stderr


def test_a_result_backend_that_is_not_redis_is_refused(settings: Settings) -> None:
    env = env_of(settings) | {"SPAWN_RESULT_BACKEND": "rpc://"}
    out = subprocess.run([sys.executable, "-m", "spawn_celery.cli", "keygen"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "SPAWN_RESULT_BACKEND" in out.stderr and "Redis URL" in out.stderr


def test_bad_app_spec_is_a_config_error(settings: Settings) -> None:
    out = cli(settings, "worker", "--app", "tests.apps:nothing_here")
    assert out.returncode == 2 and "not a spawn_celery.Spawn" in out.stderr
