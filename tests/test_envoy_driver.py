"""The Envoy driver against a real Envoy: start, push without restart, rejection, access log, death."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from _pids import survivors
from meshlab.backends.local.addresses import AddressLease
from meshlab.envoy import (
    Envoy, EnvoyConfigRejected, ProxyConfig, proxy_config_view,
)
from meshlab.istiod.listeners import http_connection_manager
from meshlab.probe import LogTail

ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body = self.server.label.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("x-meshlab-pod", self.server.label)  # type: ignore[attr-defined]
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


def _serve(ip: str, port: int, label: str) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer((ip, port), _Upstream)
    srv.label = label  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def net():
    lease = AddressLease()
    a, b = lease.pod_ip(), lease.pod_ip()
    servers = [_serve(a, 9080, "pod-a"), _serve(b, 9080, "pod-b")]
    yield lease, a, b
    for s in servers:
        s.shutdown()
        s.server_close()
    lease.release()


def _config(lease: AddressLease, clusters: dict[str, str], route_to: str,
            domains: list[str] | None = None, port: int = 9080) -> ProxyConfig:
    """A minimal sidecar-like config: one listener, EDS clusters name → endpoint IP."""
    hcm = http_connection_manager(f"outbound_0.0.0.0_{port}", str(port), gateway=False)
    hcm["typed_config"]["http_filters"] = [ROUTER]
    return ProxyConfig(
        listeners=[{"name": f"0.0.0.0_{port}",
                    "address": {"socket_address": {"address": lease.sidecar_ip, "port_value": port}},
                    "filter_chains": [{"filters": [hcm]}]}],
        clusters=[{"name": n, "type": "EDS", "connect_timeout": "1s",
                   "eds_cluster_config": {"service_name": n}} for n in clusters],
        routes={str(port): {"validate_clusters": False, "virtual_hosts": [{
            "name": "vh", "domains": domains or ["*"],
            "routes": [{"name": "r", "match": {"prefix": "/"}, "route": {"cluster": route_to}}]}]}},
        endpoints={n: {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": ip, "port_value": 9080}}}}]}]} for n, ip in clusters.items()},
    )


def _get(ip: str, port: int = 9080, path: str = "/", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture()
def envoy(net, tmp_path):
    lease, a, b = net
    e = Envoy("test", tmp_path / "envoy")
    e.start(_config(lease, {"c-a": a, "c-b": b}, "c-a"))
    yield e
    e.stop()
    assert not e.running


def test_start_route_and_access_log(envoy, net):
    lease, a, _ = net
    log = LogTail(envoy.access_log_path)
    status, headers, body = _get(lease.sidecar_ip, headers={"x-request-id": "req-42"})
    assert (status, body) == (200, b"pod-a")
    rows: list[dict] = []
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        rows = [r for r in log.read_new() if r.get("request_id") == "req-42"]
        time.sleep(0.01)
    assert len(rows) == 1, "the client's x-request-id must survive into the access log"
    row = rows[0]
    assert row["response_code"] == 200 and isinstance(row["response_code"], int)
    assert row["response_flags"] == "-"
    assert row["upstream_cluster"] == "c-a"
    assert row["upstream_host"] == f"{a}:9080"
    assert row["upstream_request_attempt_count"] == 1
    assert row["route_name"] == "r"
    assert row["pod"] == "pod-a"
    assert row["path"] == "/" and row["method"] == "GET"


def test_push_is_visible_to_the_next_request(envoy, net):
    lease, _, b = net
    changed = envoy.push(_config(lease, {"c-a": net[1], "c-b": b}, "c-b"))
    assert changed["rds"] == ["9080"] and not changed["cds"] and not changed["lds"]
    # no sleep: when push() returns, Envoy has confirmed the new version
    assert _get(lease.sidecar_ip)[2] == b"pod-b"
    # a new cluster added and routed in one push (istiod order: cluster warm before routes)
    changed = envoy.push(_config(lease, {"c-a": net[1], "c-b": b, "c-new": b}, "c-new"))
    assert "c-new" in changed["cds"] and "c-new" in changed["eds"]
    status, _, body = _get(lease.sidecar_ip)
    assert (status, body) == (200, b"pod-b")
    # an endpoint change through EDS only
    changed = envoy.push(_config(lease, {"c-a": net[1], "c-b": b, "c-new": net[1]}, "c-new"))
    assert changed["eds"] == ["c-new"] and not changed["cds"]
    assert _get(lease.sidecar_ip)[2] == b"pod-a"


def test_route_to_missing_cluster_is_envoys_503_nc(envoy, net):
    lease = net[0]
    envoy.push(_config(lease, {"c-a": net[1]}, "outbound|9080|v9|nope.default.svc.cluster.local"))
    log = LogTail(envoy.access_log_path)
    status, _, _ = _get(lease.sidecar_ip, headers={"x-request-id": "nc-1"})
    assert status == 503
    deadline = time.monotonic() + 5
    rows: list[dict] = []
    while not rows and time.monotonic() < deadline:
        rows = [r for r in log.read_new() if r.get("request_id") == "nc-1"]
        time.sleep(0.01)
    assert rows[0]["response_flags"] == "NC"
    assert rows[0]["response_code_details"] == "cluster_not_found"


@pytest.mark.parametrize("breakage, words", [
    ("regex", "missing )"),
    ("duplicate-domain", "domain"),
    ("bind-conflict", "Address already in use"),
    ("unknown-field", "unknown"),
    ("proto-constraint", "at least 1 item"),   # a multi-line message: the reason is on its last line
    ("json-out-of-range", "max_connections"),   # Envoy calls it an update *failure*, not a rejection
])
def test_rejected_config_raises_with_envoys_message_and_keeps_serving(envoy, net, breakage, words):
    lease, a, b = net
    good = _config(lease, {"c-a": a, "c-b": b}, "c-a")
    bad = _config(lease, {"c-a": a, "c-b": b}, "c-b")
    if breakage == "regex":
        bad.routes["9080"]["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "(("}}
    elif breakage == "duplicate-domain":
        vh = dict(bad.routes["9080"]["virtual_hosts"][0], name="vh2")
        bad.routes["9080"]["virtual_hosts"].append(vh)
    elif breakage == "bind-conflict":  # the upstream server already holds a:9080
        bad = _config(lease, {"c-a": a, "c-b": b}, "c-a")  # only the listener changes
        bad.listeners[0]["address"]["socket_address"]["address"] = a
    elif breakage == "unknown-field":
        bad.clusters[0]["lb_policy"] = "NOT_A_POLICY"
    elif breakage == "proto-constraint":
        bad.routes["9080"]["virtual_hosts"][0]["domains"] = []
    elif breakage == "json-out-of-range":
        bad.clusters[0]["circuit_breakers"] = {"thresholds": [{"max_connections": -1}]}
    with pytest.raises(EnvoyConfigRejected) as info:
        envoy.push(bad)
    assert words.lower() in info.value.envoy_message.lower()
    assert "rejected" in str(info.value)
    # Envoy still runs the last accepted config, and so do the files: a good push works again
    assert _get(lease.sidecar_ip)[2] == b"pod-a"
    envoy.push(good)
    assert _get(lease.sidecar_ip)[2] == b"pod-a"


def test_a_regex_istio_accepts_is_accepted_here_too(envoy, net):
    """Istio raises Envoy's RE2 program-size limit from 100 to 32768 in its bootstrap: a route
    regex like `/item/[0-9]{200}` works on a real cluster, so it must not be rejected here."""
    lease, a, b = net
    cfg = _config(lease, {"c-a": a, "c-b": b}, "c-a")
    cfg.routes["9080"]["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "/item/[0-9]{200}"}}
    envoy.push(cfg)      # raises EnvoyConfigRejected ("program size … > 100") without the runtime value
    dumped = json.dumps(envoy.config_dump())
    assert "[0-9]{200}" in dumped


@pytest.mark.parametrize("regex", [".{1000}" * 16, ".{1000}" * 16 + ".{400}", r"[^/]{1000}" * 16, "\\x{100}"])
def test_envoy_and_load_agree_on_what_re2_refuses(envoy, net, regex):
    """load() refuses a regex exactly when this Envoy (with Istio's runtime) rejects it: RE2 program
    sizes 32004 and 32804 sit either side of Istio's limit of 32768, and a code point above 0xFF
    is refused as Envoy's RE2 refuses it."""
    from meshlab.manifests.re2 import re2_problem

    lease, a, b = net
    cfg = _config(lease, {"c-a": a, "c-b": b}, "c-a")
    cfg.routes["9080"]["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": regex}}
    refused_by_load = re2_problem(regex) is not None
    try:
        envoy.push(cfg)
        refused_by_envoy = False
    except EnvoyConfigRejected as e:
        refused_by_envoy = bool(e.envoy_message)
    assert refused_by_load == refused_by_envoy


