"""`meshlab validate` and `meshlab --version`, run as a learner runs them: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import meshlab

GOOD = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""

BAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {subset: v1}
      weight: "80"
"""


def meshlab_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_version() -> None:
    r = meshlab_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"meshlab {meshlab.__version__}"


def test_valid_manifests_exit_0_with_summary_and_notes(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    r = meshlab_cli("validate", tmp_path / "good.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid: 3 objects (1 DestinationRule, 1 Service, 1 ServiceAccount) in 1 file" in r.stdout
    assert "note: " in r.stdout and "ServiceAccount default/reviews" in r.stdout and "not modelled" in r.stdout


def test_invalid_manifests_exit_65_printing_every_problem(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    r = meshlab_cli("validate", tmp_path / "good.yaml", tmp_path / "bad.yaml")
    assert r.returncode == 65
    errors = [line for line in r.stdout.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {tmp_path / 'bad.yaml'}:8 VirtualService default/reviews spec.http[0].route[0].destination.host: "
        "required field host is missing",
        f"error: {tmp_path / 'bad.yaml'}:9 VirtualService default/reviews spec.http[0].route[0].weight: "
        'expected an integer, found the string "80"',
    ]
    assert "2 problems found; nothing would be applied" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("content", [b"\x00\x01\x02 binary", b"a: [", b"- just\n- a list\n", b"kind: Service\n"],
                         ids=["binary", "broken-yaml", "list", "no-apiVersion"])
def test_bad_files_exit_65_without_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    r = meshlab_cli("validate", path)
    assert r.returncode == 65
    assert f"error: {path}" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_missing_path_and_empty_file(tmp_path: Path) -> None:
    r = meshlab_cli("validate", tmp_path / "nope.yaml")
    assert r.returncode == 65 and "no such file or folder" in r.stdout
    (tmp_path / "empty.yaml").write_text("")
    r = meshlab_cli("validate", tmp_path / "empty.yaml")
    assert r.returncode == 0 and "held no objects" in r.stdout and "valid: 0 objects" in r.stdout


def test_validate_needs_a_path() -> None:
    r = meshlab_cli("validate")
    assert r.returncode == 2 and "PATH" in r.stderr


def test_dash_reads_stdin() -> None:
    r = subprocess.run([sys.executable, "-m", "meshlab.cli", "validate", "-"], input=GOOD, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "valid: 3 objects" in r.stdout and "in 1 file" in r.stdout
    r = subprocess.run([sys.executable, "-m", "meshlab.cli", "validate", "-"], input=BAD, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 65 and "error: <stdin>:9 VirtualService default/reviews" in r.stdout
