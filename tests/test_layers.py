"""DESIGN.md's import floors and no import cycles, checked by import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import pytest

import meshlab

REPO = Path(__file__).resolve().parents[1]
importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extras")


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_imports_go_downward_and_make_no_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    code = importlinter_cli.lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "Contracts: 3 kept, 0 broken." in report


def test_every_module_has_a_floor() -> None:
    """A module on no floor would escape the layers contract: each top-level module, and each
    backend, must be named in one."""
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    named = {m.strip() for floor in layers["layers"] for m in floor.split("|")}
    here = {m.name for m in pkgutil.iter_modules(meshlab.__path__) if m.name != "backends"}
    backends = {f"backends.{m.name}" for m in pkgutil.iter_modules([str(Path(meshlab.__file__).parent / "backends")])}
    assert here | backends == named, {"without a floor": (here | backends) - named, "gone": named - (here | backends)}
