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


def test_the_chapters_exist_in_order():
    numbers = [p.name[:2] for p in CHAPTERS]
    assert numbers == ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"], numbers


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
    # Run All must leave every widget working: the lab is closed by a button, never by a cell
    assert code[-1].source.strip() == "widgets.close_button(lab)", "the chapter ends with the close button"
    assert not [c.source for c in code if ".close()" in c.source], "no cell closes the lab"
    # teaching, not plumbing: public API only, short cells, no backend branching
    for c in code:
        assert "meshlab." not in c.source.replace("meshlab doctor", ""), f"public names only: {c.source!r}"
        assert not re.search(r"\bbackend\b.*==|if .*\.name ==", c.source), "never branch on the backend"
        assert len(c.source.splitlines()) <= 8, f"cell too long: {c.source!r}"


PREDICT = "🤔 **Predict:**"
TYPE_YOUR_GUESS = "Type your guess in the next cell (where it says `None`) and run it."


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_prediction_has_a_guess_cell_and_a_check_after_the_measurement(path: Path):
    """One wording everywhere; the guess cell right after the prompt; a check cell later that
    judges `guess` against data the chapter measured in between."""
    cells = _read(path).cells
    prompts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and PREDICT in c.source]
    assert prompts, "every chapter asks the learner to predict something before measuring it"
    for i in prompts:
        prompt = " ".join(cells[i].source.split())
        assert TYPE_YOUR_GUESS in prompt, cells[i].source
        guess = cells[i + 1]
        assert guess.cell_type == "code" and guess.source.startswith("guess = None"), guess.source
        later = [j for j in range(i + 2, len(cells)) if cells[j].cell_type == "code"]
        checks = [j for j in later if re.search(r"check\(\"[^\"]+\", guess,", cells[j].source)]
        assert checks, f"no check of the guess after {cells[i].source[:60]!r}"
        measured = [j for j in later if j < checks[0] and "lab." in cells[j].source]
        assert measured, "the check judges a measurement taken after the guess"
        nxt = [k for k in prompts if k > i]
        assert not nxt or checks[0] < nxt[0], "each guess is checked before the next prediction"
    others = [c.source for c in cells if c.cell_type == "markdown" and "type your guess" in c.source.lower()
              and PREDICT not in c.source and "How to use" not in c.source]
    assert not others, f"'type your guess' without a guess cell: {others}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_widget_follows_the_text_that_introduces_it(path: Path):
    """Text that introduces a widget (a 🖱️ heading or paragraph) is read just before it: the
    next code cell makes the widget, with no other topic in between."""
    cells = _read(path).cells
    for i, c in enumerate(cells):
        if c.cell_type == "markdown" and re.search(r"^(#+ )?🖱️", c.source, re.MULTILINE):
            nxt = next(cells[j] for j in range(i + 1, len(cells)) if cells[j].cell_type == "code")
            assert re.search(r"= widgets\.\w+\(", nxt.source), (c.source[:80], nxt.source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_markdown_renders_and_links_are_pinned(path: Path):
    text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    # emphasis hugging a quote mark renders as literal *"…"* in JupyterLab's markdown
    assert not re.search(r"[*_][\"“”]|[\"“”][*_]", text), re.findall(r".{20}[*_][\"“”].{20}", text)
    for url in re.findall(r"https://raw\.githubusercontent\.com/istio/istio/[^\s)]+", text):
        assert url.startswith("https://raw.githubusercontent.com/istio/istio/release-1.32/"), url
    assert "kubectl get endpoints " not in text, "Endpoints is deprecated since Kubernetes 1.33: EndpointSlices"
    assert "grep ' 503 NC '" not in text or "TEXT" in text, "the course's Istio writes JSON access logs"


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
    assert not [v for v in statuses if "×" in v], "status lines say 'N got 200', never 'N × 200'"
    # every widget carries a text/html twin for pages without a kernel (make course)
    assert all("text/html" in o["data"] for o in widget_views)
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


def _code_outputs(nb: nbformat.NotebookNode, needle: str) -> list:
    """Outputs of the code cells whose source contains `needle`."""
    return [o for c in nb.cells if c.cell_type == "code" and needle in c.source for o in c.outputs]


def _verdicts(nb: nbformat.NotebookNode) -> dict[str, str]:
    """exercise id → the verdict's HTML, for every check the chapter ran."""
    out = {}
    for c in nb.cells:
        for o in c.get("outputs", []):
            h = o.get("data", {}).get("text/html", "")
            m = re.search(r'class="meshlab-verdict".*?<small>\(([^)]+)\)</small>', h, re.S)
            if m:
                out[m.group(1)] = h
    return out


def _output_text(nb: nbformat.NotebookNode, source: str) -> str:
    """The text/plain output of the first code cell whose source is exactly `source`."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip() == source)
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def _explained(nb: nbformat.NotebookNode, source: str) -> list[str]:
    """The cause codes an explain cell printed: each group's code, then its parts' (`+ code:`)."""
    found = re.findall(r"· ([\w.-]+)$|^  \+ ([\w.-]+):", _output_text(nb, source), re.M)
    return [group or part for group, part in found]


def _chapter0(nb: nbformat.NotebookNode) -> None:
    doctor = "".join(o.get("text", "") for o in _code_outputs(nb, "meshlab doctor"))
    assert doctor.splitlines()[0].startswith("local backend: ready"), "doctor says first what this learner needs"
    head = next(o["data"]["text/html"] for o in _code_outputs(nb, "first.head()") if "text/html" in o.get("data", {}))
    header = head.split("</thead>")[0]
    cols = re.findall(r"<th>([a-z_]+)</th>", header)
    assert cols.index("pod") < cols.index("cluster") and cols.index("version") < cols.index("route"), cols
    assert cols.index("pod") < 5, f"pod is among the first columns: {cols}"
    assert "0.predict-versions" in _verdicts(nb) and "Measured:" in _verdicts(nb)["0.predict-versions"]


def _chapter1(nb: nbformat.NotebookNode) -> None:
    sticky = _figure(nb, "Which pod answered (40 requests)")
    answered = [y for t in sticky["data"] for y in _numbers(t["y"]) if y > 0]
    assert answered == [1.0], "keep-alive: one pod"
    unready = _figure(nb, "v2 not ready")
    v2 = next(t for t in unready["data"] if t["name"] == "v2")
    assert _numbers(v2["y"]) == [0.0] and v2["text"][0].startswith("not ready"), \
        "a pod that is not ready gets no connection, and shows at 0 % instead of vanishing"
    tables = [o["data"]["text/plain"] for o in _code_outputs(nb, "charts.endpoints(")]
    assert len(tables) == 2 and "in EndpointSlice" in tables[0]
    v2_row = next(ln for ln in tables[1].splitlines() if "reviews-v2" in ln).split()
    assert v2_row[-3:] == ["True", "False", "False"], "the unready pod stays in the EndpointSlice, ready=false"
    repeats = "".join(o.get("text", "") for o in _code_outputs(nb, "fresh.pod.shift()"))
    assert int(repeats.split()[0]) > 0, "random, not round-robin: some connections repeat the pod before"
    pinned = _figure(nb, "sessionAffinity: ClientIP")
    fresh_bar = [_numbers(t["y"])[0] for t in pinned["data"]]
    pinned_bar = [_numbers(t["y"])[1] for t in pinned["data"]]
    assert sum(1 for v in fresh_bar if v > 0) == 3 and sorted(pinned_bar)[-1] == 1.0, \
        "sessionAffinity: ClientIP sends every new connection of one client to one pod"
    spread = _figure(nb, "vs connections used")
    pods = {t["name"] for t in spread["data"] if max(_numbers(t["y"])) > 0}
    assert len(pods) == 3, "a connection per request reaches every pod"


def _chapter2(nb: nbformat.NotebookNode) -> None:
    first, tcp = [f for f in _figures(nb) if (f["layout"].get("title", {}).get("text") or "")
                  .startswith("Share of requests per pod")][:2]
    # x[0] = no sidecar (one pod takes it all), x[1] = sidecar (spread over the three pods)
    firsts = [_numbers(t["y"])[0] for t in first["data"]]
    seconds = [_numbers(t["y"])[1] for t in first["data"]]
    assert sorted(firsts)[-1] == 1.0 and sum(1 for v in seconds if v > 0) == 3
    assert "outbound|9080||reviews.default.svc.cluster.local" in _text(nb)
    # the same sidecar on a TCP port: one connection, one pod (real Envoy's tcp_proxy)
    http_bar = [_numbers(t["y"])[0] for t in tcp["data"]]
    tcp_bar = [_numbers(t["y"])[1] for t in tcp["data"]]
    assert sum(1 for v in http_bar if v > 0) == 3 and sorted(tcp_bar)[-1] == 1.0
    listeners = "".join(o["data"]["text/plain"] for o in _code_outputs(nb, '"listeners"'))
    assert re.search(r"127\.\d+\.2\.\d+_9090\s+Cluster: outbound\|9090\|\|reviews-tcp", listeners), listeners
    routes = "".join(o["data"]["text/plain"] for o in _code_outputs(nb, '"routes"'))
    assert re.search(r"127\.\d+\.2\.\d+", routes), "the route lists the ClusterIP among the host's names"
    assert "2.slow-pod-policy" in _verdicts(nb)
    # explain says which route served: Istio's default route on the HTTP port, a tcp_proxy on the TCP one
    assert _explained(nb, "lab.explain(meshed)")[:2] == ["ok.default-route", "ok.no-destination-rule"]
    assert _explained(nb, "lab.explain(over_tcp)")[0] == "ok.tcp-proxy"


def _chapter3(nb: nbformat.NotebookNode) -> None:
    paths = _figure(nb, "Which subset served each path")
    by_subset = {t["name"]: _numbers(t["y"]) for t in paths["data"]}
    # /wpcatalog/items and /wpcatalogue (a string prefix) → v2; /reviews/1 and / → v1
    assert by_subset == {"v2": [1.0, 1.0, 0.0, 0.0], "v1": [0.0, 0.0, 1.0, 1.0]}
    upper = _figure(nb, "/WPCATALOG")
    assert "route reviews-v1-route" in upper["data"][0]["node"]["label"], "prefix match is case-sensitive"
    # the slider measured 50/50, yet the lab below still routes 80/20 (a 50/50 lab gives v2 > 35 %
    # with probability < 1e-6 in 200 draws; 80/20 gives it with probability < 1e-6 as well)
    after = next(o["data"]["text/plain"] for o in _code_outputs(nb, "after = lab.probe"))
    v2 = next(ln for ln in after.splitlines() if " v2 " in f" {ln} ").split()
    assert float(v2[3]) < 35.0, after
    assert "%" in after, "share tables print percentages, not raw floats"
    # the write-it-yourself DestinationRule was applied and probed: the skeleton has no subsets
    dr = _verdicts(nb)["3.write-destinationrule"]
    assert 'data-ok="False"' in dr and "503 NC" in dr
    # explain names the weighted rule, and the rule Envoy matched for /wpcatalogue (a string prefix)
    assert _explained(nb, "lab.explain(split)")[0] == "ok.virtualservice-route"
    assert _explained(nb, 'lab.explain(seen["/wpcatalogue"])')[0] == "ok.virtualservice-route"
    assert "spec.http[0] ('reviews-v2-routes')" in _output_text(nb, 'lab.explain(seen["/wpcatalogue"])')


def _chapter4(nb: nbformat.NotebookNode) -> None:
    text = _text(nb)
    # through the gateway, the gateway's own VirtualService routed; the seed's is bound to sidecars only
    first = _explained(nb, "lab.explain(outside)")
    assert first[0] == "ok.virtualservice-route" and "note.vs-mesh-only" in first
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
    # the ServiceEntry skeleton was applied and probed through the gateway (no endpoints yet: UH)
    se = _verdicts(nb)["4.fix-with-serviceentry"]
    assert 'data-ok="False"' in se and "503 UH" in se
    for ex in ("4.predict-no-service", "4.predict-undefined-subset"):
        assert "Measured:" in _verdicts(nb)[ex]
    assert "dns error" in _verdicts(nb)["4.predict-no-service"] and "503 NC" in _verdicts(nb)["4.predict-no-service"]


def _states_are_in_the_fidelity_corpus(path: Path, record: Path) -> None:
    """Every state the chapter passed through (and every probe it made there) is a scenario of the
    fidelity corpus, so Istio's own code has judged it (fidelity/README.md)."""
    sys.path.insert(0, str(NOTEBOOKS.parent))
    from fidelity import corpus, record as recorder
    seen = recorder.chapter_scenarios(path, record)
    committed = [s for s in corpus.scenarios("chapters", derived=False) if s.name.startswith(f"chapters/{path.stem}-")]
    assert seen, "the chapter recorded no state"
    assert committed, (f"{path.name}'s states are not in the fidelity corpus, so Istio's own code never judged "
                       f"them. Record them: {corpus.record_command(path.stem)}")
    assert [s.to_yaml() for s in seen] == [s.to_yaml() for s in committed], (
        f"{path.name} now passes through other states than fidelity/corpus/chapters.yaml holds. "
        f"Record them again: {corpus.record_command(path.stem)}")


def _markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _bars(fig: dict) -> dict[str, dict[str, float]]:
    """trace name → {x: y} of a bar chart."""
    return {t["name"]: dict(zip(t["x"], _numbers(t["y"]))) for t in fig["data"] if t.get("type") == "bar"}


def _histogram(fig: dict) -> dict[str, list[float]]:
    return {t["name"]: _numbers(t["x"]) for t in fig["data"] if t.get("type") == "histogram"}


def _bands(fig: dict) -> list[str]:
    """The pods a `charts.ejections` figure shows as ejected (from Envoy's /clusters)."""
    return [t["y"][0] for t in fig["data"] if t.get("name") == "ejected (Envoy /clusters)"]


#: What chapter 5 states about Istio's default route (`test_chapter5_states_istiods_default_retry_policy`
#: checks the same strings against istiod's own translation).
DEFAULT_ROUTE_TEXT = ("`timeout` `0s`", "`num_retries` **{num_retries}**", "`retry_on` **`{retry_on}`**")


def _chapter5(nb: nbformat.NotebookNode) -> None:
    text = _markdown(nb)
    # the live default route says what the text says: 0s, 2 retries, Istio's retry_on, no status codes
    table = _output_text(nb, 'config = lab.envoy_config()\ncharts.config_table(config, "routes", match="reviews", columns=[\n'
                             '    "route_name", "timeout", "num_retries", "retry_on", "retriable_status_codes"])')
    row = next(ln for ln in table.splitlines() if " default " in f" {ln} ").split()
    assert row[1:] == ["default", "0s", row[3], row[4], "-"], table
    assert "`timeout` `0s`" in text and f"`num_retries` **{row[3]}**" in text and f"`retry_on` **`{row[4]}`**" in text
    # a dead pod: every request 200, some after a second attempt (Envoy's own count)
    dead = _bars(_figure(nb, "A dead pod"))
    assert set(dead) == {"200"} and dead["200"].get("2 attempts", 0) > 0
    assert "ok.retried" in _explained(nb, "lab.explain(dead)")
    # the app's 503: passed through after one attempt
    passed = _bars(_figure(nb, "Retried or passed through"))
    assert passed["503"].get("pod answers 503 · 1", 0) > 0 and not passed["503"].get("pod answers 503 · 2")
    assert _explained(nb, "lab.explain(failing)")[0] == "app.error-status"
    # 504 UT: the route's timeout, then one attempt's, not retried under Istio's retryOn
    for title, limit in (("A route timeout of 200 ms", 200), ("perTryTimeout 100 ms, Istio's default", 100)):
        ut = _histogram(_figure(nb, title))["504 UT"]
        assert ut and all(limit - 5 <= v < limit + 150 for v in ut), (title, ut)
    assert _explained(nb, "lab.explain(slow)")[0] == "UT.route-timeout"
    assert _explained(nb, "lab.explain(per_try)")[0] == "UT.per-try-timeout"
    assert "504 UT" in _verdicts(nb)["5.predict-per-try"]
    # gateway-error retries the slow attempt: every request 200 on the slider at 100 ms
    assert set(_histogram(_figure(nb, "perTryTimeout 100ms: how long"))) == {"200"}
    fix = _verdicts(nb)["5.fix-slow-pod"]
    assert 'data-ok="False"' in fix and "504 UT" in fix, "the skeleton has no perTryTimeout"
    # retries exhausted: URX after 3 attempts; with dead pods URX and UF
    assert _bars(_figure(nb, "Every pod answers 503, retryOn 5xx")) == {"503 URX": {"3 attempts": 20.0}}
    assert "URX.retries-exhausted" in _explained(nb, "lab.explain(exhausted)")
    assert "503 URX,UF" in _output_text(nb, 'for pod in lab.pods()["name"]:\n    lab.kill_pod(pod, notready_after=None)\n'
                                            'unreachable = lab.probe("http://reviews:9080/", n=10, seed=1)\n'
                                            'charts.outcomes(unreachable)')
    assert _explained(nb, "lab.explain(unreachable)")[0] == "UF.dead-pod"
    # a retried POST: the app's own log counts more requests than were sent
    got = re.search(r"the app received (\d+) requests for 20 POSTs", _verdicts(nb)["5.predict-post"])
    assert got and int(got.group(1)) > 20
    assert "note.non-idempotent-retried" in _explained(nb, "lab.explain(posts)")
    # fault injection: DI after the delay (the route timeout does not count it); FI with 0 attempts
    di = _histogram(_figure(nb, "fault.delay 300 ms"))
    assert set(di) == {"200 DI"} and min(di["200 DI"]) >= 295
    assert "DI.fault-delay" in _explained(nb, "lab.explain(delayed)")
    fi = _bars(_figure(nb, "fault.abort 50 %"))
    assert {x for x, n in fi["503 FI"].items() if n} == {"0 attempts"}, "no attempt left Envoy"
    assert _explained(nb, "lab.explain(aborted)")[0] == "FI.fault-abort"
    assert "Measured:" in _verdicts(nb)["5.predict-dead-pod"]


def _chapter6(nb: nbformat.NotebookNode) -> None:
    limits = "".join(o["data"]["text/plain"] for o in _code_outputs(nb, "destinationrule-pool.yaml"))
    assert re.search(r"reviews\.default\.svc\.cluster\.local\s+1\s+2\s*$", limits, re.M), limits
    pool = _bars(_figure(nb, "One connection, two waiting"))
    refused = pool["503 UO (overflow)"]
    assert refused["1 at a time"] == 0 and refused["8 at a time"] > 0
    assert sum(pool["waited in the pending queue"].values()) > 0, "Envoy's counters saw the pending queue"
    assert _explained(nb, 'lab.explain(pool["8 at a time"])')[0] == "UO.circuit-breaker"
    assert _bars(_figure(nb, "What the connection pool did"))["503 UO (overflow)"]["16 at a time"] > 0
    assert 'data-ok="False"' in _verdicts(nb)["6.fix-pool"] and "503 UO" in _verdicts(nb)["6.fix-pool"]
    # one failing pod ejected (Envoy's /clusters), then every pod → 503 UH
    ejected = _bands(_figure(nb, "v2 answers 503"))
    assert len(ejected) == 1 and ejected[0].startswith("reviews-v2-")
    every = _figure(nb, "Every pod answers 503")
    assert len(set(_bands(every))) == 3
    # the text's first point: Envoy's workers get the last ejection in the next batch
    # (update_merge_window, 1 s), so a pod answers for a while inside its band
    bands = [(t["y"][0], *t["x"]) for t in every["data"] if t.get("name") == "ejected (Envoy /clusters)"]
    answered = [(y, x) for t in every["data"] if t.get("mode") == "markers" for x, y in zip(_numbers(t["x"]), t["y"])]
    assert any(pod == y and start < x < end for pod, start, end in bands for y, x in answered)
    assert _explained(nb, "lab.explain(all_failing)")[0] == "UH.outlier-ejected"
    assert "the last third got 503 UH" in _verdicts(nb)["6.predict-all-ejected"]
    # maxEjectionPercent unset (10 %): no ejection; a 500 is no gateway error: no ejection either
    assert not _bands(_figure(nb, "maxEjectionPercent unset"))
    assert "note.ejection-capped" in _explained(nb, "lab.explain(capped)")
    assert not _bands(_figure(nb, "only gateway errors counted"))
    codes = _explained(nb, "lab.explain(internal)")
    assert "note.not-a-gateway-error" in codes and "note.ejection-capped" not in codes


WHAT_THE_LEARNER_SEES = {"00": _chapter0, "01": _chapter1, "02": _chapter2, "03": _chapter3, "04": _chapter4,
                         "05": _chapter5, "06": _chapter6}


@pytest.mark.slow
def test_chapter5_states_istiods_default_retry_policy():
    """The numbers chapter 5 states about the default route are istiod's, at the pinned release
    (pilot/pkg/networking/core/route/retry/retry.go, through the oracle), for the chapter's state."""
    from _oracle import lab_state, oracle_config, route
    nb = _read(NOTEBOOKS / "05-timeouts-and-retries.ipynb")
    st = lab_state(sorted(str(p) for p in (NOTEBOOKS / "manifests" / "01-service").glob("*.yaml")))
    r = route(oracle_config(st), "9080", "reviews.default.svc.cluster.local:9080")
    assert r.get("name") == "default"
    policy = r["route"]["retry_policy"]
    assert not r["route"].get("timeout"), "istiod's default route: no timeout (0s)"
    assert "retriable_status_codes" not in policy, "the chapter says the list is empty"
    for s in DEFAULT_ROUTE_TEXT:
        assert s.format(num_retries=policy["num_retries"], retry_on=policy["retry_on"]) in _markdown(nb)


def _chapter7(nb: nbformat.NotebookNode) -> None:
    text = _text(nb)
    # real Envoy produced the race: the app closed the keep-alive connection as a request came
    assert _explained(nb, "lab.explain(quiet)")[0] == "UC.keepalive-race"
    assert "Measured:" in _verdicts(nb)["7.predict-quiet-traffic"] and "503 UC" in _verdicts(nb)["7.predict-quiet-traffic"]
    sent, reached, uc = (int(x) for x in re.findall(r"(\d+) sent, (\d+) reached the app, (\d+) got 503 UC",
                                                     "".join(o.get("text", "") for o in _code_outputs(nb, "app_log(quiet)")))[0])
    assert uc >= 1 and reached == sent - uc, "a raced request never reaches the app"
    assert "MLB0015" in text, "analyze warned before any traffic"
    # the race window: UC requests sent a little more than the app's 175 ms apart, fewer far below it
    window = _figure(nb, "by the time between them")
    raced = next(t for t in window["data"] if t["name"] == "503 UC")
    at = dict(zip(_numbers(raced["x"]), _numbers(raced["y"])))
    inside = [y for x, y in at.items() if 180 <= x <= 220]
    below = [y for x, y in at.items() if x <= 120]
    assert inside and max(inside) > 0 and below and max(below) < max(inside), at
    # the idleTimeout fix: the same quiet traffic races no more (at most one request of 12, when a
    # proxy on this shared 2-core machine stalls past its own timer; about half of them raced before)
    fixed = _figure(nb, "before and after the idleTimeout")
    uc_bars = [_numbers(t["y"]) for t in fixed["data"] if t["name"] == "503 UC"]
    assert uc_bars and uc_bars[0][0] >= 2 / 12 and uc_bars[0][1] <= 1 / 12, uc_bars
    fix = _verdicts(nb)["7.fix-idle-timeout"]
    assert 'data-ok="False"' in fix and "503 UC" in fix, "the skeleton was applied and still raced"
    # retryOn reset: every request answered, some on a second attempt
    outcomes = "".join(o["data"]["text/plain"] for o in _code_outputs(nb, "retried = lab.probe"))
    assert "503" not in outcomes and "200" in outcomes
    attempts = _output_text(nb, "retried.attempts.value_counts()")
    assert re.search(r"^2\s+[1-9]", attempts, re.M), attempts
    assert {"ok.retried", "note.retry-hides-keepalive-race"} <= set(_explained(nb, "lab.explain(retried)"))
    # the client gives up first (DC, status 0); a route timeout makes Envoy answer 504 UT
    assert _explained(nb, "lab.explain(impatient)")[0] == "DC.client-timeout"
    assert _explained(nb, "lab.explain(answered)")[0] == "UT.route-timeout"


def _chapter8(nb: nbformat.NotebookNode) -> None:
    text = _text(nb)
    # source IP: the three users come from one client pod, so they reach one pod
    by_ip = _figure(nb, "hash on: source IP")
    pods = [t for t in by_ip["data"] if max(_numbers(t["y"])) > 0]
    assert len(pods) == 1 and _numbers(pods[0]["y"]) == [1.0, 1.0, 1.0]
    assert 'data-ok="False"' in _verdicts(nb)["8.hash-cookie"]
    # a hash across a 50/50 split reaches one pod per subset
    assert "Measured: 2 pod(s)" in _verdicts(nb)["8.predict-canary-pods"]
    assert "note.hash-not-sticky-across-subsets" in _explained(nb, "lab.explain(jason)")
    assert "MLB0017" in text and "IST0133" in text and "MLB0014" not in text
    # routed by a match: each user on exactly one pod
    matched = _figure(nb, "Routed by a match")
    per_user = list(zip(*[_numbers(t["y"]) for t in matched["data"]]))
    assert all(sorted(u)[-1] == 1.0 for u in per_user), per_user
    # failover without outlierDetection: every zone served
    spread = _figure(nb, "failover, no outlierDetection")
    assert sum(1 for t in spread["data"] if _numbers(t["y"])[0] > 0) == 3
    assert "note.locality-failover-without-outlier-detection" in _explained(nb, "lab.explain(spread)")
    # explain summarises the zone pods by zone (they are all v1: "v1 100%" said nothing)
    for source in ("lab.explain(spread)", "lab.explain(failing)"):
        assert "by zone: " in _output_text(nb, source) and "v1 100%" not in _output_text(nb, source), source
    assert "us-east-a" in _output_text(nb, "lab.explain(spread)").split("by zone: ")[1].splitlines()[0]
    # with it: the client's zone only, then the same region's other zone (priority 1), never us-east
    local = _figure(nb, "Locality: healthy, then eu-west-a failing")
    bars = {t["name"]: _numbers(t["y"]) for t in local["data"]}
    west_a = next(v for k, v in bars.items() if "west-a" in k)
    west_b = next(v for k, v in bars.items() if "west-b" in k)
    east = next(v for k, v in bars.items() if "east" in k and "west" not in k)
    assert west_a[0] == 1.0 and west_b[1] > 0.5 and east == [0.0, 0.0], bars
    assert "ok.locality-failover" in _explained(nb, "lab.explain(failing)")
    # ... and says why: the local pod was ejected, priority 0 kept no healthy host, priority 1 took it all
    assert "ok.failover-after-ejection" in _explained(nb, "lab.explain(failing)")
    assert "priority 0 0 %, priority 1 100 %" in _output_text(nb, "lab.explain(failing)")
    # the pod's own 503s reach the client until consecutive5xxErrors (2) ejects it
    passed_on = re.search(r"^503 — (\d+) of 30 requests", _output_text(nb, "lab.explain(failing)"), re.M)
    assert passed_on and 1 <= int(passed_on.group(1)) <= 3, _output_text(nb, "lab.explain(failing)")


WHAT_THE_LEARNER_SEES.update({"07": _chapter7, "08": _chapter8})


def _chapter9(nb: nbformat.NotebookNode) -> None:
    # chapter 3's split through the Gateway's own Envoy, named by the HTTPRoute rule
    assert _explained(nb, "lab.explain(split)")[0] == "ok.httproute-rule"
    # PathPrefix is segment-based: /wpcatalog and /wpcatalog/items → v2, /wpcatalogue and / → v1
    paths = _figure(nb, "Which version served each path (HTTPRoute PathPrefix)")
    by_version = {t["name"]: _numbers(t["y"]) for t in paths["data"]}
    assert by_version["v2"] == [1.0, 1.0, 0.0, 0.0] and by_version["v1"] == [0.0, 0.0, 1.0, 1.0], by_version
    # ... while the VirtualService's string prefix sends /wpcatalogue to v2
    side = _figure(nb, "/wpcatalogue: string prefix vs path segments")
    side_v2 = next(t for t in side["data"] if t["name"] == "v2")
    assert _numbers(side_v2["y"])[0] == 1.0 and _numbers(side_v2["y"])[1] == 0.0
    # the missing backend: 500 NC through the HTTPRoute, 503 NC through chapter 4's VirtualService
    assert _explained(nb, "lab.explain(httproute)")[0] == "NC.backend-not-found"
    assert _explained(nb, "lab.explain(virtualservice)")[0] == "NC.no-service"
    assert "500 NC" in _verdicts(nb)["9.predict-missing-backend"]
    statuses = [o["data"]["text/plain"] for o in _code_outputs(nb, 'kind="HTTPRoute"')]
    assert "BackendNotFound" in statuses[0] and "BackendNotFound" not in statuses[1], statuses
    assert "IST0171" in "".join(o["data"]["text/plain"] for o in _code_outputs(nb, "analyze(lab)"))
    # a DestinationRule still shapes the backend Service's cluster
    assert "ok.destination-rule-policy" in _explained(nb, 'lab.apply("manifests/09-gateway-api/destinationrule-v1-round-robin.yaml")\n'
                                                          'after = lab.probe("http://reviews.example.com/", via="web-istio", n=30, seed=1)\n'
                                                          'lab.explain(after)')
    # the conversion skeleton was applied and probed: no parentRef, so Istio's default route served
    assert 'data-ok="False"' in _verdicts(nb)["9.convert"] and "default route" in _verdicts(nb)["9.convert"]


WHAT_THE_LEARNER_SEES.update({"09": _chapter9})
