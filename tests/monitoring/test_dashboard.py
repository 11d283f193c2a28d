"""The actor dashboard in the real gateway, rendered by headless Chromium; and the gateway's /metrics."""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from spawn_celery.client import Client
from spawn_celery.config import Settings
from spawn_celery.gateway import create_app
from spawn_celery.services import Services
from tests.monitoring.conftest import free_port, wait_until

APT_HINT = "apt-get update && apt-get install -y chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000"]


@pytest.fixture(scope="module")
def gateway(mon_settings: Settings) -> Iterator[str]:
    """The real gateway app served over HTTP from a thread; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), create_app(services=Services.create(mon_settings)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile; fail (never skip) when it is not installed."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail(f"chromium is not installed: {APT_HINT}")
    profile = tmp_path / f"profile-{uuid.uuid4().hex[:6]}"
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)


def png_facts(path: Path) -> tuple[int, int, float]:
    """Width, height and the share of non-zero bytes in the filtered image data (0 for a blank page)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, sum(1 for b in raw if b) / len(raw)


def test_dashboard_shows_actors_queues_and_recent_invocations(
    gateway: str, mon_client: Client, tmp_path: Path
) -> None:
    # Given: two active counters with different state and a recorded invocation id
    names = [f"dash-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for i, name in enumerate(names):
        mon_client.spawn("mon", name, "counter")
        for _ in range(i + 1):
            mon_client.invoke("mon", name, "increment")
    last = "dash-inv-" + uuid.uuid4().hex[:10]
    mon_client.invoke("mon", names[0], "increment", invocation_id=last)
    wait_until(lambda: last in requests.get(f"{gateway}/dashboard/overview.json", timeout=5).text,
               what="the invocation in the recent list")
    # When: Chromium loads the page
    dom = chromium(tmp_path, "--dump-dom", f"{gateway}/dashboard").stdout
    shot = tmp_path / "dashboard.png"
    chromium(tmp_path, f"--screenshot={shot}", f"{gateway}/dashboard")
    # Then: the DOM names the system, both actors, the queue and the invocation; the screenshot is a real page
    for text in ("System mon", *names, "spawn.mon.counter", last, 'data-actor="' + names[1] + '"'):
        assert text in dom
    width, height, ink = png_facts(shot)
    assert (width, height) == (1280, 1000)
    assert shot.stat().st_size > 20_000
    assert ink > 0.01


def test_dashboard_json_has_revision_and_state_size(gateway: str, mon_client: Client) -> None:
    name = f"json-{uuid.uuid4().hex[:6]}"
    mon_client.spawn("mon", name, "counter")
    for _ in range(3):
        mon_client.invoke("mon", name, "increment")
    doc = requests.get(f"{gateway}/dashboard/overview.json", timeout=5).json()
    (mon,) = [s for s in doc["systems"] if s["name"] == "mon"]
    (actor,) = [a for a in mon["active"] if a["name"] == name]
    assert actor["type"] == "counter" and actor["revision"] == 3 and actor["state_bytes"] > 0
    assert {"name": "counter", "queue": "spawn.mon.counter", "depth": 0} in mon["types"]


def test_gateway_metrics_move(gateway: str, mon_client: Client) -> None:
    name = f"gw-{uuid.uuid4().hex[:6]}"
    url = f"{gateway}/api/v1/system/mon/actors/{name}/actions/increment"
    before = requests.get(f"{gateway}/metrics", timeout=5).text
    for _ in range(2):
        assert requests.post(url, params={"parent": "counter"}, timeout=20).json()["status"] == "OK"
    after = requests.get(f"{gateway}/metrics", timeout=5).text
    assert _count(after, 'action="increment"') - _count(before, 'action="increment"') == 2


def _count(text: str, needle: str) -> float:
    """Sum of spawn_invocations_total samples of system mon whose labels contain ``needle``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("spawn_invocations_total{") and 'system="mon"' in ln]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines if needle in ln)
