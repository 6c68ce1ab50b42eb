"""The README's commands: `make lab` serves JupyterLab, `make course` runs chapters, installs are
skipped when nothing changed. `make lab` runs against the existing .venv (NO_INSTALL=1), so this
test does not reinstall anything."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent   # the venv running these tests

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without the outer make's flags (`make test X=1` must not leak in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return {**env, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """make, and the JupyterLab it started, are one process group: end them together."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.slow
def test_make_lab_serves_jupyterlab(tmp_path: Path) -> None:
    port, token = _free_port(), "meshlab-test"
    env = _env(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    work = tmp_path / "work"
    proc = subprocess.Popen(
        ["make", "-C", str(REPO), "lab", "NO_INSTALL=1", f"VENV={VENV}", f"PORT={port}", f"WORK={work}",
         f"LAB_ARGS=--no-browser --IdentityProvider.token={token} --ServerApp.port_retries=0"],
        stdout=(tmp_path / "lab.log").open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        status, body = None, b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
                    status, body = r.status, r.read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        log = (tmp_path / "lab.log").read_text(errors="replace")
        assert status == 200, f"JupyterLab did not answer on port {port}; log:\n{log[-3000:]}"
        assert b"JupyterLab" in body
        assert f"--notebook-dir={work}" in log and "MESHLAB_BACKEND=local" in log
        # the learner works in a copy: JupyterLab's autosave never touches the tracked chapters
        assert sorted(p.name for p in work.glob("*.ipynb")) == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
        assert (work / "manifests" / "01-service" / "reviews-service.yaml").is_file()
    finally:
        _stop(proc)


def _copy_project(tmp_path: Path) -> Path:
    """A throwaway project with the real Makefile and pyproject.toml, to run make against."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", project / "Makefile")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    (project / "kube").mkdir()
    for name in ("kube.mk", "go.mod", "go.sum"):                       # the Makefile includes kube/kube.mk
        shutil.copy(REPO / "kube" / name, project / "kube" / name)
    (project / "oracle").mkdir()
    for name in ("go.mod", "go.sum"):                                  # what `make oracle` depends on
        shutil.copy(REPO / "oracle" / name, project / "oracle" / name)
    shutil.copytree(REPO / "course", project / "course", ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(project), *args], capture_output=True, text=True, timeout=600,
                          env=_env())


def test_installs_rerun_only_when_pyproject_changes(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    dry = _make(project, "-n", "lab")
    assert "pip install --quiet -e ." in dry.stdout                  # never installed: install
    stamp = venv / ".meshlab-lab.stamp"
    stamp.touch()
    os.utime(project / "pyproject.toml", (time.time() - 60, time.time() - 60))
    dry = _make(project, "-n", "lab")
    assert "pip install" not in dry.stdout and "jupyter lab" in dry.stdout   # up to date: straight to the lab
    (project / "pyproject.toml").touch()
    os.utime(stamp, (time.time() - 60, time.time() - 60))
    assert "pip install --quiet -e ." in _make(project, "-n", "lab").stdout  # pyproject changed: install again
    test_dry = _make(project, "-n", "test")
    assert 'pip install --quiet -e ".[test]"' in test_dry.stdout and "-m pytest" in test_dry.stdout
    assert "python3 -m venv" in _make(tmp_path / "project", "-n", "lab", "VENV=fresh").stdout


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed: `make apiserver` only says so")
def test_make_test_builds_the_apiserver_first_and_only_when_kube_changed(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    build = ("k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager "
             "go.etcd.io/etcd/server/v3")
    dry = _make(project, "-n", "test", "NO_INSTALL=", f"VENV={VENV}")
    assert build in dry.stdout and dry.stdout.index(build) < dry.stdout.index("-m pytest")
    oracle = "-o bin/meshlab-oracle ./cmd/meshlab-oracle"      # the oracle too, never inside a test's time limit
    assert oracle in dry.stdout and dry.stdout.index(oracle) < dry.stdout.index("-m pytest")
    (project / "kube" / "bin").mkdir()
    past = time.time() - 60
    for name in ("kube.mk", "go.mod", "go.sum"):
        os.utime(project / "kube" / name, (past, past))
    for binary in ("kube-apiserver", "kube-controller-manager", "etcd"):
        (project / "kube" / "bin" / binary).touch()
    assert build not in _make(project, "-n", "apiserver").stdout          # up to date: no go build at all
    (project / "kube" / "go.mod").touch()
    assert build in _make(project, "-n", "apiserver").stdout              # a pin moved: build again


def test_make_course_says_when_there_are_no_chapters(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    r = _make(project, "course", "NO_INSTALL=1", f"VENV={VENV}")
    assert r.returncode == 0 and "no chapters yet" in r.stdout
    assert not (project / "build").exists()


@pytest.mark.slow
def test_make_course_executes_chapters_to_html(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    project = _copy_project(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint('backend', os.environ['MESHLAB_BACKEND'], 6 * 7)")]
    nbformat.write(nb, project / "notebooks" / "01-hello.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), project / "notebooks" / "scratch.ipynb")   # not a chapter
    r = _make(project, "course", "NO_INSTALL=1", f"VENV={VENV}")
    assert r.returncode == 0, r.stdout + r.stderr
    # one plotly.js beside the pages, none inside them, nothing from a CDN
    assert sorted(p.name for p in (project / "build").iterdir()) == ["01-hello.html", "plotly.min.js"]
    html = (project / "build" / "01-hello.html").read_text()
    assert "backend local 42" in html
    assert html.count('<script src="plotly.min.js"></script>') == 1
    assert not re.search(r'<script[^>]+src="https?://', html), "no script from the network"


def test_ci_runs_make_test() -> None:
    script = REPO / ".ci" / "run"
    assert os.access(script, os.X_OK)
    lines = [x.strip() for x in script.read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert "set -euo pipefail" in lines and lines[-1] == "make test"