def test_initial_config_rejected_raises(net, tmp_path):
    lease, a, _ = net
    bad = _config(lease, {"c-a": a}, "c-a")
    bad.routes["9080"]["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "(("}}
    e = Envoy("bad", tmp_path / "bad")
    with pytest.raises(EnvoyConfigRejected) as info:
        e.start(bad)
    assert "missing )" in info.value.envoy_message
    assert not e.running


def test_routes_before_clusters_order_opens_an_nc_window(envoy, net):
    """order=('rds', 'cds') with a gap: the route names a cluster Envoy does not have yet."""
    lease, a, b = net
    envoy.push(_config(lease, {"c-a": a}, "c-a"))
    target = _config(lease, {"c-a": a, "c-late": b}, "c-late")
    t = threading.Thread(target=envoy.push, args=(target,),
                         kwargs={"order": ("rds", "lds", "eds", "cds"), "gap_s": 1.0})
    t.start()
    seen: set[int] = set()
    while t.is_alive():
        seen.add(_get(lease.sidecar_ip)[0])
    t.join()
    assert 503 in seen, "requests during the gap must meet the missing cluster (503 NC)"
    assert _get(lease.sidecar_ip)[0] == 200


def test_removed_cluster_leaves_after_routes(envoy, net):
    lease, a, b = net
    envoy.push(_config(lease, {"c-a": a, "c-b": b}, "c-b"))
    changed = envoy.push(_config(lease, {"c-a": a}, "c-a"))
    assert "c-b" in changed["cds"]
    names = {c["name"] for c in proxy_config_view(envoy.config_dump())["clusters"]}
    assert names == {"c-a"}
    assert _get(lease.sidecar_ip)[2] == b"pod-a"


def test_proxy_config_view(envoy, net):
    view = proxy_config_view(envoy.config_dump(), envoy.clusters())
    assert {c["name"] for c in view["clusters"]} == {"c-a", "c-b"}
    assert view["listeners"][0]["name"] == "0.0.0.0_9080"
    assert view["listeners"][0]["destination"] == "Route: 9080"
    assert view["routes"][0]["destination"] == "c-a"
    assert {e["endpoint"] for e in view["endpoints"]} == {f"{net[1]}:9080", f"{net[2]}:9080"}


def test_envoy_dies_with_its_parent(net, tmp_path):
    """SIGKILL the Python process that started Envoy: Envoy must not survive it."""
    script = textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        from meshlab.envoy import Envoy
        def run():
            e = Envoy("orphan", Path({str(tmp_path / 'orphan')!r}))
            e.start()
            print(e.pid, flush=True)
        t = threading.Thread(target=run); t.start(); t.join()   # started from a short-lived thread
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), "child did not start Envoy"
        envoy_pid = int(line)
        os.kill(envoy_pid, 0)  # alive now
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if survivors([envoy_pid]):
            os.kill(envoy_pid, signal.SIGKILL)
            pytest.fail("Envoy outlived its parent")
    finally:
        if child.poll() is None:
            child.kill()


def test_admin_is_a_unix_socket_only_its_owner_may_open(envoy):
    """The admin API listened on 127.A.0.1:15000, where every user of a shared host could read
    the config or POST /quitquitquit. Now a UNIX socket, mode 0600, and Envoy listens on no TCP
    port but its listeners' (9080 here)."""
    import stat as stat_
    st = os.stat(envoy.admin_socket)
    assert stat_.S_ISSOCK(st.st_mode) and stat_.S_IMODE(st.st_mode) == 0o600
    assert envoy.admin.ready()
    assert _tcp_listen_ports(envoy.pid) == {9080}


def _tcp_listen_ports(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[9] in inodes:
            ports.add(int(f[1].split(":")[1], 16))
    return ports


def test_an_admin_socket_path_too_long_for_unix_sockets_is_named(tmp_path):
    from meshlab.errors import EnvoyError
    with pytest.raises(EnvoyError, match="longer than 107 bytes"):
        Envoy("x", tmp_path / ("d" * 120))


def test_stats_and_config_dump(envoy):
    stats = envoy.stats(r"^cluster_manager\.cds\.")
    assert stats["cluster_manager.cds.update_rejected"] == 0
    dump = envoy.config_dump()
    assert any("ClustersConfigDump" in s["@type"] for s in dump["configs"])
    assert json.loads(envoy.admin_get("/clusters?format=json"))["cluster_statuses"]
