"""The probe: rows in the shared schema, connections, client-side errors, the log join."""

from __future__ import annotations

import json
import re
import time

import pytest

from meshlab.backends.local.addresses import AddressLease
from meshlab.probe.rows import PROBE_COLUMNS
from meshlab.backends.local.pods import PodRunner, PodSpec
from meshlab.errors import ProbeError
from meshlab.probe import Target, parse_url, probe_direct, run


@pytest.fixture(scope="module")
def pods():
    lease = AddressLease()
    runner = PodRunner()
    specs = [PodSpec(f"p{i}", "default", lease.pod_ip(), [8080], f"v{i}") for i in range(2)]
    runner.start(specs)
    yield lease, specs, runner
    runner.close()
    lease.release()


def test_schema_and_identity(pods):
    _, specs, _ = pods
    df = probe_direct(f"http://{specs[1].ip}:8080/x", n=25)
    assert tuple(df.columns) == PROBE_COLUMNS
    assert len(df) == 25 and list(df.seq) == list(range(25))
    assert set(df.status) == {200} and set(df.pod) == {"p1"} and set(df.version) == {"v1"}
    assert set(df.error) == {""} and set(df.proxy) == {"none"}
    assert (df.latency_ms > 0).all() and df.t.is_monotonic_increasing


def test_connections_follow_keepalive_and_concurrency(pods):
    _, specs, _ = pods
    url = f"http://{specs[0].ip}:8080/"
    assert probe_direct(url, n=20).conn.nunique() == 1
    assert probe_direct(url, n=20, keepalive=False).conn.nunique() == 20
    assert probe_direct(url, n=40, concurrency=4).conn.nunique() == 4


def test_refused_and_timeout_errors(pods):
    lease, specs, runner = pods
    df = probe_direct(f"http://{lease.pod_ip()}:8080/", n=3)
    assert list(df.error) == ["refused"] * 3 and set(df.status) == {0}
    runner.get("p0").set_knobs(latency_ms=2000)
    try:
        df = run(Target("none", (specs[0].ip, 8080), "x", "/"), n=2, timeout=0.2).result()
        assert list(df.error) == ["timeout", "timeout"] and set(df.status) == {0}
    finally:
        runner.get("p0").set_knobs(latency_ms=0)


def test_dns_failure_rows():
    df = run(Target("sidecar", None, "nope", "/", error="dns"), n=4).result()
    assert list(df.error) == ["dns"] * 4 and set(df.status) == {0} and set(df.conn) == {0}


def test_open_ended_run_with_rate_and_snapshot(pods):
    _, specs, _ = pods
    with run(Target("none", (specs[0].ip, 8080), "x", "/"), n=None, rate=100) as p:
        time.sleep(0.3)
        snap = p.snapshot()
        assert 0 < len(snap)
    df = p.result()
    assert len(df) >= len(snap) and set(df.status) == {200}


def test_access_log_join_is_by_request_id(pods, tmp_path):
    """Unit test of the join: a log file written by this test stands in for Envoy's."""
    _, specs, _ = pods
    log = tmp_path / "access.log"
    log.write_text("")
    p = run(Target("sidecar", (specs[0].ip, 8080), "x", "/", access_logs=[log]), n=3)
    p.wait(10)
    rids = [r["request_id"] for r in sorted(p.completed(), key=lambda r: r["seq"])]
    entries = [
        {"request_id": rids[2], "response_flags": "UF,URX", "response_code_details": "d2",
         "route_name": "r", "upstream_cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
         "upstream_host": "127.0.0.9:9080", "upstream_request_attempt_count": 3},
        {"request_id": "someone-else-1", "response_flags": "NC"},
        {"request_id": rids[0], "response_flags": "-", "response_code_details": "via_upstream",
         "route_name": "default", "upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local",
         "upstream_host": "127.0.0.8:9080", "upstream_request_attempt_count": 1},
    ]
    with open(log, "a") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    df = p.result()
    assert list(df["flags"]) == ["-", "", "UF,URX"]        # seq 1 never logged: empty, not guessed
    assert list(df.subset) == ["", "", "v2"]
    assert list(df.upstream) == ["127.0.0.8:9080", "", "127.0.0.9:9080"]
    assert df.details[2] == "d2" and df.route[0] == "default"


