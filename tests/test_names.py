"""meshlab.names: the one vocabulary (hosts, cluster names, Go durations, selectors, port protocols)."""

from __future__ import annotations

import pytest

from meshlab.names import (
    ClusterName, cluster_dns, cluster_name, exported_to, gateway_ref, host_matches, host_subset_of, labels_match,
    parse_cluster_name, parse_duration, port_protocol, proto_duration, selector_string, service_of, split_fqdn,
    subset_of_cluster, to_fqdn,
)

S, MS, US = 1_000_000_000, 1_000_000, 1_000


# Go's time.ParseDuration, read from its source (src/time/format.go): the values it returns.
@pytest.mark.parametrize("text, ns", [
    ("0", 0), ("-0", 0), ("+0", 0), ("5s", 5 * S), ("30s", 30 * S), ("1478s", 1478 * S), ("-5s", -5 * S),
    ("+5s", 5 * S), ("-0s", 0), ("5.0s", 5 * S), ("5.6s", 5 * S + 600 * MS), ("5.s", 5 * S), (".5s", 500 * MS),
    ("1.0s", S), ("1.00s", S), ("1.004s", S + 4 * MS), ("100.00100s", 100 * S + MS), ("10ns", 10),
    ("11us", 11 * US), ("12µs", 12 * US), ("12μs", 12 * US), ("13ms", 13 * MS), ("14s", 14 * S),
    ("15m", 15 * 60 * S), ("16h", 16 * 3600 * S), ("3h30m", (3 * 60 + 30) * 60 * S),
    ("10.5s4m", 4 * 60 * S + 10 * S + 500 * MS), ("-2m3.4s", -(2 * 60 * S + 3 * S + 400 * MS)),
    ("1h2m3s4ms5us6ns", 3600 * S + 120 * S + 3 * S + 4 * MS + 5 * US + 6), ("1m30s", 90 * S),
    ("39h9m14.425s", 39 * 3600 * S + 9 * 60 * S + 14 * S + 425 * MS),
    ("52763797000ns", 52763797000), ("0.3333333333333333333h", 20 * 60 * S),
    ("9007199254740993ns", (1 << 53) + 1), ("9223372036854775807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)), ("0.100000000000000000000h", 6 * 60 * S),
    ("0.830103483285477580700h", 49 * 60 * S + 48 * S + 372539827),
])
def test_go_durations_as_go_reads_them(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text, why", [
    ("", "invalid duration"), ("3", "missing unit"), ("-", "invalid duration"), ("s", "invalid duration"),
    (".", "invalid duration"), ("-.", "invalid duration"), (".s", "invalid duration"), ("+.s", "invalid duration"),
    ("1d", "unknown unit"), ("1e3s", "unknown unit"), ("1 s", "unknown unit"), ("10sec", "unknown unit"),
    ("1.s.", "invalid duration"), ("9223372036854775808ns", "invalid duration"),
    ("9223372036854775810ns", "invalid duration"), ("-9223372036854775809ns", "invalid duration"),
    ("2562048h", "invalid duration"),
])
def test_what_go_refuses_as_a_duration(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


@pytest.mark.parametrize("text, proto", [
    ("1m30s", "90s"), ("1.5s", "1.5s"), ("300ms", "0.3s"), ("1h", "3600s"), ("1us", "0.000001s"), ("0", "0s"),
    ("2h45m", "9900s"), ("-1.5s", "-1.5s"),
])
def test_envoy_gets_protobuf_json_durations(text: str, proto: str) -> None:
    assert proto_duration(text) == proto


def test_cluster_names_built_and_parsed() -> None:
    name = cluster_name(9080, "v2", "reviews.default.svc.cluster.local")
    assert name == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert parse_cluster_name(name) == ClusterName("outbound", 9080, "v2", "reviews.default.svc.cluster.local")
    assert str(parse_cluster_name(name)) == name
    assert parse_cluster_name("outbound|80||web.prod.svc.cluster.local").subset == ""
    for other in ("PassthroughCluster", "BlackHoleCluster", "", None, "a|b|c", "x|1|v1|h"):
        assert parse_cluster_name(other) is None
    assert subset_of_cluster(name) == "v2" and subset_of_cluster("inbound|9080|v1|h") == ""
    assert subset_of_cluster("-") == "" and subset_of_cluster(None) == ""


def test_hosts_expand_and_match_as_istio_reads_them() -> None:
    assert to_fqdn("reviews", "prod") == "reviews.prod.svc.cluster.local"
    for kept in ("reviews.prod", "*", "*.example.com", "10.0.0.1", "::1", ""):
        assert to_fqdn(kept, "prod") == kept
    assert split_fqdn("a.b.ns.svc.cluster.local") == ("a.b", "ns") and service_of("a.b.ns.svc.cluster.local") is None
    assert service_of("reviews.prod.svc.cluster.local") == ("reviews", "prod") and split_fqdn("reviews.prod") is None
    # host.Name.Matches (symmetric) and SubsetOf (one way)
    assert host_matches("*.com", "foo.com") and host_matches("bar.com", "*.com") and host_matches("*", "*.com")
    assert not host_matches("*.foo.com", "foo.com") and not host_matches("a.com", "b.com")
    assert host_matches("*.a.com", "*.com") and host_matches("*.com", "*.a.com")
    assert host_subset_of("foo.com", "*.com") and host_subset_of("*.a.com", "*.com") and host_subset_of("x", "*")
    assert not host_subset_of("*.com", "foo.com") and not host_subset_of("*.com", "*.a.com")


@pytest.mark.parametrize("name, ns, service", [
    ("reviews", "prod", ("reviews", "prod")), ("reviews.other", "prod", ("reviews", "other")),
    ("reviews.other.svc", "prod", ("reviews", "other")),
    ("reviews.other.svc.cluster.local", "prod", ("reviews", "other")),
    ("reviews.other.svc.cluster.local.", "prod", ("reviews", "other")),
    ("example.com", "prod", ("example", "com")),   # Service example in namespace com, if there is one
    ("reviews.", "prod", None), ("reviews.other.", "prod", None), ("www.example.com", "prod", None), ("", "prod", None),
])
def test_cluster_dns_search_path(name: str, ns: str, service: tuple[str, str] | None) -> None:
    assert cluster_dns(name, ns) == service


def test_label_selection_and_its_string() -> None:
    assert labels_match({"app": "web"}, {"app": "web", "version": "v1"})
    assert not labels_match({"app": "web", "version": "v2"}, {"app": "web", "version": "v1"})
    assert labels_match({}, {"app": "web"})
    assert selector_string({"version": "v1", "app": "web"}) == "app=web,version=v1"
    assert selector_string([("app.kubernetes.io/managed-by", "meshlab")]) == "app.kubernetes.io/managed-by=meshlab"


@pytest.mark.parametrize("number, name, transport, app, protocol", [
    (80, "http", "TCP", None, "HTTP"), (80, "http-web", "TCP", None, "HTTP"), (80, "HTTP2-x", "TCP", None, "HTTP2"),
    (80, "grpc-web-x", "TCP", None, "GRPC-Web"), (80, "web", "TCP", None, "UnsupportedProtocol"),
    (3306, "db", "TCP", None, "TCP"), (53, "dns", "UDP", None, "UDP"), (80, None, "TCP", None, "UnsupportedProtocol"),
    (80, "tcp", "TCP", "http", "HTTP"), (80, "http", "TCP", "kubernetes.io/h2c", "HTTP2"),
    (80, "http", "TCP", "foo", "UnsupportedProtocol"),   # appProtocol wins, even when Istio does not know it
    (80, "mongo-x", "TCP", None, "Mongo"),
])
def test_port_protocol_as_istio_converts_it(number, name, transport, app, protocol) -> None:
    assert port_protocol(number, name, transport, app) == protocol


@pytest.mark.parametrize("entry, ns, resolved", [
    ("public-gw", "default", "default/public-gw"),       # a short name: the VirtualService's own namespace
    ("./public-gw", "default", "default/public-gw"),
    ("istio-system/public-gw", "default", "istio-system/public-gw"),
    ("public-gw.istio-system", "default", "istio-system/public-gw"),          # the legacy FQDN forms
    ("public-gw.istio-system.svc.cluster.local", "default", "istio-system/public-gw"),
    ("mesh", "default", "mesh"),
])
def test_gateway_ref_resolves_as_istiod_does(entry: str, ns: str, resolved: str) -> None:
    """istiod's resolveGatewayName (pilot/pkg/model/config.go) and the cases of its test."""
    assert gateway_ref(entry, ns) == resolved


@pytest.mark.parametrize("export_to, obj_ns, client_ns, visible", [
    ([], "prod", "default", True), (["*"], "prod", "default", True), (["."], "prod", "default", False),
    (["."], "prod", "prod", True), (["default"], "prod", "default", True), (["other"], "prod", "default", False),
    (["~"], "prod", "prod", False),
])
def test_exported_to(export_to: list[str], obj_ns: str, client_ns: str, visible: bool) -> None:
    assert exported_to(export_to, obj_ns, client_ns) is visible
