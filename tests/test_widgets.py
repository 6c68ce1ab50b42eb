"""Explorers re-apply YAML and re-probe when their control moves, and redraw the live chart.

A recording stand-in for the lab is fine here: this tests the widgets' own logic (what they apply,
how they redraw). The notebooks test drives the same widgets against the real local backend.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from meshlab import widgets
from _probe_frames import frame, split_probe

VS = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20}]}]},
}
DR = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
      "metadata": {"name": "reviews"}, "spec": {"host": "reviews"}}


class RecordingLab:
    """Answers probes with a v2 share equal to the VirtualService weight in force; `restoring()`
    puts that weight back like `Lab.restoring` puts objects back, and counts its uses."""

    def __init__(self) -> None:
        self.applied: list[dict] = []
        self.probes: list[dict] = []
        self.p_v2 = 0.5
        self.trials = 0

    def apply(self, obj):
        self.applied.append(obj)
        if obj["kind"] == "VirtualService":
            w = [r["weight"] for r in obj["spec"]["http"][0]["route"]]
            self.p_v2 = w[1] / sum(w)

    def objects(self):
        return [VS]

    def pods(self):
        return pd.DataFrame({"name": ["reviews-v1-a", "reviews-v2-b"], "version": ["v1", "v2"],
                             "ready": [True, False]})

    @contextlib.contextmanager
    def restoring(self):
        before = self.p_v2
        self.trials += 1
        try:
            yield self
        finally:
            self.p_v2 = before

    def probe(self, url, n=100, **kw):
        self.probes.append({"url": url, "n": n, **kw})
        if kw.get("via") == "none":
            conns = kw.get("concurrency", 1) if kw.get("keepalive", True) else n
            return frame([{"pod": f"pod-{i % conns % 2}", "version": "v1", "conn": i % conns} for i in range(n)])
        return split_probe(n, self.p_v2, seed=len(self.probes))


def _bar_y(fw: go.FigureWidget) -> list[float]:
    return list(fw.data[0].y)


def test_weight_slider_applies_weights_probes_and_changes_the_chart(tmp_path: Path):
    import yaml
    path = tmp_path / "vs.yaml"
    path.write_text(yaml.safe_dump(VS))
    lab = RecordingLab()
    w = widgets.weight_slider(lab, path, "http://reviews:9080/", n=300)
    assert lab.applied[-1]["spec"]["http"][0]["route"][1]["weight"] == 20
    before = _bar_y(w.figure)
    assert list(w.figure.data[1].y) == pytest.approx([0.8, 0.2])
    w.slider.value = 70                                   # what a browser drag ends with
    routes = lab.applied[-1]["spec"]["http"][0]["route"]
    assert [r["weight"] for r in routes] == [30, 70]
    assert list(w.figure.data[1].y) == pytest.approx([0.3, 0.7])
    after = _bar_y(w.figure)
    assert after != before and after[1] > 0.55
    assert set(w.results) == {"20", "70"} and lab.probes[-1]["n"] == 300
    assert "meshlab-weight-slider" in w.slider._dom_classes
    assert "✔" in w.status.value and "all 300 requests got 200" in w.status.value
    # each measurement ran inside lab.restoring(): the lab's own weights are back afterwards
    assert lab.trials == 2 and lab.p_v2 == 0.5
    # it says what it changes and what it runs against
    assert "changes</b> VirtualService default/reviews" in w.scope.value
    assert "VirtualService default/reviews (1 http rule)" in w.scope.value
    assert "not ready: reviews-v2-b" in w.scope.value
    assert VS["spec"]["http"][0]["route"][1]["weight"] == 20     # the template dict was not mutated
    assert path.read_text() == yaml.safe_dump(VS)                # nor the file (chapter 3 says so)


def test_weight_slider_needs_two_destinations():
    one = {**VS, "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}
    with pytest.raises(ValueError, match="exactly 2 destinations"):
        widgets.weight_slider(RecordingLab(), one, "http://reviews:9080/")


def test_weight_slider_shows_lab_errors_in_the_widget():
    class Failing(RecordingLab):
        def probe(self, url, n=100, **kw):
            raise RuntimeError("Envoy rejected the update: boom")
    w = widgets.weight_slider(Failing(), VS, "http://reviews:9080/")
    assert "boom" in w.status.value and w.results == {}


def test_connection_explorer_adds_one_bar_per_choice():
    lab = RecordingLab()
    c = widgets.connections(lab, "http://reviews:9080/", n=40)
    assert lab.probes[-1]["keepalive"] is True and lab.probes[-1]["concurrency"] == 1
    c.slider.value = "new per request"
    assert lab.probes[-1]["keepalive"] is False and lab.probes[-1]["via"] == "none"
    assert len(c.figure.data[0].x) == 2
    assert list(c.results) == ["1 conn", "new per request"]
    assert lab.trials == 0 and "changes</b> nothing" in c.scope.value     # it only sends requests
    # a pod that answered nothing (here: not ready) is in the legend, at 0 %
    assert any(t.name == "reviews-v2-b (not ready)" and list(t.y) == [0.0, 0.0] for t in c.figure.data)


def test_lb_picker_rewrites_the_policy_and_compares():
    lab = RecordingLab()
    p = widgets.lb_picker(lab, DR, "http://reviews:9080/", n=50, concurrency=3)
    assert lab.applied == []                   # nothing runs until a policy is picked
    p.picker.value = "RANDOM"
    assert lab.applied[-1]["spec"]["trafficPolicy"]["loadBalancer"] == {"simple": "RANDOM"}
    assert lab.probes[-1]["concurrency"] == 3
    p.compare()
    assert list(p.results) == ["RANDOM", "ROUND_ROBIN", "LEAST_REQUEST"]
    assert [a["spec"]["trafficPolicy"]["loadBalancer"]["simple"] for a in lab.applied[-3:]] == \
        ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"]
    assert len(p.figure.data[0].x) == 3
    assert lab.trials == 4
    assert p.picker.style.button_width == "auto"         # labels are never cut short


def test_push_order_draws_the_runners_timeline():
    calls = []

    def runner(order):
        calls.append(order)
        bad = order[0] == "VirtualService"
        rows = [{"t": i * 0.01, "status": 503 if bad and i < 30 else 200, "flags": "NC" if bad and i < 30 else "-",
                 "pod": "" if bad and i < 30 else "p", "version": "v1"} for i in range(60)]
        return frame(rows), {order[0]: 0.0, order[1]: 0.3}

    lab = RecordingLab()
    w = widgets.PushOrderRace(runner, lab, changes=["VirtualService default/reviews"])
    w.picker.value = "VirtualService first (unsafe)"
    assert calls == [["VirtualService", "DestinationRule"]]
    assert any(t.name == "503 NC" for t in w.figure.data)
    assert "60 requests: 30 got 503 NC, 30 got 200" in w.status.value and "×" not in w.status.value
    assert lab.trials == 1
    assert w.picker.style.button_width == "auto"
    snapshot = w.chart()
    assert type(snapshot).__name__ == "Figure" and not isinstance(snapshot, go.FigureWidget) and [t.name for t in snapshot.data] == [t.name for t in w.figure.data]
    w.run("DestinationRule first (safe)")
    assert not any(t.name == "503 NC" for t in w.figure.data)
    with pytest.raises(ValueError):
        w.run("sideways")


def test_quiz_checks_the_choice():
    q = widgets.quiz("1.balances", ["requests", "connections"])
    assert q.submit().ok is None
    q.choice.value = "requests"
    q.button.click()
    assert q.verdict is not None and q.verdict.ok is False and "Not yet" in q.result.value
    q.choice.value = "connections"
    assert q.submit().ok is True
    with pytest.raises(KeyError):
        widgets.quiz("nope", ["a"])


def test_the_chart_is_the_views_synced_state_so_a_browser_that_draws_late_still_shows_the_last():
    """Run All under load left charts empty: plotly's FigureWidget sends changes as one-shot
    messages a view still loading drops. The explorer's chart is an Output widget whose `outputs`
    (synced state) hold the last chart as plotly's mimetype, whatever the kinds of its traces."""
    lab = RecordingLab()
    p = widgets.requests(lab, "http://reviews:9080/", n=10)
    p.set(20)
    shown = p.view.get_state()["outputs"]
    assert len(shown) == 1 and shown[0]["output_type"] == "display_data"
    fig = shown[0]["data"]["application/vnd.plotly.v1+json"]
    assert fig == json.loads(p.figure.to_json()) and fig["data"], fig
    assert "text/html" in shown[0]["data"]                      # the static twin, for pages without a kernel