def test_url_and_header_validation():
    u = parse_url("reviews:9080/wpcatalog?a=1")
    assert (u.host, u.port, u.path, u.authority) == ("reviews", 9080, "/wpcatalog?a=1", "reviews:9080")
    assert parse_url("http://reviews/").authority == "reviews"
    with pytest.raises(ProbeError, match="https"):
        parse_url("https://reviews/")
    with pytest.raises(ProbeError, match="x-request-id"):
        run(Target("none", ("127.0.0.1", 1), "x", "/"), headers={"x-request-id": "mine"})
    with pytest.raises(ProbeError, match="bad header"):
        run(Target("none", ("127.0.0.1", 1), "x", "/"), headers={"a\r\nb": "c"})


def test_dns_failures_follow_the_timeline():
    with run(Target("sidecar", None, "nope", "/", error="dns"), n=None, rate=200) as p:
        time.sleep(0.2)
    df = p.result()
    assert len(df) > 5 and set(df.error) == {"dns"} and df.t.is_monotonic_increasing and df.t.max() > 0


_NOWHERE = Target("none", ("127.0.0.1", 1), "x", "/")


@pytest.mark.parametrize("kw, named", [
    ({"n": 2.5}, "n"), ({"n": "5"}, "n"), ({"concurrency": "2"}, "concurrency"),
    ({"concurrency": 1.5}, "concurrency"), ({"rate": "10"}, "rate"), ({"duration": -1}, "duration"),
    ({"duration": "1"}, "duration"), ({"timeout": 0}, "timeout"), ({"timeout": "5"}, "timeout"),
    ({"keepalive": "no"}, "keepalive"), ({"headers": ["end-user: jason"]}, "headers"),
    ({"headers": "end-user: jason"}, "headers"), ({"headers": {"end user": "jason"}}, "end user"),
    ({"headers": {"x-user": None}}, "x-user"), ({"headers": {"x-user": "a\x00b"}}, "x-user"),
    ({"seed": "abc"}, "seed"), ({"seed": 1.5}, "seed"),
])
def test_probe_arguments_a_learner_gets_wrong_are_named_before_anything_is_sent(kw, named):
    """n=2.5 used to send 3 requests, n="5" died in a comparison deep in the event loop, a header
    name with a space went out and came back as Envoy's bare 400, None was sent as "None"."""
    with pytest.raises(ProbeError, match=re.escape(named)):
        run(_NOWHERE, **kw)


def test_probe_url_must_be_a_string_and_unsafe_characters_are_percent_encoded():
    for bad in (None, 42, b"http://web/"):
        with pytest.raises(ProbeError, match="URL"):
            parse_url(bad)
    # what a browser (or Python requests) sends; raw spaces made Envoy answer 400
    u = parse_url("http://web/a b/\u00e4?q=x y&r=%2F")
    assert u.path == "/a%20b/%C3%A4?q=x%20y&r=%2F"


def test_probe_errors_render_in_jupyter_as_one_paragraph():
    from meshlab.errors import MeshlabError
    with pytest.raises(MeshlabError) as info:
        parse_url("https://reviews/")
    lines = info.value._render_traceback_()
    assert len(lines) == 1 and "only http://" in lines[0] and "Traceback" not in lines[0]


def test_rows_take_only_keys_envoy_writes():
    """The join reads Envoy's access-log keys; every one of them is in the format Envoy is given."""
    from meshlab.envoy.accesslog import ACCESS_LOG_FIELDS
    from meshlab.probe.rows import ENVOY_FIELDS

    assert set(ENVOY_FIELDS.values()) | {"upstream_request_attempt_count", "pod", "version", "request_id"} \
        <= set(ACCESS_LOG_FIELDS)
