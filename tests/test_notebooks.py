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
    """Run the chapter in a fresh kernel (which inherits MESHLAB_RECORD when the test sets it)."""
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
def test_chapter_executes_top_to_bottom(path: Path, kernel_env: None, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MESHLAB_RECORD", str(tmp_path / "record"))     # the states it passes through
    nb = _execute(path)
    _states_are_in_the_fidelity_corpus(path, tmp_path / "record")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors
    widget_views = [o for o in outputs if o.get("data", {}).get(WIDGET_MIME)]
    assert widget_views, "the chapter displays at least one live widget"
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert plots or len(widget_views) > 1, "the chapter draws plotly charts"
    html = json.dumps([o.get("data", {}) for o in outputs])
    assert "meshlab-verdict" in html, "an exercise verdict was shown"
    # a widget shows a failed re-apply/probe in its status line (✘) instead of raising: catch it
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    assert state, "widget state was stored"
    statuses = [m["state"].get("value", "") for m in state.values() if m.get("model_name") == "HTMLModel"]
    assert any("✔" in v for v in statuses), "a live widget finished a probe"
    assert not [v for v in statuses if "✘" in v], "a live widget failed"
    check = WHAT_THE_LEARNER_SEES.get(path.stem[:2])
    if check:
        check(nb)


# ---- what each chapter must show (deterministic facts only; Envoy's own random draws are not
#      seeded, so no split is asserted here — tests/test_lab_local.py checks those with bounds)

def _figures(nb: nbformat.NotebookNode) -> list[dict]:
    return [o["data"]["application/vnd.plotly.v1+json"] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]


def _figure(nb: nbformat.NotebookNode, title_part: str) -> dict:
    found = [f for f in _figures(nb) if title_part in (f["layout"].get("title", {}).get("text") or "")]
    assert found, f"no chart titled like {title_part!r}"
    return found[0]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _numbers(values) -> list[float]:
    if isinstance(values, dict):   # plotly's binary array encoding
        import base64
        import numpy as np
        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return list(values)


def _chapter1(nb: nbformat.NotebookNode) -> None:
    sticky = _figure(nb, "Which pod answered (40 requests)")
    assert len(sticky["data"]) == 1 and _numbers(sticky["data"][0]["y"]) == [1.0], "keep-alive: one pod"
    unready = _figure(nb, "v2 not ready")
    assert {t["name"] for t in unready["data"]} == {"v1"}, "a pod that is not ready gets no connection"
    spread = _figure(nb, "vs connections used")
    pods = {t["name"] for t in spread["data"]}
    assert len(pods) == 3, "a connection per request reaches every pod"


def _chapter2(nb: nbformat.NotebookNode) -> None:
    fig = _figure(nb, "Share of requests per pod")
    # x[0] = no sidecar (one pod takes it all), x[1] = sidecar (spread over the three pods)
    firsts = [_numbers(t["y"])[0] for t in fig["data"]]
    seconds = [_numbers(t["y"])[1] for t in fig["data"]]
    assert sorted(firsts)[-1] == 1.0 and sum(1 for v in seconds if v > 0) == 3
    assert "outbound|9080||reviews.default.svc.cluster.local" in _text(nb)


def _chapter3(nb: nbformat.NotebookNode) -> None:
    paths = _figure(nb, "Which subset served each path")
    by_subset = {t["name"]: _numbers(t["y"]) for t in paths["data"]}
    # /wpcatalog/items and /wpcatalogue (a string prefix) → v2; /reviews/1 and / → v1
    assert by_subset == {"v2": [1.0, 1.0, 0.0, 0.0], "v1": [0.0, 0.0, 1.0, 1.0]}
    upper = _figure(nb, "/WPCATALOG")
    assert "route reviews-v1-route" in upper["data"][0]["node"]["label"], "prefix match is case-sensitive"


def _chapter4(nb: nbformat.NotebookNode) -> None:
    text = _text(nb)
    assert "503 NC" in text and "503 UH" in text, "explain named both flavours"
    assert "IST0101" in text, "analyze flagged the undefined subset"
    unsafe = _figure(nb, "VirtualService first (unsafe)")
    safe = _figure(nb, "DestinationRule first (safe)")
    assert any(t["name"] == "503 NC" for t in unsafe["data"]), "the wrong order opens a 503 NC window"
    assert all(t["name"] == "200" for t in safe["data"]), "the safe order has no 503"
    # the gateway's clusters for reviews: none without the Service, three once it is back
    gateway_tables = [c for c in nb.cells if c.cell_type == "code" and 'envoy_config("gateway")' in c.source]
    without, with_service = (c.outputs[0]["data"]["text/plain"] for c in gateway_tables)
    assert "outbound|" not in without
    assert all(f"outbound|9080|{s}|reviews.default.svc.cluster.local" in with_service for s in ("", "v1", "v2"))


def _states_are_in_the_fidelity_corpus(path: Path, record: Path) -> None:
    """Every state the chapter passed through (and every probe it made there) is a scenario of the
    fidelity corpus, so Istio's own code has judged it (fidelity/README.md)."""
    sys.path.insert(0, str(NOTEBOOKS.parent))
    from fidelity import corpus, record as recorder
    seen = recorder.chapter_scenarios(path, record)
    committed = [s for s in corpus.scenarios("chapters", derived=False) if s.name.startswith(f"chapters/{path.stem}-")]
    assert seen, "the chapter recorded no state"
    assert [s.to_yaml() for s in seen] == [s.to_yaml() for s in committed], (
        f"{path.name} now passes through other states than fidelity/corpus/chapters.yaml holds: "
        "run `make fidelity-corpus` and `make fidelity-golden`, and commit fidelity/")


WHAT_THE_LEARNER_SEES = {"01": _chapter1, "02": _chapter2, "03": _chapter3, "04": _chapter4}