class _Run:
    def __init__(self, lab):
        self.lab = lab

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def snapshot(self):
        n = len(self.lab.applied) * 10
        return frame([{"t": i * 0.01, "pod": "p", "version": "v1"} for i in range(n)])

    def result(self):
        return frame([{"t": i * 0.01, "pod": "p", "version": "v1"} for i in range(100)])


class ProbingLab(RecordingLab):
    def probing(self, url, **kw):
        self.probes.append({"url": url, **kw})
        return _Run(self)

    def apply(self, obj):
        self.applied.append(obj)


def test_push_order_applies_kinds_in_the_chosen_order_and_marks_when_they_landed():
    from meshlab import manifests
    here = Path(__file__).resolve().parent.parent / "notebooks" / "manifests" / "04-503"
    lab = ProbingLab()
    race = widgets.push_order(lab, "http://reviews:9080/", before=str(here / "race-before"),
                              change=str(here / "race-change"), gap=0.0, lead=0.0, tail=0.0, settle=0.0)
    race.run("VirtualService first (unsafe)")
    assert [o.kind for o in lab.applied[0]] == ["DestinationRule", "VirtualService"]   # race-before
    assert race.changes == ["DestinationRule default/reviews", "VirtualService default/reviews"]
    kinds = [[o.kind for o in group] for group in lab.applied[1:]]
    assert kinds == [["VirtualService"], ["DestinationRule"]]
    assert race.events["VirtualService first (unsafe)"] == {"VirtualService applied": pytest.approx(0.09), "DestinationRule applied": pytest.approx(0.19)}
    assert lab.probes[-1]["rate"] == 200.0
    race.run("DestinationRule first (safe)")
    assert [[o.kind for o in g] for g in lab.applied[-2:]] == [["DestinationRule"], ["VirtualService"]]
    assert isinstance(manifests.load(str(here / "race-change")), list)


