"""Every chapter runs top to bottom on the local backend (real Envoy), widgets included.

nbclient executes the stored notebook in a fresh kernel, exactly as `make course` does; a cell
that raises fails the test with the cell's traceback. Widgets run headless: the notebooks drive
their sliders from code (`weights.set(50)`), which runs the same re-apply / re-probe / redraw as a
drag in the browser.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from meshlab import manifests

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_the_five_chapters_exist_in_order():
    assert [p.name[:2] for p in CHAPTERS] == ["00", "01", "02", "03", "04"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_built_by_the_rules(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "store notebooks without outputs"
    text = "\n".join(c.source for c in nb.cells)
    first_md = next(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "In this chapter you will" in first_md, "learning objectives at the top"
    assert "On a real cluster" in text
    assert "check(" in text or "widgets.quiz(" in text, "at least one auto-checked exercise"
    assert "widgets." in text, "an interactive chart"
    assert code[-1].source.strip().endswith("lab.close()"), "clean up the lab at the end"
    # teaching, not plumbing: public API only, short cells, no backend branching
    for c in code:
        assert "meshlab." not in c.source.replace("meshlab doctor", ""), f"public names only: {c.source!r}"
        assert not re.search(r"\bbackend\b.*==|if .*\.name ==", c.source), "never branch on the backend"
        assert len(c.source.splitlines()) <= 8, f"cell too long: {c.source!r}"


def test_manifests_referenced_by_the_chapters_exist_and_load_one_by_one():
    referenced = set()
    for path in CHAPTERS:
        for m in re.finditer(r'"(manifests/[^"]+)"', "\n".join(c.source for c in _read(path).cells)):
            referenced.add(m.group(1))
    assert referenced
    for ref in sorted(referenced):
        assert (NOTEBOOKS / ref).exists(), ref
    for f in sorted((NOTEBOOKS / "manifests").rglob("*.yaml")):
        objs = manifests.load(str(f))
        assert objs, f"{f} holds no object"
        for o in objs:
            assert o.namespace == "default", f"{f}: course objects live in namespace default"


def _execute(path: Path, timeout: int = 240) -> nbformat.NotebookNode:
    from nbclient import NotebookClient
    nb = _read(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


@pytest.fixture()
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # `!meshlab doctor` in chapter 0 runs the CLI of this environment
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes_top_to_bottom(path: Path, kernel_env: None):
    nb = _execute(path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors
    widget_views = [o for o in outputs if o.get("data", {}).get(WIDGET_MIME)]
    assert widget_views, "the chapter displays at least one live widget"
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert plots or len(widget_views) > 1, "the chapter draws plotly charts"
    html = json.dumps([o.get("data", {}) for o in outputs])
    assert "meshlab-verdict" in html, "an exercise verdict was shown"
