"""The three descriptions of meshlab's dependencies must agree.

`pyproject.toml` is the source of truth (pip, `make lab`, `make test`); `environment.yml` serves
conda users; `binder/` is what repo2docker (mybinder.org) builds. If they drift, a learner on
Binder or conda runs a different stack from the one the tests ran. The rule checked here: the
other two install the project itself from the repository root (so they get exactly pyproject's
ranges), give a Python that pyproject accepts, and any package they name on their own has a range
that can be satisfied together with pyproject's.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
_SELF = {".", "./", "-e .", "-e ./", "--editable .", "--editable=."}


# ------------------------------------------------------------------------------- reading the files

def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pyproject_deps() -> dict[str, SpecifierSet]:
    deps = [Requirement(d) for d in _pyproject()["project"]["dependencies"]]
    return {canonicalize_name(r.name): r.specifier for r in deps}


def _requirement_lines(text: str) -> list[str]:
    """pip requirement lines without comments/blank lines (pip's own comment rule: ' #')."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def _conda_spec(dep: str) -> tuple[str, SpecifierSet]:
    """A conda match spec (`python=3.11`, `pandas>=2.2,<3`, `pip`) as a PEP 440 specifier set."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", dep)
    if not m:
        raise ValueError(f"environment.yml: cannot read dependency {dep!r}")
    name, spec = m.group(1), m.group(2).replace(" ", "")
    if re.fullmatch(r"=?[0-9][0-9A-Za-z.*]*", spec):  # conda's `=3.11` means 3.11.*
        v = spec.lstrip("=")
        spec = f"=={v}" if v.endswith("*") else f"=={v}.*"
    spec = re.sub(r"(?<![<>=!~])=(?!=)", "==", spec)
    return canonicalize_name(name), SpecifierSet(spec)


def _environment() -> tuple[dict[str, SpecifierSet], list[str]]:
    """(conda dependencies, pip lines) of environment.yml."""
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda: dict[str, SpecifierSet] = {}
    pip: list[str] = []
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            pip.extend(str(x).strip() for x in dep.get("pip", []))
        else:
            name, spec = _conda_spec(str(dep))
            conda[name] = spec
    return conda, pip


# --------------------------------------------------------------------------- comparing the ranges

def _candidates(*specs: SpecifierSet) -> list[Version]:
    """Versions worth trying: every bound named in the specifiers, and just above/below each."""
    out: set[Version] = set()
    for spec in specs:
        for s in spec:
            text = s.version.replace(".*", "")
            try:
                v = Version(text)
            except InvalidVersion:
                continue
            rel = list(v.release) + [0] * (3 - len(v.release))
            out.add(v)
            for i in range(3):
                up = rel[:i] + [rel[i] + 1] + [0] * (2 - i)
                out.add(Version(".".join(map(str, up))))
            out.add(Version(".".join(map(str, rel[:2] + [rel[2] + 1]))))
            out.add(Version(".".join(map(str, rel[:2] + [99]))))
            if rel[0] > 0 or rel[1] > 0:
                out.add(Version(".".join(map(str, [rel[0], max(rel[1] - 1, 0), 99]))))
    return sorted(out)


def _compatible(a: SpecifierSet, b: SpecifierSet) -> bool:
    """True when some release satisfies both ranges (an empty range accepts everything)."""
    if not str(a) or not str(b):
        return True
    return any(v in a and v in b for v in _candidates(a, b))


def _installs_project(lines: list[str]) -> bool:
    return any(line.replace("  ", " ") in _SELF for line in lines)


# ---------------------------------------------------------------------------------------- tests

def test_range_comparison_can_say_no() -> None:
    """The comparison itself: overlapping ranges agree, disjoint ones do not."""
    assert _compatible(SpecifierSet(">=4.2,<5"), SpecifierSet("==4.4.*"))
    assert _compatible(SpecifierSet(">=6.0,<8"), SpecifierSet(">=7"))
    assert _compatible(SpecifierSet(">=3.11"), _conda_spec("python=3.11")[1])
    assert not _compatible(SpecifierSet(">=4.2,<5"), SpecifierSet("<4.2"))
    assert not _compatible(SpecifierSet(">=6.0,<8"), SpecifierSet("==5.24.1"))
    assert not _compatible(SpecifierSet(">=3.11"), _conda_spec("python=3.10")[1])
    assert _conda_spec("pandas >=2.2,<3") == ("pandas", SpecifierSet(">=2.2,<3"))


def test_pyproject_pins_every_dependency_to_a_range() -> None:
    """Compatible ranges, never bare names: an unbounded dependency makes the others meaningless."""
    loose = [f"{n}{s}" for n, s in _pyproject_deps().items()
             if not any(x.operator in ("<", "<=", "==", "~=") for x in s)]
    assert not loose, f"pyproject.toml: dependencies without an upper bound: {loose}"


def test_environment_yml_agrees_with_pyproject() -> None:
    conda, pip = _environment()
    requires_python = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert "python" in conda, "environment.yml: no python in dependencies"
    assert _compatible(conda["python"], requires_python), (
        f"environment.yml: python{conda['python']} is outside pyproject's requires-python "
        f"{requires_python}")
    assert _installs_project(pip), (
        "environment.yml: the pip section must install the project itself (`-e .`), so conda users "
        f"get pyproject's ranges; found {pip}")
    deps = _pyproject_deps()
    named = dict(conda)
    for line in pip:
        if line not in _SELF and not line.startswith("-"):
            r = Requirement(line)
            named[canonicalize_name(r.name)] = r.specifier
    for name, spec in named.items():
        if name in deps:
            assert _compatible(spec, deps[name]), (
                f"environment.yml: {name}{spec} cannot be satisfied together with "
                f"pyproject.toml's {name}{deps[name]}")


def test_binder_agrees_with_pyproject() -> None:
    """repo2docker reads only binder/ once it exists: it must install the project and ask for a
    Python that pyproject accepts (its default Python is older than ours)."""
    assert BINDER.is_dir(), "binder/ is missing"
    # repo2docker's conda build pack wins over requirements.txt: its presence would silently
    # replace the pip install below with a different dependency list.
    for shadow in ("environment.yml", "environment.yaml", "Dockerfile", "Pipfile", "default.nix"):
        assert not (BINDER / shadow).exists(), (
            f"binder/{shadow} would make repo2docker ignore binder/requirements.txt")
    lines = _requirement_lines((BINDER / "requirements.txt").read_text())
    assert _installs_project(lines), (
        "binder/requirements.txt must install the project itself (`-e .`; repo2docker runs pip "
        f"from the repository root); found {lines}")
    runtime = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert m, f"binder/runtime.txt: expected python-X.Y, found {runtime!r}"
    requires_python = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version(m.group(1)) in requires_python, (
        f"binder/runtime.txt: Python {m.group(1)} is outside requires-python {requires_python}")
    conda, _ = _environment()
    assert _compatible(conda["python"], SpecifierSet(f"=={m.group(1)}.*")), (
        f"binder/runtime.txt (python {m.group(1)}) and environment.yml (python{conda['python']}) "
        f"disagree")
    deps = _pyproject_deps()
    for line in lines:
        if line in _SELF or line.startswith("-"):
            continue
        r = Requirement(line)
        name = canonicalize_name(r.name)
        assert name in deps, f"binder/requirements.txt: {r.name} is not a dependency in pyproject.toml"
        assert _compatible(r.specifier, deps[name]), (
            f"binder/requirements.txt: {r.name}{r.specifier} cannot be satisfied together with "
            f"pyproject.toml's {name}{deps[name]}")


def test_the_widget_front_ends_are_dependencies() -> None:
    """The live charts need these in the *server's* environment (found the hard way in the browser
    test: without anywidget's front end a FigureWidget draws nothing)."""
    deps = _pyproject_deps()
    for name in ("plotly", "anywidget", "ipywidgets", "jupyterlab"):
        assert name in deps, f"pyproject.toml: {name} is missing from dependencies"
    assert _compatible(deps["jupyterlab"], SpecifierSet(">=4,<5"))
    assert _compatible(deps["ipywidgets"], SpecifierSet(">=8,<9"))


def _after_postbuild(path: str) -> Path:
    """Where a path Binder opens comes from: postBuild makes the learner's working copy
    (`course/prepare.py --course notebooks --into my-notebooks`), so `my-notebooks/x` is `notebooks/x`."""
    m = re.search(r"course/prepare\.py --course (\S+) --into (\S+)", (BINDER / "postBuild").read_text())
    assert m, "binder/postBuild makes no working copy of the chapters"
    course, into = m.groups()
    if path == into or path.startswith(into + "/"):
        return REPO / course / path[len(into):].lstrip("/")
    return REPO / path


def test_binder_opens_an_existing_chapter() -> None:
    """The workspace binder/postBuild imports, and the README's Binder badge, name real files."""
    ws = json.loads((BINDER / "workspace.json").read_text())
    assert ws["metadata"]["id"] == "default"
    opened = [w.split(":", 1)[1] for w in ws["data"]["layout-restorer:data"]["main"]["dock"]["widgets"]]
    assert opened, "binder/workspace.json opens nothing"
    for path in opened:
        assert _after_postbuild(path).is_file(), f"binder/workspace.json opens {path}, which does not exist"
    cwd = ws["data"].get("file-browser-filebrowser:cwd", {}).get("path", "")
    assert _after_postbuild(cwd).is_dir(), f"binder/workspace.json: file browser folder {cwd!r} does not exist"
    readme = (REPO / "README.md").read_text() if (REPO / "README.md").exists() else ""
    for target in re.findall(r"mybinder\.org/v2/gh/[^)\s]*?urlpath=lab/tree/([^)\s&\"]+)", readme):
        assert _after_postbuild(target).is_file(), f"README.md's Binder badge opens {target}, which does not exist"


@pytest.mark.parametrize("line", ["-e .", ".", "--editable=."])
def test_project_install_lines_are_recognised(line: str) -> None:
    assert _installs_project([line])
    assert not _installs_project(["-e ../other"])
