"""Charts drawn from probe-shaped frames: the numbers in the figures are the numbers in the rows."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from meshlab import charts
from _probe_frames import dns_probe, frame, split_probe


def test_outcome_labels_carry_the_flag_and_client_errors():
    df = frame([{"status": 200}, {"status": 503, "flags": "NC"}, {"status": 503, "flags": "UH"},
                {"status": 404, "flags": "NR"}, {"status": 0, "error": "dns", "flags": ""},
                {"status": 503, "flags": "-"}, {"status": 0, "error": "", "flags": ""}])
    assert list(charts.outcome(df)) == ["200", "503 NC", "503 UH", "404 NR", "dns error", "503", "no answer"]
    table = charts.outcomes(df)
    assert table["requests"].sum() == 7


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (20, 200), (1, 3), (500, 1000)])
def test_wilson_interval_contains_the_estimate_and_stays_in_unit_range(k, n):
    lo, hi = charts.wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert hi - lo > 0


def test_wilson_interval_matches_a_known_value():
    # 20/200 at 95 %: the Wilson interval is about [0.0658, 0.1495] (textbook formula, z=1.95996)
    lo, hi = charts.wilson_interval(20, 200)
    assert lo == pytest.approx(0.0658, abs=5e-4) and hi == pytest.approx(0.1495, abs=5e-4)
    assert charts._z(0.95) == pytest.approx(1.959964, abs=1e-5)
    wider = charts.wilson_interval(20, 200, confidence=0.99)
    assert wider[0] < lo and wider[1] > hi


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        charts.wilson_interval(5, 3)


def test_share_table_covers_configured_and_flags_outliers():
    df = split_probe(400, 0.2, seed=3, nc=7)
    t = charts.share_table(df, by="version", configured={"v1": 80, "v2": 20})
    assert t.attrs["answered"] == 400 and t.attrs["failed"] == 7
    assert t["requests"].sum() == 400
    assert t.set_index("version")["configured"].to_dict() == {"v1": 0.8, "v2": 0.2}
    assert t["inside"].all()
    # a configuration the data clearly contradicts falls outside the band
    wrong = charts.share_table(df, by="version", configured={"v1": 50, "v2": 50})
    assert not wrong["inside"].any()


def test_share_table_lists_a_configured_subset_that_got_nothing():
    df = split_probe(50, 0.0, seed=1)
    t = charts.share_table(df, by="version", configured={"v1": 90, "v2": 10}).set_index("version")
    assert t.loc["v2", "requests"] == 0 and t.loc["v2", "high"] > 0


def test_split_figure_bars_are_observed_shares_with_band_and_configured_marks():
    df = split_probe(200, 0.3, seed=2)
    fig = charts.split(df, configured={"v1": 70, "v2": 30})
    bars, marks = fig.data
    observed = df["version"].value_counts(normalize=True)
    assert list(bars.x) == ["v1", "v2"]
    assert bars.y[1] == pytest.approx(observed["v2"])
    assert all(u > 0 for u in bars.error_y.array) and all(m > 0 for m in bars.error_y.arrayminus)
    assert list(marks.y) == pytest.approx([0.7, 0.3])


def test_pod_share_counts_answered_requests_and_shows_failures_apart():
    df = split_probe(30, 0.5, seed=4, nc=10)
    fig = charts.pod_share(df)
    by_name = {t.name: t for t in fig.data}
    assert sum(sum(t.customdata) for t in fig.data) == 40
    assert "503 NC" in by_name and by_name["503 NC"].marker.color == charts.OUTCOME_COLORS["503"]
    assert sum(by_name["v1"].y) + sum(by_name["v2"].y) == pytest.approx(30 / 40)


def test_shares_stack_to_one_and_label_connections():
    sticky = frame([{"pod": "a", "version": "v1", "conn": 0}] * 20)
    spread = frame([{"pod": "ab"[i % 2], "version": "v1", "conn": i} for i in range(20)])
    fig = charts.shares({"keep-alive": sticky, "new conn": spread})
    totals = [sum(t.y[i] for t in fig.data) for i in range(2)]
    assert totals == pytest.approx([1.0, 1.0])
    assert "1 conn" in fig.data[0].x[0] and "20 conn" in fig.data[0].x[1]
    a = next(t for t in fig.data if t.name == "a")
    assert list(a.y) == pytest.approx([1.0, 0.5])


def test_shares_requires_probes():
    with pytest.raises(ValueError):
        charts.shares({})


def test_timeline_buckets_and_red_503s_and_events():
    rows = [{"t": i * 0.01, "status": 503 if 20 <= i < 50 else 200, "flags": "NC" if 20 <= i < 50 else "-",
             "pod": "" if 20 <= i < 50 else "p", "version": "v1"} for i in range(100)]
    fig = charts.timeline(frame(rows), bucket_s=0.1, events={"VirtualService applied": 0.2, "DestinationRule applied": 0.5})
    nc = next(t for t in fig.data if t.name == "503 NC")
    ok = next(t for t in fig.data if t.name == "200")
    assert sum(nc.y) == 30 and sum(ok.y) == 70
    assert nc.marker.color == charts.OUTCOME_COLORS["503"]
    assert len(fig.layout.shapes) == 2
    assert [a.text for a in fig.layout.annotations] == ["VirtualService applied", "DestinationRule applied"]


def test_timeline_rejects_empty_probe():
    with pytest.raises(ValueError):
        charts.timeline(frame([]))


def test_flow_links_sum_to_requests_and_503_links_are_red():
    df = split_probe(40, 0.5, seed=5, nc=10)
    df.attrs["url"] = "http://reviews:9080/"
    fig = charts.flow(df)
    sk = fig.data[0]
    labels = list(sk.node.label)
    assert labels[0] == "reviews"
    # every request leaves the host node exactly once
    out_of_host = sum(v for s, v in zip(sk.link.source, sk.link.value) if s == 0)
    assert out_of_host == 50
    nc = labels.index("503 NC")
    into_nc = [(c, v) for t, c, v in zip(sk.link.target, sk.link.color, sk.link.value) if t == nc]
    assert sum(v for _, v in into_nc) == 10 and all(c.startswith("rgba(214,39,40") for c, _ in into_nc)
    assert sk.node.color[nc] == charts.OUTCOME_COLORS["503"]


def test_flow_sends_dns_failures_straight_from_the_host():
    df = dns_probe(5)
    fig = charts.flow(df, host="ratings")
    sk = fig.data[0]
    assert list(sk.node.label) == ["ratings", "dns error"] and list(sk.link.value) == [5]


def test_latency_boxes_per_probe():
    fig = charts.latency({"A": split_probe(10, 0.5), "B": split_probe(5, 0.5)})
    assert [len(t.y) for t in fig.data] == [10, 5]


def test_bad_input_names_the_missing_column():
    with pytest.raises(ValueError, match="lacks column"):
        charts.pod_share(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="probe DataFrame"):
        charts.pod_share([1, 2])  # type: ignore[arg-type]
    assert not math.isnan(charts.wilson_interval(0, 0)[1])


def test_config_table_filters_and_selects():
    cfg = {"clusters": [{"name": "outbound|9080||reviews.default.svc.cluster.local", "lb_policy": "LEAST_REQUEST"},
                        {"name": "BlackHoleCluster", "lb_policy": "ROUND_ROBIN"}]}
    t = charts.config_table(cfg, "clusters", match="reviews", columns=["name"])
    assert list(t["name"]) == ["outbound|9080||reviews.default.svc.cluster.local"]
    with pytest.raises(ValueError, match="no section"):
        charts.config_table(cfg, "secrets")
    with pytest.raises(ValueError, match="no column"):
        charts.config_table(cfg, "clusters", columns=["nope"])


def test_flow_marks_a_missing_cluster_when_envoy_logged_none():
    df = frame([{"status": 503, "flags": "NC", "details": "cluster_not_found", "route": "to-reviews",
                 "cluster": "", "pod": "", "upstream": ""}] * 4 + [{"pod": "p1", "version": "v1"}])
    sk = charts.flow(df, host="reviews.example.com").data[0]
    labels = list(sk.node.label)
    assert "✗ cluster not found" in labels and "503 NC" in labels
    missing = labels.index("✗ cluster not found")
    assert sum(v for t, v in zip(sk.link.target, sk.link.value) if t == missing) == 4
    # columns are fixed: host, route, cluster, pod/outcome from left to right
    assert sk.node.x[labels.index("reviews.example.com")] < sk.node.x[missing] < sk.node.x[labels.index("p1")]


def test_pods_take_their_versions_colour():
    df = frame([{"pod": "a-v1", "version": "v1"}, {"pod": "b-v1", "version": "v1"}, {"pod": "c-v2", "version": "v2"}])
    colors = {t.name: t.marker.color for t in charts.shares({"x": df}).data}
    assert colors["a-v1"] == charts.VERSION_COLORS["v1"] and colors["c-v2"] == charts.VERSION_COLORS["v2"]
    assert colors["b-v1"] != colors["a-v1"]


def test_endpoints_lists_selected_pods_and_which_are_endpoints():
    from meshlab import manifests
    here = __import__("pathlib").Path(__file__).resolve().parent.parent / "notebooks" / "manifests" / "01-service"
    objects = manifests.load(str(here))
    pods = pd.DataFrame([
        {"name": "reviews-v1-a", "namespace": "default", "ip": "127.9.1.1", "labels": {"app": "reviews", "version": "v1"},
         "version": "v1", "ready": True, "phase": "Running"},
        {"name": "reviews-v2-b", "namespace": "default", "ip": "127.9.1.2", "labels": {"app": "reviews", "version": "v2"},
         "version": "v2", "ready": False, "phase": "Running"},
        {"name": "sleep", "namespace": "default", "ip": "127.9.1.3", "labels": {"app": "sleep"},
         "version": "", "ready": True, "phase": "Running"},
        {"name": "reviews-v1-gone", "namespace": "default", "ip": "127.9.1.4",
         "labels": {"app": "reviews", "version": "v1"}, "version": "v1", "ready": False, "phase": "Failed"},
    ])
    t = charts.endpoints(objects, pods, "reviews")
    assert list(t["pod"]) == ["reviews-v1-a", "reviews-v2-b", "reviews-v1-gone"]
    assert list(t["address"]) == ["127.9.1.1:9080", "127.9.1.2:9080", "127.9.1.4:9080"]
    # EndpointSlices list an unready pod with ready=false; a terminal pod not at all
    # (Kubernetes endpointslice ShouldPodBeInEndpoints); only ready endpoints get traffic
    assert list(t["in EndpointSlice"]) == [True, True, False]
    assert list(t["ready"]) == [True, False, False] and list(t["gets traffic"]) == [True, False, False]
    assert set(t["selector"]) == {"app=reviews"}
    with pytest.raises(ValueError, match="no Service default/ratings"):
        charts.endpoints(objects, pods, "ratings")


def test_endpoints_resolve_a_named_target_port_to_the_container_port_number():
    """A Service whose targetPort is a port *name* reaches each pod on the number its container
    declares under that name (the EndpointSlice controller's rule), not on `ip:web-port`."""
    from _manifests import deployment, docs, service
    from meshlab.manifests import load
    from meshlab.state import ClusterState

    objects = load(docs(service("web", 80, target_port="web-port", port_name="http"),
                        deployment("web", "v1", port=8080, port_name="web-port"),
                        deployment("web", "v2", replicas=2, port=8081, port_name="web-port")))
    state = ClusterState(pod_ip=lambda p: f"127.9.1.{len(state.pods()) + 1}")
    state.apply(objects)
    pods = pd.DataFrame([{"name": p.name, "namespace": p.namespace, "ip": p.ip, "labels": p.labels,
                          "version": p.version, "ready": p.ready, "phase": p.phase} for p in state.pods()])
    t = charts.endpoints(objects, pods, "web")
    by_pod = dict(zip(t["pod"], t["address"]))
    assert len(by_pod) == 3
    svc = next(o for o in objects if o.kind == "Service")
    expected = {f"{e.ip}:{e.port}" for e in state.endpoints(svc, svc.spec.ports[0])}
    assert set(by_pod.values()) == expected and {a.rsplit(":", 1)[1] for a in expected} == {"8080", "8081"}
    # on a cluster the pods() frame drops pod-template-hash; the pod is still matched to its Deployment
    pods["labels"] = [{k: v for k, v in lb.items() if k != "pod-template-hash"} for lb in pods["labels"]]
    assert set(charts.endpoints(objects, pods, "web")["address"]) == expected


def test_figures_display_live_and_as_static_html(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    fig = charts.pod_share(split_probe(10, 0.5))
    fig._ipython_display_()
    (bundle, raw), = shown
    assert raw and set(bundle) == {"application/vnd.plotly.v1+json", "text/html", "text/plain"}
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"
    assert "Plotly.newPlot" in bundle["text/html"] and "Which pod answered" in bundle["text/plain"]


def test_static_html_loads_no_plotly_of_its_own_and_says_so_without_one():
    html = charts.static_html(charts.pod_share(split_probe(10, 0.5)))
    assert "<script src" not in html and "cdn" not in html.lower()      # the page brings plotly.js once
    assert len(html) < 20_000                                          # not a 4.8 MB copy of plotly.js
    assert "window.Plotly" in html and charts.NO_PLOTLY in html         # words, not a blank box
    f = charts.Figure(go.Bar(x=["</script><b>x"], y=[1]))
    assert "</script><b>" not in charts.static_html(f).split("var fig = ", 1)[1].split(";\n", 1)[0]


def test_share_tables_show_percentages_but_keep_numbers():
    t = charts.share_table(split_probe(200, 0.2, seed=3), by="subset", configured={"v1": 80, "v2": 20})
    assert t["share"].dtype.kind == "f" and t["configured"].tolist() == [0.8, 0.2]
    shown = t._repr_html_()
    assert "80.0 %" in shown and "0.8000" not in shown and "0.2" not in shown.replace("20.0 %", "")
    assert "%" in repr(charts.outcomes(split_probe(10, 0.5)))


def test_probe_rows_show_who_answered_before_the_long_names():
    rows = charts.ProbeTable(split_probe(5, 0.5))
    header = rows.head()._repr_html_().split("</thead>")[0]
    order = [c for c in ("status", "pod", "version", "cluster", "details", "t") if f">{c}<" in header]
    assert order == ["status", "pod", "version", "cluster", "details", "t"]
    assert list(rows.columns) == list(split_probe(5, 0.5).columns)      # only the display changes
    assert isinstance(rows[rows.status == 200], charts.ProbeTable)


def test_pod_share_keeps_silent_and_unready_pods_at_zero():
    pods = pd.DataFrame({"name": ["reviews-v1-abc12-x1", "reviews-v2-zzz", "reviews-v3-q"],
                         "version": ["v1", "v2", "v3"], "ready": [True, False, True]})
    df = frame([{"pod": "reviews-v1-abc12-x1", "version": "v1"}] * 4)
    fig = charts.pod_share(df, pods=pods)
    bars = {x: (y, t) for tr in fig.data for x, y, t in zip(tr.x, tr.y, tr.text)}
    assert bars["reviews-v1-abc12-x1"][0] == 1.0
    assert bars["reviews-v2-zzz"] == (0.0, "not ready · 0%") and bars["reviews-v3-q"] == (0.0, "0%")
    assert {t.name for t in charts.pod_share(df).data} == {"v1"}     # without pods=: only who answered


def test_tables_show_long_envoy_names_whole():
    name = "outbound|9080|v1|reviews.default.svc.cluster.local"   # 50 characters: pandas would cut it
    t = charts.config_table({"clusters": [{"name": name}, {"name": "x"}]}, "clusters", match="v1")
    assert isinstance(t, pd.DataFrame) and list(t["name"]) == [name]
    assert name in t._repr_html_() and name in repr(t)
    assert name in repr(t[t["name"] != ""])                         # still whole after filtering


def test_findings_table_has_one_row_per_finding_with_its_fix():
    from meshlab import analyze
    here = __import__("pathlib").Path(__file__).resolve().parent.parent / "notebooks" / "manifests"
    found = analyze([here / "01-service", here / "03-subsets" / "destinationrule-subsets.yaml",
                     here / "04-503" / "virtualservice-v3.yaml"])
    t = charts.findings(found)
    assert list(t.columns) == ["level", "code", "resource", "message", "fix"]
    assert len(t) == len(found) and "IST0101" in set(t["code"])
    row = t[t["code"] == "IST0101"].iloc[0]
    assert row["level"] == "Error" and row["resource"] == "VirtualService default/reviews" and row["fix"]
    assert list(charts.findings([]).columns) == ["level", "code", "resource", "message", "fix"]


def test_flow_names_its_columns():
    df = split_probe(10, 0.5, seed=2)
    texts = [a.text for a in charts.flow(df, host="reviews").layout.annotations]
    assert [t.replace("<b>", "").replace("</b>", "") for t in texts] == \
        ["host called", "route (VirtualService rule)", "Envoy cluster", "pod, or what failed"]
    dns = [a.text for a in charts.flow(dns_probe(3), host="ratings").layout.annotations]
    assert len(dns) == 2   # no route and no cluster column when no request reached Envoy


def test_shares_legend_says_when_failures_are_stacked_in():
    ok = frame([{"pod": "a", "version": "v1"}] * 4)
    assert charts.shares({"x": ok}, by="version").layout.legend.title.text == "version"
    failed = frame([{"status": 503, "flags": "NC", "pod": "", "version": ""}] * 2)
    assert charts.shares({"x": ok, "y": failed}, by="version").layout.legend.title.text == "version / failure"
    assert charts.shares({"y": failed}, by="version").layout.legend.title.text == "failure"


def test_outcome_summary_says_what_requests_got_without_a_multiplication_sign():
    assert charts.outcome_summary(split_probe(20, 0.5)) == "all 20 requests got 200"
    mixed = charts.outcome_summary(split_probe(18, 0.5, nc=2))
    assert mixed == "20 requests: 18 got 200, 2 got 503 NC" and "×" not in mixed


# ---- chapter 7: the keep-alive race window

def _every(ms: float, outcomes: list[tuple[int, str]]) -> pd.DataFrame:
    """Requests `ms` apart with the given (status, flags), in order."""
    return frame([{"t": i * ms / 1000.0, "status": s, "flags": f,
                   "pod": "" if s == 503 else "reviews-v1-abc12-x1", "version": "" if s == 503 else "v1"}
                  for i, (s, f) in enumerate(outcomes)])


def test_send_interval_is_the_median_gap_between_requests_in_ms():
    df = _every(125, [(200, "-")] * 5)
    assert charts.send_interval_ms(df) == pytest.approx(125.0)
    jittered = df.assign(t=[0.0, 0.100, 0.250, 0.375, 0.500])   # gaps 100, 150, 125, 125
    assert charts.send_interval_ms(jittered) == pytest.approx(125.0)
    assert math.isnan(charts.send_interval_ms(df.head(1)))


def test_race_window_puts_each_outcome_share_at_the_probes_interval_and_draws_both_timeouts():
    quiet = _every(125, [(200, "-"), (503, "UC")] * 4)
    busy = _every(50, [(200, "-")] * 8)
    fig = charts.race_window({"125 ms": quiet, "50 ms": busy}, keepalive_ms=100, idle_timeout_ms=50)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"200", "503 UC"}
    assert list(traces["503 UC"].x) == pytest.approx([50.0, 125.0])       # sorted by interval
    assert list(traces["503 UC"].y) == [0.0, 0.5] and list(traces["200"].y) == [1.0, 0.5]
    assert traces["503 UC"].marker.color == charts.OUTCOME_COLORS["503"]
    lines = sorted(s.x0 for s in fig.layout.shapes)
    assert lines == [50.0, 100.0]
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "the app closes idle connections: 100 ms" in notes and "idleTimeout): 50 ms" in notes
    only_app = charts.race_window({"125 ms": quiet}, keepalive_ms=100)
    assert [s.x0 for s in only_app.layout.shapes] == [100.0]


def test_race_window_refuses_nothing_to_draw():
    with pytest.raises(ValueError, match="at least one probe"):
        charts.race_window({})
    with pytest.raises(ValueError, match="'x' is empty"):
        charts.race_window({"x": frame([])})


# ---- chapters 5 and 6: timeouts, attempts, ejections, overflow

def test_latency_timeouts_counts_every_request_by_outcome_and_draws_each_timeout():
    df = frame([{"latency_ms": 1.0, "pod": "a"}] * 6 + [{"latency_ms": 101.0, "status": 504, "flags": "UT"}] * 3)
    fig = charts.latency_timeouts(df, {"perTryTimeout": "100ms", "timeout": 0.5 * 1000})
    counts = {t.name: len(t.x) for t in fig.data}
    assert counts == {"200": 6, "504 UT": 3}
    lines = sorted(s["x0"] for s in fig.layout.shapes)
    assert lines == [100.0, 500.0]
    assert {a.text for a in fig.layout.annotations} == {"perTryTimeout 100 ms", "timeout 500 ms"}
    with pytest.raises(ValueError):
        charts.latency_timeouts(df.iloc[0:0])


def test_attempts_groups_requests_by_envoys_attempt_count():
    df = frame([{"attempts": 1}] * 4 + [{"attempts": 2}] * 2 + [{"attempts": 3, "status": 503, "flags": "URX"}]
               + [{"attempts": 0, "status": 503, "flags": "FI"}])
    fig = charts.attempts(df)
    by = {t.name: dict(zip(t.x, _ys(t))) for t in fig.data}
    assert by["200"] == {"0 attempts": 0, "1 attempt": 4, "2 attempts": 2, "3 attempts": 0}
    assert by["503 URX"]["3 attempts"] == 1 and by["503 FI"]["0 attempts"] == 1
    two = charts.attempts({"dead": df, "503": df.iloc[:4]})
    assert list(two.data[0].x) == ["dead · 0", "dead · 1", "dead · 2", "dead · 3", "503 · 1"]


def _ys(trace) -> list:
    return [int(v) for v in trace.y]


def test_ejections_draws_a_band_while_clusters_said_failed_and_a_mark_per_request():
    df = frame([{"t": 0.01 * i, "pod": "bad" if i < 3 else "good", "status": 503 if i < 3 else 200}
                for i in range(10)])
    samples = [{"t": t, "cluster": "c", "endpoint": f"{p}:1", "pod": p, "status": "HEALTHY",
                "outlier_check": "FAILED" if (p == "bad" and t >= 0.04) else "OK"}
               for t in (0.0, 0.02, 0.04, 0.06, 0.08) for p in ("bad", "good")]
    df.attrs["endpoints"] = samples
    fig = charts.ejections(df)
    bands = [t for t in fig.data if t.name == "ejected (Envoy /clusters)"]
    assert len(bands) == 1 and list(bands[0].y) == ["bad", "bad"] and bands[0].x[0] == 0.04
    marks = {t.name: len(t.x) for t in fig.data if t.mode == "markers"}
    assert marks == {"200": 7, "503": 3}
    df.attrs["endpoints"] = []
    with pytest.raises(ValueError, match="lab.watch"):
        charts.ejections(df)


def test_overflow_splits_answered_into_sent_at_once_and_queued_from_envoys_counters():
    one = frame([{"pod": "a"}] * 10)
    one.attrs["envoy_stats"] = {"cluster.outbound|9080||r.upstream_rq_pending_total": 0}
    eight = frame([{"pod": "a"}] * 4 + [{"status": 503, "flags": "UO", "pod": ""}] * 6)
    eight.attrs["envoy_stats"] = {"cluster.outbound|9080||r.upstream_rq_pending_total": 3,
                                  "cluster.outbound|9080||r.upstream_rq_pending_overflow": 6}
    fig = charts.overflow({1: one, 8: eight})
    by = {t.name: _ys(t) for t in fig.data}
    assert by == {"sent at once": [10, 1], "waited in the pending queue": [0, 3], "503 UO (overflow)": [0, 6],
                  "other outcomes": [0, 0]}
    with pytest.raises(ValueError, match="lab.watch"):
        charts.overflow({1: frame([{"pod": "a"}])})
