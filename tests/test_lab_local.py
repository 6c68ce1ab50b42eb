"""The local lab end to end: real pods, real kube-proxy emulation, real Envoy sidecar/gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from meshlab.probe.rows import PROBE_COLUMNS
from meshlab.errors import ManifestError, MeshlabError
from meshlab.lab import Lab

from _manifests import deployment, destination_rule, docs, service, virtual_service
from _pids import alive, survivors

WEB = docs(deployment("web", "v1", replicas=2, port=8080, container="web"),
           deployment("web", "v2", port=8080, container="web"),
           service("web", 80, target_port=8080))

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["web.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-gw}
spec:
  hosts: ["web.example.com"]
  gateways: [web-gw]
  http:
  - route:
    - destination: {host: web, port: {number: 80}}
"""


@pytest.fixture(scope="module")
def lab():
    with Lab(seed=11) as lab:
        lab.apply(WEB)
        yield lab


def _pods(lab: Lab, version: str) -> list[str]:
    df = lab.pods()
    return sorted(df[df.version == version].name)


def test_no_sidecar_keepalive_sticks_new_connections_spread(lab):
    one = lab.probe("http://web/", n=60, via="none", keepalive=True)
    assert tuple(one.columns) == PROBE_COLUMNS
    assert set(one.status) == {200} and one.conn.nunique() == 1 and one.pod.nunique() == 1
    assert set(one["flags"]) == {""} and set(one.proxy) == {"none"}     # no Envoy involved
    many = lab.probe("http://web/", n=90, via="none", keepalive=False)
    assert many.conn.nunique() == 90
    counts = Counter(many.pod)
    assert set(counts) == set(lab.pods().name)                  # every ready pod gets some
    assert min(counts.values()) >= 12                           # uniform 1/3 of 90: P(<12) < 1e-4


def test_seeded_no_sidecar_probe_is_reproducible(lab):
    a = lab.probe("http://web/", n=30, via="none", keepalive=False, seed=5)
    b = lab.probe("http://web/", n=30, via="none", keepalive=False, seed=5)
    c = lab.probe("http://web/", n=30, via="none", keepalive=False, seed=6)
    assert list(a.pod) == list(b.pod)
    assert list(a.pod) != list(c.pod)          # (1/3)^30 chance of a false failure


def test_sidecar_spreads_requests_on_one_keepalive_connection(lab):
    df = lab.probe("http://web/", n=90, via="sidecar", keepalive=True)
    assert set(df.status) == {200} and df.conn.nunique() == 1
    assert df.pod.nunique() == 3                                # Envoy balances per request
    assert set(df["flags"]) == {"-"} and set(df.proxy) == {"sidecar"}
    assert set(df.cluster) == {"outbound|80||web.default.svc.cluster.local"}
    assert set(df.route) == {"default"}
    ips = dict(zip(lab.pods().name, lab.pods().ip))
    assert all(up == f"{ips[pod]}:8080" for pod, up in zip(df.pod, df.upstream))   # Envoy's view = app's


def test_short_and_long_names_resolve_like_cluster_dns(lab):
    for url in ("http://web/", "http://web.default/", "http://web.default.svc/",
                "http://web.default.svc.cluster.local/"):
        assert set(lab.probe(url, n=3).status) == {200}, url


def test_a_trailing_dot_makes_a_name_absolute_like_cluster_dns(lab):
    """`web.` and `web.default.` resolved; to a resolver a trailing dot means "no search path",
    so only the full `web.default.svc.cluster.local.` names the Service."""
    for via in ("sidecar", "none"):
        assert set(lab.probe("http://web.default.svc.cluster.local./", n=2, via=via).status) == {200}
        for url in ("http://web./", "http://web.default./", "http://web.default.svc./"):
            assert set(lab.probe(url, n=2, via=via).error) == {"dns"}, (url, via)


