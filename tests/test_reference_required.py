"""Tests that need ../shared/reference skip, saying why, on a machine without it — and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEEDS_REFERENCE = ["tests/test_samples_load.py", "tests/test_analyze_samples.py"]


def _run(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MESHLAB_REFERENCE"] = str(tmp_path / "no-reference-here")
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *NEEDS_REFERENCE],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", [False, True], ids=["laptop", "CI"])
def test_a_missing_reference_skips_on_a_laptop_and_fails_in_ci(tmp_path: Path, ci: bool) -> None:
    run = _run(tmp_path, ci)
    out = run.stdout + run.stderr
    assert "not found: Istio's CRDs and samples" in out, out[-2000:]
    if ci:
        assert run.returncode == 1 and " skipped" not in out and "in CI they must be there" in out, out[-2000:]
    else:
        assert run.returncode == 0 and " failed" not in out and " error" not in out, out[-2000:]