def test_requests_explorer_reprobes_with_n():
    lab = RecordingLab()
    e = widgets.requests(lab, "http://reviews:9080/", n=20)
    e.slider.value = 200
    assert [p["n"] for p in lab.probes] == [20, 200]
    assert sum(sum(t.customdata) for t in e.figure.data) == 200
    # the unready pod that answered nothing shows at 0 %, marked, instead of vanishing
    v2 = next(t for t in e.figure.data if t.name == "v2")
    i = list(v2.x).index("reviews-v2-b")
    assert v2.y[i] == 0.0 and v2.text[i] == "not ready · 0%"


def test_flow_explorer_probes_the_typed_path_and_redraws_the_sankey():
    lab = RecordingLab()
    f = widgets.flow(lab, "http://reviews:9080/", paths=["/wpcatalog/items", "/"])
    assert lab.probes[-1]["url"] == "http://reviews:9080/wpcatalog/items"
    f.path.value = "/wpcatalogue"                 # free text, not one of the suggestions
    assert lab.probes[-1]["url"] == "http://reviews:9080/wpcatalogue"
    assert f.figure.data[0].type == "sankey" and f.figure.data[0].node.label[0] == "reviews:9080/wpcatalogue"
    assert set(f.results) == {"/wpcatalog/items", "/wpcatalogue"}
    assert "all 20 requests got 200" in f.status.value
    f.set("oops")
    assert "✘" in f.status.value and len(lab.probes) == 2


def test_a_broken_manifest_fails_before_touching_the_lab(tmp_path: Path):
    from meshlab.errors import ManifestError
    bad = tmp_path / "vs.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
                   "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {subset: v1}\n")
    lab = RecordingLab()
    with pytest.raises(ManifestError, match="vs.yaml"):
        widgets.weight_slider(lab, bad, "http://reviews:9080/")
    with pytest.raises(FileNotFoundError, match="relative to the notebook"):
        widgets.lb_picker(lab, tmp_path / "missing.yaml", "http://reviews:9080/")
    assert lab.applied == [] and lab.probes == []


def test_widgets_show_a_static_twin_for_pages_without_a_kernel():
    lab = RecordingLab()
    w = widgets.weight_slider(lab, VS, "http://reviews:9080/", n=50)
    data = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "meshlab-chart" in html and "Plotly.newPlot" in html and "cdn" not in html.lower()
    assert "changes</b> VirtualService default/reviews" in html
    idle = widgets.lb_picker(lab, DR, "http://reviews:9080/")._repr_mimebundle_()["text/html"]
    assert "Nothing measured yet" in idle
    q = widgets.quiz("1.balances", ["request", "connection"])._repr_mimebundle_()["text/html"]
    assert "<li>request</li>" in q


def test_close_button_closes_the_lab_and_says_how_to_start_again():
    class ClosingLab(RecordingLab):
        closed = False

        def close(self):
            self.closed = True

    lab = ClosingLab()
    b = widgets.close_button(lab)
    assert not b.button.disabled and "2 pods" in b.status.value
    b.button.click()
    assert lab.closed and b.button.disabled
    assert "Run All Cells" in b.status.value