def test_unknown_name_is_a_dns_error_on_every_path(lab):
    for via in ("sidecar", "none"):
        df = lab.probe("http://nosuchservice:9080/", n=4, via=via)
        assert list(df.error) == ["dns"] * 4 and set(df.status) == {0}
    # a short name only resolves in its own namespace
    lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    df = lab.probe("http://web/", n=2, namespace="other", via="none")
    assert set(df.error) == {"dns"}
    assert set(lab.probe("http://web.default/", n=2, namespace="other", via="none").status) == {200}


def test_probe_from_another_namespace_gets_its_own_sidecar(lab):
    lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    df = lab.probe("http://web.default/", n=10, namespace="shop")
    assert set(df.status) == {200} and set(df.proxy) == {"sidecar"}
    assert set(df.cluster) == {"outbound|80||web.default.svc.cluster.local"}
    assert "sidecar-shop" in lab.backend.reconciler.proxies                  # started on first use
    assert set(lab.probe("http://web/", n=3, namespace="shop").error) == {"dns"}
    with pytest.raises(Exception, match="nowhere"):
        lab.probe("http://web.default/", n=1, namespace="nowhere")


def test_probe_for_a_duration(lab):
    df = lab.probe("http://web/", duration=0.3, rate=100)
    assert 1 <= len(df) <= 31 and set(df.status) == {200}     # rate × duration at most
    assert list(df.seq) == list(range(len(df)))


def test_not_ready_pod_gets_no_traffic_then_comes_back(lab):
    v2 = _pods(lab, "v2")[0]
    lab.set_pod(v2, ready=False)
    try:
        assert not lab.pods().set_index("name").ready[v2]
        side = lab.probe("http://web/", n=60)
        none = lab.probe("http://web/", n=60, via="none", keepalive=False)
        assert v2 not in set(side.pod) and v2 not in set(none.pod)
        assert set(side.status) == {200} and set(none.status) == {200}
    finally:
        lab.set_pod(v2, ready=True)
    assert v2 in set(lab.probe("http://web/", n=60).pod)


def test_kill_and_restart(lab):
    v2 = _pods(lab, "v2")[0]
    lab.kill_pod("web-v2", notready_after=None)     # a unique prefix names the pod
    try:
        df = lab.probe("http://web/", n=40, via="none", keepalive=False)
        assert "reset" in set(df.error) and v2 not in set(df.pod)
        side = lab.probe("http://web/", n=40)                     # Envoy retries other hosts
        assert set(side.status) == {200}
        assert v2 not in set(side.pod)
    finally:
        lab.restart_pod(v2)
    assert v2 in set(lab.probe("http://web/", n=60).pod)


def test_kill_leaves_endpoints_after_the_kubelet_notices(lab):
    v2 = _pods(lab, "v2")[0]
    lab.kill_pod(v2, notready_after=0.0)
    try:
        assert lab.pods().set_index("name").phase[v2] == "Failed"
        df = lab.probe("http://web/", n=40, via="none", keepalive=False)
        assert set(df.error) == {""} and v2 not in set(df.pod)
    finally:
        lab.restart_pod(v2)


def test_pod_knobs_reach_the_app(lab):
    v2 = _pods(lab, "v2")[0]
    lab.set_pod(v2, error_rate=1.0)
    try:
        df = lab.probe("http://web/", n=60, via="sidecar")
        failed = df[df.pod == v2]
        assert len(failed) > 0 and set(failed.status) == {503}
        assert set(failed["flags"]) == {"-"}     # the app's own 503 passes through Envoy untouched
    finally:
        lab.set_pod(v2, error_rate=0.0)
    with pytest.raises(Exception, match="error_rate"):
        lab.set_pod(v2, error_rate=3)


def test_gateway_uses_the_url_host_as_host_header(lab):
    lab.apply(GATEWAY)
    try:
        df = lab.probe("http://web.example.com/", n=20, via="gateway")
        assert set(df.status) == {200} and set(df.proxy) == {"gateway"}
        assert set(df.cluster) == {"outbound|80||web.default.svc.cluster.local"}
        other = lab.probe("http://other.example.com/", n=3, via="gateway")
        assert set(other.status) == {404} and set(other["flags"]) == {"NR"}
    finally:
        lab.delete(GATEWAY)


def test_timeline_shows_503_appearing_and_disappearing(lab):
    names = list(lab.pods().name)
    with lab.probing("http://web/", rate=200) as p:
        time.sleep(0.3)
        for n in names:
            lab.set_pod(n, ready=False)
        time.sleep(0.3)
        for n in names:
            lab.set_pod(n, ready=True)
        time.sleep(0.3)
    df = p.result()
    codes = list(df.status)
    first_bad = codes.index(503)
    last_bad = len(codes) - 1 - codes[::-1].index(503)
    assert 0 < first_bad and last_bad < len(codes) - 1
    assert set(df[df.status == 503]["flags"]) == {"UH"}
    assert df.t.is_monotonic_increasing or df.seq.is_monotonic_increasing


def test_bad_input_changes_nothing(lab):
    before = [o.key for o in lab.objects()]
    with pytest.raises(ManifestError):
        lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 99999}]}\n")
    assert [o.key for o in lab.objects()] == before


def test_envoy_config_shows_istio_names(lab):
    view = lab.envoy_config("sidecar")
    text = json.dumps(view, default=str)
    assert "outbound|80||web.default.svc.cluster.local" in text


def test_two_labs_at_once_do_not_collide(lab):
    with Lab() as other:
        other.apply(WEB)
        ips_a, ips_b = set(lab.pods().ip), set(other.pods().ip)
        assert not ips_a & ips_b
        assert lab.backend.lease.block != other.backend.lease.block
        df = other.probe("http://web/", n=30)
        assert set(df.status) == {200} and set(df.pod) <= set(other.pods().name)
    assert set(lab.probe("http://web/", n=10).status) == {200}


def _children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def test_nothing_survives_sigkill_of_the_parent():
    script = textwrap.dedent(f"""
        import os, sys, threading
        from meshlab.lab import Lab
        lab = Lab()
        lab.apply({WEB!r})
        lab.probe("http://web/", n=1)
        print(os.getpid(), flush=True)
        threading.Event().wait()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        kids = _children_of(pid)
        assert len(kids) >= 6                 # 3 pods + kube-proxy + 2 Envoys
    finally:
        parent.kill()
        parent.wait()
    assert survivors(kids, limit=15) == []


def test_config_envoy_rejects_is_loud_and_rolled_back(monkeypatch):
    """If Envoy refuses what the lab built, apply raises Envoy's message and the lab's objects
    go back to what Envoy still runs (a broken cluster is injected into the translation)."""
    import meshlab.istiod.translate as translate
    from meshlab.errors import EnvoyConfigRejected

    real = translate.build_config

    def broken(state, proxy):
        cfg = real(state, proxy)
        if any(o.kind == "VirtualService" for o in state.all()):
            cfg.clusters.append({"name": "broken", "type": "STATIC", "connect_timeout": "-1s"})
        return cfg

    with Lab() as lab:
        lab.apply(WEB)
        before = sorted(o.key for o in lab.objects())
        monkeypatch.setattr(translate, "build_config", broken)
        with pytest.raises(EnvoyConfigRejected, match="duration"):
            lab.apply("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\n"
                      "spec: {hosts: [web], http: [{route: [{destination: {host: web, subset: v9}}]}]}\n")
        assert sorted(o.key for o in lab.objects()) == before
        assert set(lab.probe("http://web/", n=10).status) == {200}


def test_privileged_ports_work_without_root(monkeypatch):
    """A learner on Binder is not root: port 80 (Service and containerPort) must still work.
    Only the loopback sockets move; names, Host headers and the probe's URL stay on port 80."""
    monkeypatch.setenv("MESHLAB_ALIAS_LOW_PORTS", "1")
    low = WEB.replace("containerPort: 8080", "containerPort: 80").replace("targetPort: 8080", "targetPort: 80")
    with Lab() as lab:
        lab.apply(low)
        side = lab.probe("http://web/", n=20)
        assert set(side.status) == {200}
        assert set(side.cluster) == {"outbound|80||web.default.svc.cluster.local"}
        assert all(u.endswith(":10080") for u in side.upstream)
        assert set(lab.probe("http://web:80/", n=10, via="none").status) == {200}


def test_access_logs_are_trimmed_between_probes_not_during(lab):
    path = lab.backend.envoy("sidecar").access_log_path
    lab.probe("http://web/", n=50)
    assert path.stat().st_size > 0
    with lab.probing("http://web/", rate=100) as run:       # a run in flight blocks trimming
        time.sleep(0.1)
        lab.backend._trim_access_logs(limit=0)
        assert path.stat().st_size > 0
    df = run.result()
    assert set(df["flags"]) == {"-"}                          # every row still joined
    lab.backend._trim_access_logs(limit=0)
    assert path.stat().st_size == 0
    assert set(lab.probe("http://web/", n=20)["flags"]) == {"-"}


def test_order_with_a_misspelt_kind_is_refused(lab):
    before = [o.key for o in lab.objects()]
    with pytest.raises(Exception, match="VirtualServce"):
        lab.apply(GATEWAY, order=["VirtualServce", "Gateway"])
    assert [o.key for o in lab.objects()] == before


def test_a_misspelt_client_namespace_is_named_not_turned_into_dns_errors(lab):
    """namespace="defualt" used to give a column of `dns` errors (the short name did not
    resolve in a namespace that does not exist) instead of saying the namespace is wrong."""
    for via in ("sidecar", "none"):
        with pytest.raises(MeshlabError, match='namespace "defualt" does not exist'):
            lab.probe("http://web/", n=2, namespace="defualt", via=via)
    assert "sidecar-defualt" not in lab.backend.reconciler.proxies


def test_bad_probe_arguments_are_refused_before_a_client_sidecar_starts(lab):
    lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "late"}})
    with pytest.raises(MeshlabError, match="concurrency"):
        lab.probe("http://web.default/", n=2, concurrency="2", namespace="late")
    assert "sidecar-late" not in lab.backend.reconciler.proxies