def test_timeout_slider_rewrites_per_try_timeout_and_draws_both_timeouts():
    with_retries = {**VS, "spec": {"hosts": ["reviews"], "http": [
        {"timeout": "500ms", "retries": {"attempts": 2, "perTryTimeout": "100ms"},
         "route": [{"destination": {"host": "reviews"}}]}]}}

    class Timed(RecordingLab):
        def apply(self, obj):
            self.applied.append(obj)

        def probe(self, url, n=100, **kw):
            self.probes.append({"url": url, "n": n, **kw})
            return frame([{"pod": "a", "latency_ms": 5.0, "attempts": 1}] * (n - 2)
                         + [{"pod": "b", "latency_ms": 60.0, "attempts": 2}] * 2)
    lab = Timed()
    t = widgets.timeout_slider(lab, with_retries, "http://reviews:9080/", n=20)
    assert lab.applied == [] and t.results == {}          # nothing measured until it moves
    t.slider.value = 50
    assert lab.applied[-1]["spec"]["http"][0]["retries"]["perTryTimeout"] == "50ms"
    assert sorted(s["x0"] for s in t.figure.layout.shapes) == [50.0, 500.0]
    assert "2 retried" in t.status.value and lab.trials == 1 and set(t.results) == {"50ms"}
    assert with_retries["spec"]["http"][0]["retries"]["perTryTimeout"] == "100ms"   # the template is untouched
    with pytest.raises(ValueError, match=r"spec.http\[0\] needs a `retries` block"):
        widgets.timeout_slider(lab, VS, "http://reviews:9080/")


def test_concurrency_slider_only_sends_requests_and_stacks_what_the_pool_did():
    class Watched(RecordingLab):
        def watch(self, url, n=None, concurrency=1, **kw):
            self.probes.append({"url": url, "n": n, "concurrency": concurrency, **kw})
            df = frame([{"pod": "a"}] * (n - concurrency) + [{"status": 503, "flags": "UO"}] * concurrency)
            df.attrs["envoy_stats"] = {"cluster.outbound|9080||r.upstream_rq_pending_total": 1}
            return df
    lab = Watched()
    c = widgets.concurrency_slider(lab, "http://reviews:9080/", n=20, values=(1, 4))
    c.slider.value = 4
    bars = {t.name: list(t.y) for t in c.figure.data}
    assert bars["503 UO (overflow)"] == [4] and bars["waited in the pending queue"] == [1]
    assert lab.probes[-1]["concurrency"] == 4 and lab.applied == [] and c.changes == []
    assert "changes</b> nothing" in c.scope.value


# ---- chapters 7 and 8

def test_request_gap_probes_at_the_chosen_interval_and_collects_the_race_window():
    lab = RecordingLab()
    w = widgets.request_gap(lab, "http://reviews:9080/", keepalive_ms=100, n=8)
    assert lab.probes[-1]["rate"] == pytest.approx(1000 / 40) and lab.probes[-1]["n"] == 8
    w.set(125)
    assert lab.probes[-1]["rate"] == pytest.approx(8.0)
    assert list(w.results) == ["40 ms", "125 ms"]
    assert lab.applied == [] and lab.trials == 0          # it only sends requests
    assert [s.x0 for s in w.figure.layout.shapes] == [100.0]
    assert "✔" in w.status.value and "one every 125 ms" in w.status.value


def test_hash_picker_rewrites_the_hash_key_and_probes_as_each_user():
    lab = RecordingLab()
    p = widgets.hash_picker(lab, DR, "http://reviews:9080/", users=("jason", "ana"), n=6)
    assert lab.applied == []                   # nothing runs until a key is picked
    p.set("cookie session")
    lb = lab.applied[-1]["spec"]["trafficPolicy"]["loadBalancer"]
    assert lb == {"consistentHash": {"httpCookie": {"name": "session", "ttl": "0s"}}}
    assert [pr["headers"] for pr in lab.probes] == [{"end-user": "jason", "cookie": "session=jason"},
                                                    {"end-user": "ana", "cookie": "session=ana"}]
    p.set("no hash")
    assert lab.applied[-1]["spec"]["trafficPolicy"]["loadBalancer"] == {"simple": "LEAST_REQUEST"}
    assert list(p.results) == ["cookie session: jason", "cookie session: ana", "no hash: jason", "no hash: ana"]
    assert lab.trials == 2 and DR["spec"] == {"host": "reviews"}       # the caller's manifest is untouched
    with pytest.raises(ValueError, match="key must be one of"):
        p.set("query")