def test_header_values_go_out_as_utf8_and_match_a_virtualservice(lab):
    """A non-ASCII header value was sent as Latin-1 (so a VirtualService match, UTF-8 like all
    YAML, never matched it) and a character outside Latin-1 raised UnicodeEncodeError."""
    rules = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-utf8}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-utf8}
spec:
  hosts: [web]
  http:
  - match: [{headers: {end-user: {exact: "j\u00e4s\u00f6n \u20ac"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - route: [{destination: {host: web, subset: v1}}]
"""
    lab.apply(rules)
    try:
        hit = lab.probe("http://web/", n=10, headers={"end-user": "j\u00e4s\u00f6n \u20ac"})
        miss = lab.probe("http://web/", n=10, headers={"end-user": "jason"})
        assert set(hit.status) == {200} and set(hit.version) == {"v2"}
        assert set(miss.status) == {200} and set(miss.version) == {"v1"}
    finally:
        lab.delete(rules)


def test_order_may_name_a_single_kind_and_a_bad_gap_changes_nothing(lab):
    """order="VirtualService" was split into letters ('V', 'i', ...); gap="1" failed after the
    first kind was already applied."""
    before = [o.key for o in lab.objects()]
    with pytest.raises(MeshlabError, match="gap"):
        lab.apply(GATEWAY, order=["Gateway", "VirtualService"], gap="1")
    assert [o.key for o in lab.objects()] == before
    lab.apply(GATEWAY, order="VirtualService", gap=0.0)
    try:
        assert {("Gateway", "web-gw"), ("VirtualService", "web-gw")} <= {(o.kind, o.name) for o in lab.objects()}
    finally:
        lab.delete(GATEWAY)


def test_a_misspelt_xds_order_is_refused_not_replaced_by_istiods(lab):
    """xds_order=["RDS", "CDS"] (upper case) or "istio" silently pushed in istiod's safe order,
    so the make-before-break window the learner asked for never appeared."""
    before = [o.key for o in lab.objects()]
    for bad in (["RDS", "CDS"], "istio", ["rds", "xds"]):
        with pytest.raises(MeshlabError, match="xds_order"):
            lab.apply(GATEWAY, xds_order=bad)
        assert [o.key for o in lab.objects()] == before


def test_the_default_and_system_namespaces_cannot_be_deleted(lab):
    """Deleting Namespace default took every pod with it (and then every probe failed); the API
    server refuses: namespaces "default" is forbidden: this namespace may not be deleted."""
    before = [o.key for o in lab.objects()]
    for ns in ("default", "kube-system", "kube-public"):
        doomed = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"ports": [{"port": 80}]}},
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
        with pytest.raises(MeshlabError, match=f'namespaces "{ns}" is forbidden'):
            lab.delete(doomed)
        assert [o.key for o in lab.objects()] == before          # not even the Service
    assert set(lab.probe("http://web/", n=3).status) == {200}


def test_pod_knob_mistakes_are_named_and_a_killed_pod_is_not_made_ready(lab):
    v2 = _pods(lab, "v2")[0]
    with pytest.raises(MeshlabError, match="notready_after"):
        lab.kill_pod(v2, notready_after="1")
    assert lab.pods().set_index("name").phase[v2] == "Running"      # not killed half-way
    lab.kill_pod(v2, notready_after=0.0)
    try:
        with pytest.raises(MeshlabError, match="restart_pod"):
            lab.set_pod(v2, ready=True)
        row = lab.pods().set_index("name").loc[v2]
        assert not row.ready and row.phase == "Failed"
    finally:
        lab.restart_pod(v2)


def test_explain_refuses_what_is_not_a_probe_result(lab):
    for bad in (None, 42, [1, 2], "http://web/"):
        with pytest.raises(MeshlabError, match="probe"):
            lab.explain(bad)


def test_a_port_without_a_protocol_is_routed_by_its_address_not_its_host(lab):
    """Istio sniffs an unnamed port: its listener `<ClusterIP>_<port>` is chosen by the dialled
    address, and route configuration `<host>:<port>` has one virtual host for any Host (Envoy
    writes that name's `:` as `_` in its RDS stats; a push once waited for the wrong stat)."""
    plain = service("web-plain", 7000, target_port=8080, port_name="").replace("name: , ", "")
    plain = plain.replace("selector: {app: web-plain}", "selector: {app: web}")
    lab.apply(plain)
    try:
        df = lab.probe("http://web-plain:7000/", n=4, headers={"host": "anything.example"})
        assert set(df.status) == {200}, df[["status", "flags", "error"]]
        assert set(df.cluster) == {"outbound|7000||web-plain.default.svc.cluster.local"}
        assert set(df.route) == {"default"}
    finally:
        lab.delete(plain)


def test_explain_names_a_port_the_service_does_not_have(lab):
    """http://web:8080/ (the targetPort, not the Service port 80) was explained as "refused by
    the chosen pod; check the Service's targetPort" - but no pod was ever chosen. Without a sidecar
    kube-proxy has no rule (refused); a sidecar accepts the connection (iptables sends everything to
    it), passes it through to the ClusterIP and closes it when that fails (reset, UF)."""
    for via, error in (("none", "refused"), ("sidecar", "reset")):
        df = lab.probe("http://web:8080/", n=2, via=via)
        assert set(df.error) == {error}
        if via == "sidecar":
            assert set(df.cluster) == {"PassthroughCluster"} and set(df["flags"]) == {"UF,URX"}
        ex = lab.explain(df)
        assert ex.codes == ["refused.no-service-port"], str(ex)
        assert ex.causes[0].objects == ["Service default/web"]


def test_explain_a_refused_gateway_names_the_missing_gateway_server(lab):
    """A refused connection to the ingress gateway was explained as "a Service without ready
    endpoints, or a dead pod" - the gateway simply has no Gateway server on that port."""
    df = lab.probe("http://web.example.com/", n=2, via="gateway")
    assert set(df.error) == {"refused"}
    assert lab.explain(df).codes == ["refused.no-gateway"]
    lab.apply(GATEWAY)
    try:
        df = lab.probe("http://web.example.com:8081/", n=2, via="gateway")
        ex = lab.explain(df)
        assert ex.codes == ["refused.no-gateway-server-on-port"], str(ex)
        assert ex["refused"].objects == ["Gateway default/web-gw"]
    finally:
        lab.delete(GATEWAY)


def test_applied_objects_are_copies_so_later_edits_change_nothing_until_applied(lab):
    """The lab kept the caller's object: editing a loaded VirtualService after apply changed the
    lab at the next unrelated apply, and an invalid edit (weight -5) got past validation, was
    rejected by Envoy, and - the rollback restoring the same edited object - every later apply
    failed too."""
    from meshlab.manifests import load
    objs = load(GATEWAY)
    vs = next(o for o in objs if o.kind == "VirtualService")
    lab.apply(objs)
    try:
        vs.spec.http[0].route[0].destination.port.number = 81       # edited, not applied
        lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated"}})
        assert set(lab.probe("http://web.example.com/", n=3, via="gateway").status) == {200}
        vs.spec.http[0].route[0].destination.port.number = 80
        vs.spec.http[0].route[0].weight = -5
        with pytest.raises(ManifestError, match=r"route\[0\]\.weight"):
            lab.apply(vs)
        lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated2"}})
        assert set(lab.probe("http://web.example.com/", n=3, via="gateway").status) == {200}
    finally:
        lab.delete(GATEWAY)


def test_objects_hands_out_copies_with_their_source(lab):
    """lab.objects() returned the lab's own objects: editing one changed the lab without apply."""
    svc = next(o for o in lab.objects() if o.kind == "Service" and o.name == "web")
    assert svc.source is not None
    svc.spec.ports[0].port = 81
    lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated3"}})
    assert set(lab.probe("http://web/", n=3).status) == {200}
    assert next(o for o in lab.objects() if o.kind == "Service" and o.name == "web").spec.ports[0].port == 80


def test_a_value_istios_webhook_refuses_is_named_at_apply_and_changes_nothing(lab):
    """maxConnections: -1 passes the CRD schema but Istio's webhook refuses it; it used to reach
    Envoy, which could only say `max_connections` is out of range. Now `apply` names the object
    and field, and Envoy never sees it (Envoy's own reason for such a cluster is still surfaced:
    test_envoy_driver's json-out-of-range case)."""
    from meshlab.errors import ManifestError
    dr = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web-cb}\n"
          "spec:\n  host: web\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}\n")
    with pytest.raises(ManifestError) as info:
        lab.apply(dr)
    msg = str(info.value)
    assert "DestinationRule default/web-cb" in msg
    assert "spec.trafficPolicy.connectionPool.tcp.maxConnections" in msg and "-1" in msg
    assert "web-cb" not in {o.name for o in lab.objects()}
    assert set(lab.probe("http://web/", n=3).status) == {200}


def test_in_jupyter_lab_errors_show_one_paragraph_not_a_traceback(lab):
    with pytest.raises(MeshlabError) as info:
        lab.set_pod("nosuchpod", latency_ms=5)
    lines = info.value._render_traceback_()
    assert len(lines) == 1 and "nosuchpod" in lines[0] and "Traceback" not in lines[0]


def test_close_leaves_nothing_behind():
    with Lab() as lab:
        lab.apply(WEB)
        lab.probe("http://web/", n=5)
        pids = [p.pid for p in lab.backend.reconciler.runner.pods.values()]
        pids += [p.envoy.pid for p in lab.backend.reconciler.proxies.values()]
        pids.append(lab.backend.reconciler.kubeproxy._proc.pid)
        workdir = lab.backend.workdir
        assert all(alive(p) for p in pids) and workdir.exists()
    assert survivors(pids) == []
    assert not workdir.exists()
    assert not lab.backend.lease.held           # the 127.A block is free for the next lab
    with pytest.raises(Exception, match="closed"):
        lab.probe("http://web/", n=1)


def test_lab_backend_comes_from_meshlab_backend_when_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make lab MESHLAB_BACKEND=kind` switches every notebook's `Lab()` without editing it."""
    from meshlab import Lab

    monkeypatch.setenv("MESHLAB_BACKEND", "no-such-backend")
    with pytest.raises(ValueError, match="unknown backend 'no-such-backend'"):
        Lab()


VS_ALL_TO = {v: virtual_service("web", ["web"], f"- route: [{{destination: {{host: web, subset: {v}}}}}]")
             for v in ("v1", "v2")}


def _held(lab: Lab) -> list:
    return sorted((o.key, o.to_manifest().get("spec")) for o in lab.objects())


def test_restoring_puts_changed_deleted_and_added_objects_back(lab):
    """What widgets and YAML exercises stand on: after the block, the lab holds exactly the objects
    it held before, and traffic sees them again."""
    lab.apply(destination_rule("web", ["v1", "v2"]))
    lab.apply(VS_ALL_TO["v1"])
    before = _held(lab)
    with lab.restoring():
        lab.apply(VS_ALL_TO["v2"])                                  # changed
        lab.delete(destination_rule("web", ["v1", "v2"]))          # deleted (v2 routes now 503 NC)
        lab.apply(service("web-extra", 81))                          # added
        inside = lab.probe("http://web/", n=10, seed=1)
    assert set(inside["status"]) == {503}
    assert _held(lab) == before
    after = lab.probe("http://web/", n=10, seed=1)
    assert set(after["status"]) == {200} and set(after["version"]) == {"v1"}
    with pytest.raises(RuntimeError), lab.restoring():             # also when the block raises
        lab.apply(VS_ALL_TO["v2"])
        raise RuntimeError("a widget's probe failed")
    assert _held(lab) == before
    lab.delete(VS_ALL_TO["v1"])
    lab.delete(destination_rule("web", ["v1", "v2"]))


def test_a_closed_lab_says_how_to_start_a_new_one():
    from meshlab.errors import LabClosed
    other = Lab()
    other.close()
    assert other.closed
    for call in (lambda: other.probe("http://web/"), lambda: other.apply(WEB), other.objects, other.pods):
        with pytest.raises(LabClosed, match=r"lab\.close\(\) stopped .* Run All Cells.*lab = Lab\(\)"):
            call()
    other.close()                                                  # closing twice is fine


def test_warnings_are_about_what_the_lab_holds_now() -> None:
    """lab.warnings says what the lab cannot honour in its objects: a warning about an object that
    was deleted (or rolled back by restoring()) goes with it, and comes back when it is applied again."""
    tls = destination_rule("reviews", traffic_policy="{tls: {mode: SIMPLE}}")
    with Lab() as lab:
        lab.apply(docs(service("reviews"), deployment("reviews", "v1")))
        assert not [w for w in lab.warnings if "tls mode SIMPLE" in w]
        with pytest.warns(UserWarning, match="tls mode SIMPLE"):
            lab.apply(tls)
        assert [w for w in lab.warnings if "tls mode SIMPLE" in w]
        lab.delete(tls)
        assert not [w for w in lab.warnings if "tls mode SIMPLE" in w], lab.warnings
        with lab.restoring():
            lab.apply(tls)
            assert [w for w in lab.warnings if "tls mode SIMPLE" in w]
        assert not [w for w in lab.warnings if "tls mode SIMPLE" in w], lab.warnings


def test_an_istio_kind_the_lab_does_not_model_is_a_warning_while_it_is_there() -> None:
    """A Sidecar, PeerAuthentication or AuthorizationPolicy changes traffic on a cluster and nothing
    in the local lab: applying one says so (README, 'the proxies'), deleting it takes the warning away;
    a ServiceAccount (no traffic meaning) stays quiet."""
    sidecar = ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n"
               "spec: {egress: [{hosts: ['./*']}]}\n")
    account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reviews, namespace: default}\n"
    with Lab() as lab:
        with pytest.warns(UserWarning, match="Sidecar default/default"):
            lab.apply(docs(service("reviews"), deployment("reviews", "v1"), sidecar, account))
        assert [w for w in lab.warnings if "Sidecar default/default" in w and "no effect" in w], lab.warnings
        assert not [w for w in lab.warnings if "ServiceAccount" in w], lab.warnings
        lab.delete(sidecar)
        assert not [w for w in lab.warnings if "Sidecar" in w], lab.warnings
