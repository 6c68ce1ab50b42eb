"""load(): every input form, typed results, sources, namespaces, notes, and the API server's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlab.errors import ManifestError
from meshlab.names import duration_seconds
from meshlab.manifests import Manifests, load, load_report
from meshlab.objects import (
    Deployment, DestinationRule, Gateway, Namespace, Pod, Service, ServiceEntry, Source, UnmodelledObject,
    VirtualService,
)

REVIEWS = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews
  labels: {app: reviews}
spec:
  selector: {app: reviews}
  ports:
  - name: http
    port: 9080
---
# the routing
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: prod
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
    timeout: 1.5s
"""


def test_yaml_string_gives_typed_objects_with_sources_and_default_namespace() -> None:
    svc, vs = load(REVIEWS)
    assert isinstance(svc, Service) and isinstance(vs, VirtualService)
    assert svc.namespace == "default" and vs.namespace == "prod"
    assert svc.spec.ports[0].port == 9080
    assert [d.weight for d in vs.spec.http[0].route or []] == [80, 20]
    assert vs.spec.http[0].route[0].destination.subset == "v1"
    assert duration_seconds(vs.spec.http[0].timeout or "") == 1.5
    assert svc.source == Source("<string>", 1)
    assert vs.source == Source("<string>", 13)   # the document's first line, after the comment


def test_files_and_recursive_folders_skip_hidden_and_non_yaml(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "svc.yaml").write_text(REVIEWS.split("---")[0])
    (tmp_path / "a" / "b" / "ns.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n")
    (tmp_path / "a" / "notes.txt").write_text("not yaml: [")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "svc.yaml").write_text(REVIEWS.split("---")[0])
    objs = load(tmp_path)
    assert sorted(type(o).__name__ for o in objs) == ["Namespace", "Service"]
    ns = next(o for o in objs if isinstance(o, Namespace))
    assert ns.namespace is None and ns.source == Source(str(tmp_path / "a" / "b" / "ns.yml"), 1)
    assert load(str(tmp_path / "a" / "svc.yaml"))[0].name == "reviews"
    assert load(tmp_path / "a" / "svc.yaml")[0].source.file == str(tmp_path / "a" / "svc.yaml")


def test_a_yaml_tag_kubectl_does_not_know_is_ignored_as_kubectl_ignores_it() -> None:
    # sigs.k8s.io/yaml (go-yaml) reads the tagged node as what it is; the API server then judges it
    # (tests/test_validate_vs_apiserver.py checks the same documents against a real one)
    [ns] = load("apiVersion: v1\nkind: Namespace\nmetadata: !Ref {name: shop}\n")
    assert ns.name == "shop"
    [cm] = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {cmd: !!python/name:os.system ls}\n")
    assert cm.to_manifest()["data"] == {"cmd": "ls"}          # text, never an import


def test_dicts_objects_and_nested_lists() -> None:
    d = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}
    svc = load(REVIEWS)[0]
    objs = load([d, [svc, {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
                           "metadata": {"name": "r"}, "spec": {"host": "reviews"}}]])
    assert [type(o) for o in objs] == [Namespace, Service, DestinationRule]
    assert objs[0].source == Source("<dict>")
    assert objs[1] is not svc and objs[1].source == svc.source   # a copy, keeping where it came from


def test_object_without_namespace_is_put_in_default_without_changing_the_callers_object() -> None:
    svc = Service.model_validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
                                  "spec": {"ports": [{"port": 80}]}})
    (loaded,) = load(svc)
    assert loaded.namespace == "default" and svc.namespace is None


def test_every_modelled_kind_and_istio_version() -> None:
    docs = []
    for version in ("v1", "v1beta1", "v1alpha3"):
        g = f"networking.istio.io/{version}"
        docs += [
            f"apiVersion: {g}\nkind: VirtualService\nmetadata: {{name: vs-{version}}}\nspec: {{hosts: [a]}}\n",
            f"apiVersion: {g}\nkind: DestinationRule\nmetadata: {{name: dr-{version}}}\nspec: {{host: a}}\n",
            f"apiVersion: {g}\nkind: Gateway\nmetadata: {{name: gw-{version}}}\nspec:\n  selector: {{istio: ingressgateway}}\n"
            f"  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}]\n",
            f"apiVersion: {g}\nkind: ServiceEntry\nmetadata: {{name: se-{version}}}\nspec:\n  hosts: [api.example.com]\n"
            f"  ports: [{{number: 443, name: https, protocol: TLS}}]\n  resolution: DNS\n",
        ]
    docs += [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: x}]}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n"
        "  template:\n    metadata: {labels: {app: d, version: v1}}\n    spec: {containers: [{name: app, image: x}]}\n",
    ]
    objs = load("---\n".join(docs))
    kinds = {type(o) for o in objs}
    assert kinds == {VirtualService, DestinationRule, Gateway, ServiceEntry, Namespace, Pod, Deployment}
    assert len(objs) == 15


def test_unmodelled_kinds_are_kept_and_reported_as_notes() -> None:
    text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bookinfo}\n---\n" \
           "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny}\nspec: {}\n"
    objs = load(text)
    assert isinstance(objs, Manifests)
    assert [type(o) for o in objs] == [UnmodelledObject, UnmodelledObject]
    assert objs[1].kind == "AuthorizationPolicy" and objs[1].namespace == "default"
    assert objs[1].model_extra == {"spec": {}}
    assert [n.object for n in objs.notes] == ["ServiceAccount default/bookinfo", "AuthorizationPolicy default/deny"]
    assert all("not modelled" in n.message and n.line for n in objs.notes)


def test_empty_inputs_are_not_errors_but_say_so(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# nothing here yet\n---\n")
    report = load_report(tmp_path)
    assert report.ok and report.objects == []
    assert sorted(Path(n.file or "").name for n in report.notes) == ["comments.yaml", "empty.yaml"]
    assert all("held no objects" in n.message for n in report.notes)
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    assert "no *.yaml" in load_report(empty_dir).notes[0].message


def test_kind_list_is_expanded() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n" \
           "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n"
    objs = load(text)
    assert [o.name for o in objs] == ["a", "b"]
    assert [o.source.line for o in objs] == [4, 7]


def test_nulls_mean_unset_as_on_the_api_server() -> None:
    (vs,) = load("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, labels: null}\n"
                 "spec:\n  hosts: [a]\n  gateways: null\n  http:\n  - timeout: null\n    route: [{destination: {host: a}}]\n")
    assert vs.spec.gateways == [] and vs.spec.http[0].timeout is None and vs.labels == {}


def test_serviceentry_workload_selector_takes_labels() -> None:
    (se,) = load("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: vm}\nspec:\n"
                 "  hosts: [vm.example.com]\n  ports: [{number: 80, name: http}]\n  workloadSelector: {labels: {app: vm}}\n")
    assert se.spec.workload_selector.labels == {"app": "vm"} and se.spec.workload_selector.match_labels == {"app": "vm"}
    with pytest.raises(ManifestError, match="takes labels, not matchLabels"):
        load("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: vm}\nspec:\n"
             "  hosts: [vm.example.com]\n  workloadSelector: {matchLabels: {app: vm}}\n")


@pytest.mark.parametrize("yaml_text, field, message", [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80}, {port: 81}]\n",
     "spec.ports[0]", "must name every port"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, name: x}, {port: 80, name: y}]\n",
     "spec.ports[1].port", "duplicate port 80/TCP"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {selector: {app: a}}\n",
     "spec.ports", "at least one port"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, targetPort: 70000}]\n",
     "spec.ports[0].targetPort", "between 1 and 65535"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, targetPort: Http_Web}]\n",
     "spec.ports[0].targetPort", "neither a port number nor a valid port name"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: 9lives}\nspec:\n  ports: [{port: 80}]\n",
     "metadata.name", "RFC 1035"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n", "metadata.name", "RFC 1123 label"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: " + "a" * 64 + "}\n", "metadata.name", "at most 63"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Prod}\nspec: {containers: [{name: a}]}\n",
     "metadata.namespace", "not a valid namespace name"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {'-bad': x}}\nspec: {containers: [{name: a}]}\n",
     'metadata.labels["-bad"]', "not a valid label key"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: 'a b'}}\nspec: {containers: [{name: a}]}\n",
     "metadata.labels.app", "not a valid label value"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
     "spec.containers", "at least 1 item"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}, {name: a}]}\n",
     "spec.containers[1].name", "duplicate container name"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {}\n  template:\n"
     "    spec: {containers: [{name: a}]}\n", "spec.selector", "empty selector"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  http:\n"
     "  - route: [{destination: {host: a}}, {destination: {host: b}}]\n", "spec.http[0].route", "weights must add up"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  http:\n"
     "  - route: [{destination: {host: a}}]\n    retries: {attempts: 3, perTryTimeout: 0s}\n",
     "spec.http[0].retries.perTryTimeout", "at least 1ms"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  http:\n"
     "  - route: [{destination: {host: a}}]\n    fault: {delay: {fixedDelay: 1s, exponentialDelay: 2s}}\n",
     "spec.http[0].fault.delay", "only one of fixedDelay, exponentialDelay"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  http:\n"
     "  - redirect: {port: 8080, derivePort: FROM_REQUEST_PORT}\n", "spec.http[0].redirect", "only one of port"),
    ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n"
     "  trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}\n",
     "spec.trafficPolicy.loadBalancer", "only one of simple, consistentHash"),
    ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n"
     "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: -1}}\n",
     "spec.trafficPolicy.outlierDetection.consecutive5xxErrors", "must be >= 0"),
    ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  subsets: [{name: v1}]\n",
     "spec.host", "required field host is missing"),
    ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers:\n"
     "  - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n", "spec.servers[0].port.name", "required field name"),
    ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: ['*']\n",
     "spec", "cannot be wildcard"),
    ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [a.com]\n"
     "  endpoints: [{address: 1.2.3.4}]\n", "spec", "resolution NONE (the default) cannot set endpoints"),
    ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [a.com]\n"
     "  ports: [{number: 80, name: a}, {number: 80, name: b}]\n", "spec", "port number cannot be duplicated"),
    ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [a.com]\n"
     "  ports: [{number: 0, name: a}]\n", "spec.ports[0].number", "must be >= 1"),
])
def test_api_server_rules(yaml_text: str, field: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        load(yaml_text)
    hits = [p for p in info.value.problems if message in p.message]
    assert hits, [str(p) for p in info.value.problems]
    assert hits[0].field == field and hits[0].file == "<string>" and hits[0].line


@pytest.mark.parametrize("text, seconds", [
    ("1ms", 0.001), ("1.5s", 1.5), ("1m30s", 90.0), ("2h", 7200.0), ("500us", 0.0005), (".5s", 0.5), ("0", 0.0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1", "1 s", "s", "1.s.", "-", "1d", "10sec", "", "1e3s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        duration_seconds(text)


def test_problem_names_object_field_line_and_what_was_found() -> None:
    with pytest.raises(ManifestError) as info:
        load(REVIEWS.replace("weight: 20", "weight: twenty"))
    (p,) = info.value.problems
    assert (p.file, p.line, p.object, p.field) == ("<string>", 25, "VirtualService prod/reviews",
                                                   "spec.http[0].route[1].weight")
    assert p.message == 'expected an integer, found the string "twenty"'
    assert str(p) == '<string>:25 VirtualService prod/reviews spec.http[0].route[1].weight: ' + p.message


def test_unknown_field_on_a_dict_has_no_line_but_names_field() -> None:
    with pytest.raises(ManifestError) as info:
        load({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "lables": {}}})
    (p,) = info.value.problems
    assert p.file == "<dict>" and p.line is None and p.field == "metadata.lables"
    assert 'did you mean "labels"' in p.message


def test_a_one_line_string_that_is_not_yaml_is_a_missing_path() -> None:
    report = load_report("manifests/reviews.yaml")
    assert report.problems[0].message == "no such file or folder"
    assert report.problems[0].file == "manifests/reviews.yaml"


def test_the_same_object_twice_in_one_call_the_last_wins_with_a_warning() -> None:
    """As `kubectl apply -f folder/`: applied in order, the later definition replaces the earlier."""
    ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
    relabelled = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {team: x}}\n"
    objs = load([ns, relabelled])
    assert len(objs) == 1 and objs[0].metadata.labels == {"team": "x"}
    (w,) = objs.warnings
    assert w.object == "Namespace a" and w.file == "<string>" and "the last one wins" in w.message
    # same name, different kind or namespace: different objects
    assert len(load([ns, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n"])) == 2
    # what a lab applies: the same, and the learner sees the warning
    from meshlab.lab import Lab
    with pytest.warns(UserWarning, match="the last one wins"):
        assert len(Lab._load([ns, relabelled])) == 1


def test_in_jupyter_a_manifest_error_shows_the_problems_not_a_traceback() -> None:
    with pytest.raises(ManifestError) as info:
        load(REVIEWS.replace("weight: 20", "weight: twenty").replace("port: 9080", "port: high"))
    lines = info.value._render_traceback_()
    assert lines[0] == "ManifestError: 2 problems, nothing was applied"
    assert [line.strip() for line in lines[1:]] == [str(p) for p in info.value.problems]
    assert not any("Traceback" in line or "File " in line for line in lines)


def test_service_target_port_zero_is_defaulted_to_the_port() -> None:
    (svc,) = load("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n"
                  "  ports: [{name: http, port: 80, targetPort: 0}, {name: web, port: 81, targetPort: web}]\n")
    assert [p.target_port for p in svc.spec.ports] == [80, "web"]


# ------------------------------------------------------------- what Istio's validating webhook refuses

_VS = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: prod}\nspec:\n"
       "  hosts: [a]\n  http:\n  - ")
_DR = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: prod}\nspec:\n  host: a\n  "


def _vs(rule: str) -> str:
    """A VirtualService with one http rule, written inline: `rule` is its mapping's body."""
    return _VS + rule.replace("\n", "\n    ") + "\n"


def _route(extra: str) -> str:
    return _vs("route: [{destination: {host: a}}]\n" + extra)


def _pool(tcp: str = "", http: str = "") -> str:
    parts = ", ".join(p for p in (f"tcp: {{{tcp}}}" if tcp else "", f"http: {{{http}}}" if http else "") if p)
    return _DR + f"trafficPolicy:\n    connectionPool: {{{parts}}}\n"


def _outlier(body: str) -> str:
    return _DR + f"trafficPolicy:\n    outlierDetection: {{{body}}}\n"


def _match(match: str) -> str:
    return _route(f"match: [{{{match}}}]")


# (manifest, field path, words of the message) — each refused by Istio's webhook though the CRD takes it
WEBHOOK_REFUSES = [
    # DestinationRule connectionPool (validation.go validateConnectionPool)
    (_pool(tcp="maxConnections: -1"), "spec.trafficPolicy.connectionPool.tcp.maxConnections", "must be >= 0"),
    (_pool(http="http1MaxPendingRequests: -1"), "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
     "must be >= 0"),
    (_pool(http="http2MaxRequests: -5"), "spec.trafficPolicy.connectionPool.http.http2MaxRequests", "must be >= 0"),
    (_pool(http="maxRequestsPerConnection: -1"), "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
     "must be >= 0"),
    (_pool(http="maxRetries: -1"), "spec.trafficPolicy.connectionPool.http.maxRetries", "must be >= 0"),
    (_pool(http="maxConcurrentStreams: -1"), "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams",
     "must be >= 0"),
    (_pool(tcp="connectTimeout: 1.5ms"), "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
     "whole number of milliseconds"),
    (_pool(tcp="maxConnectionDuration: 2500us"), "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
     "whole number of milliseconds"),
    (_pool(tcp="idleTimeout: 5ms500us"), "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
     "whole number of milliseconds"),
    (_pool(tcp="idleTimeout: forever"), "spec.trafficPolicy.connectionPool.tcp.idleTimeout", "is not a duration"),
    (_pool(tcp="idleTimeout: -5ms"), "spec.trafficPolicy.connectionPool.tcp.idleTimeout", "at least 1ms"),
    (_pool(http="idleTimeout: 1.0001s"), "spec.trafficPolicy.connectionPool.http.idleTimeout",
     "whole number of milliseconds"),
    (_pool(http="h2UpgradePolicy: UPGRADE, useClientProtocol: true"),
     "spec.trafficPolicy.connectionPool.http.useClientProtocol", "h2UpgradePolicy is UPGRADE"),
    (_DR + "trafficPolicy:\n    connectionPool: {}\n", "spec.trafficPolicy.connectionPool", "tcp, http or both"),
    (_DR + "trafficPolicy: {}\n", "spec.trafficPolicy", "at least one field"),
    (_DR + "subsets:\n  - name: v1\n    trafficPolicy: {connectionPool: {tcp: {maxConnections: -3}}}\n",
     "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections", "must be >= 0"),
    (_DR + "trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      connectionPool: {http: {maxRetries: -1}}\n",
     "spec.trafficPolicy.portLevelSettings[0].connectionPool.http.maxRetries", "must be >= 0"),
    (_DR + "trafficPolicy:\n    portLevelSettings:\n    - loadBalancer: {simple: RANDOM}\n",
     "spec.trafficPolicy.portLevelSettings[0].port", "required field port"),
    (_DR + "subsets: [{name: v1_a}]\n", "spec.subsets[0].name", "not a valid subset name"),
    # outlierDetection (validateOutlierDetection)
    (_outlier("maxEjectionPercent: 101"), "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "between 0 and 100"),
    (_outlier("maxEjectionPercent: -1"), "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "between 0 and 100"),
    (_outlier("minHealthPercent: 150"), "spec.trafficPolicy.outlierDetection.minHealthPercent", "between 0 and 100"),
    (_outlier("consecutiveGatewayErrors: -1"), "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors",
     "must be >= 0"),
    (_outlier("interval: 10.5ms"), "spec.trafficPolicy.outlierDetection.interval", "whole number of milliseconds"),
    (_outlier("consecutiveLocalOriginFailures: 3"),
     "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors"),
    # VirtualService fault (validateHTTPFaultInjection)
    (_route("fault: {abort: {httpStatus: 199}}"), "spec.http[0].fault.abort.httpStatus", "from 200 to 599"),
    (_route("fault: {abort: {httpStatus: 600}}"), "spec.http[0].fault.abort.httpStatus", "from 200 to 599"),
    (_route("fault: {abort: {httpStatus: 503, percentage: {value: 101}}}"),
     "spec.http[0].fault.abort.percentage.value", "must be <= 100"),
    (_route("fault: {delay: {fixedDelay: 1s, percentage: {value: -1}}}"),
     "spec.http[0].fault.delay.percentage.value", "must be >= 0"),
    (_route("fault: {delay: {fixedDelay: 1s, percentage: {value: 0.00001}}}"),
     "spec.http[0].fault.delay.percentage.value", "between 0.0001 and 100"),
    (_route("fault: {abort: {grpcStatus: NOPE}}"), "spec.http[0].fault.abort.grpcStatus", "not a gRPC status"),
    (_route("fault: {abort: {http2Error: x}}"), "spec.http[0].fault.abort.http2Error", "not supported"),
    (_route("fault: {delay: {exponentialDelay: 1s}}"), "spec.http[0].fault.delay.exponentialDelay", "not supported"),
    (_route("fault: {delay: {fixedDelay: 1.5ms}}"), "spec.http[0].fault.delay.fixedDelay", "whole number"),
    (_route("fault: {}"), "spec.http[0].fault", "an abort, a delay or both"),
    # redirect (validateHTTPRedirect)
    (_vs("redirect: {uri: /x, redirectCode: 200}"), "spec.http[0].redirect.redirectCode", "3xx redirect code"),
    (_vs("redirect: {uri: /x, redirectCode: 400}"), "spec.http[0].redirect.redirectCode", "3xx redirect code"),
    (_vs("redirect: {uri: /x, scheme: ftp}"), "spec.http[0].redirect.scheme", '"http" or "https"'),
    (_vs("redirect: {uri: /x, port: 70000}"), "spec.http[0].redirect.port", "between 1 and 65535"),
    (_vs("redirect: {redirectCode: 302}"), "spec.http[0].redirect", "at least one of uri"),
    (_vs("redirect: {uri: /x, prefixRewrite: /y}"), "spec.http[0].redirect", "only one of uri or prefixRewrite"),
    (_vs("match: [{uri: {exact: /a}}]\nredirect: {prefixRewrite: /y}"), "spec.http[0].redirect.prefixRewrite",
     "prefix match"),
    (_vs("redirect: {uri: /x}\nroute: [{destination: {host: a}}]"), "spec.http[0].route", "redirect cannot also"),
    # retries and timeouts (ValidateHTTPRetry, ValidateDuration)
    (_route("retries: {attempts: -1}"), "spec.http[0].retries.attempts", "must be >= 0"),
    (_route("retries: {perTryTimeout: 2s}"), "spec.http[0].retries.attempts", "attempts 0"),
    (_route("retries: {attempts: 2, retryOn: '5xx, reset'}"), "spec.http[0].retries.retryOn", '" reset" is not'),
    (_route("retries: {attempts: 2, retryOn: '5xx,599'}"), "spec.http[0].retries.retryOn", '"599" is not'),
    (_route("retries: {attempts: 2, perTryTimeout: 0.5ms}"), "spec.http[0].retries.perTryTimeout", "at least 1ms"),
    (_route("retries: {attempts: 2, perTryTimeout: 100.5ms}"), "spec.http[0].retries.perTryTimeout", "whole number"),
    (_route("timeout: '2'"), "spec.http[0].timeout", "is not a duration"),
    (_route("timeout: 1.0005s"), "spec.http[0].timeout", "whole number of milliseconds"),
    # destinations, rewrite, direct response
    (_vs("route: [{destination: {host: a, subset: v1.0}}]"), "spec.http[0].route[0].destination.subset",
     "not a valid subset name"),
    (_vs("route: [{destination: {host: a, port: {number: 70000}}}]"),
     "spec.http[0].route[0].destination.port.number", "between 1 and 65535"),
    (_vs("route: [{destination: {host: '*'}}]"), "spec.http[0].route[0].destination.host", 'cannot be "*"'),
    (_route("rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"), "spec.http[0].rewrite",
     "only one of uri or uriRegexRewrite"),
    (_route("rewrite: {uriRegexRewrite: {match: '(?<=a)b', rewrite: c}}"), "spec.http[0].rewrite.uriRegexRewrite.match",
     "RE2"),
    (_vs("directResponse: {status: 600}"), "spec.http[0].directResponse.status", "from 200 to 599"),
    (_route("corsPolicy: {allowOrigins: [{regex: 'https://(?!evil).*'}]}"),
     "spec.http[0].corsPolicy.allowOrigins[0].regex", "RE2"),
    (_route("corsPolicy: {allowOrigins: [{exact: ''}]}"), "spec.http[0].corsPolicy.allowOrigins[0]", "non-empty"),
    (_route("corsPolicy: {allowMethods: [GET, FETCH]}"), "spec.http[0].corsPolicy.allowMethods[1]", "not an HTTP method"),
    (_route("corsPolicy: {maxAge: 1.5s}"), "spec.http[0].corsPolicy.maxAge", "whole number of seconds"),
    # StringMatch regexes: RE2, not Python's re (validateStringMatch / validateStringRegexp)
    (_match("uri: {regex: '/api(?=/v2)'}"), "spec.http[0].match[0].uri.regex", "lookahead"),
    (_match("uri: {regex: '/(?!admin).*'}"), "spec.http[0].match[0].uri.regex", "negative lookahead"),
    (_match("uri: {regex: '(?<=/)x'}"), "spec.http[0].match[0].uri.regex", "lookbehind"),
    (_match("headers: {x-id: {regex: '(a)\\1'}}"), 'spec.http[0].match[0].headers["x-id"].regex', "backreferences"),
    (_match("queryParams: {v: {regex: '[0-9]++'}}"), "spec.http[0].match[0].queryParams.v.regex", "possessive"),
    (_match("authority: {regex: '(api|www'}"), "spec.http[0].match[0].authority.regex", "missing )"),
    (_match("method: {regex: '(?>GET)'}"), "spec.http[0].match[0].method.regex", "atomic group"),
    (_match("scheme: {regex: 'https?\\Z'}"), "spec.http[0].match[0].scheme.regex", "invalid escape sequence \\Z"),
    (_match("uri: {regex: 'a{1001}'}"), "spec.http[0].match[0].uri.regex", "up to 1000"),
    # RE2 compiles it, but its program is larger than Istio lets Envoy run (re2.max_program_size 32768)
    (_match("uri: {regex: '" + ".{1000}" * 16 + ".{400}'}"), "spec.http[0].match[0].uri.regex", "32768"),
    (_match("uri: {regex: ''}"), "spec.http[0].match[0].uri.regex", "must not be empty"),
    (_match("uri: {regex: '" + "a" * 1025 + "'}"), "spec.http[0].match[0].uri.regex", "at most 1024"),
    (_match("headers: {x-a: {prefix: ''}}"), 'spec.http[0].match[0].headers["x-a"].prefix', "must not be empty"),
    (_match("port: 70000"), "spec.http[0].match[0].port", "between 1 and 65535"),
]


@pytest.mark.parametrize("yaml_text, field, message", WEBHOOK_REFUSES,
                         ids=[f"{f}:{m}" for _, f, m in WEBHOOK_REFUSES])
def test_what_istios_webhook_refuses(yaml_text: str, field: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        load(yaml_text)
    hits = [p for p in info.value.problems if message in p.message]
    assert hits, [str(p) for p in info.value.problems]
    (p,) = hits
    assert p.field == field and p.file == "<string>" and p.line and p.line > 1
    assert p.object in ("VirtualService prod/v", "DestinationRule prod/r")


# The boundary values the webhook still takes: each must load.
WEBHOOK_ACCEPTS = [
    _pool(tcp="maxConnections: 0, connectTimeout: 1ms, maxConnectionDuration: 1500ms, idleTimeout: 0s"),
    _pool(tcp="idleTimeout: 500us"),   # under 1ms rounds to 0: "off", as the webhook reads it
    _pool(http="http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRequestsPerConnection: 0, maxRetries: 0, "
               "maxConcurrentStreams: 0, idleTimeout: 1.001s"),
    _pool(http="h2UpgradePolicy: UPGRADE, useClientProtocol: false"),
    _outlier("maxEjectionPercent: 100, minHealthPercent: 0, interval: 1ms, baseEjectionTime: 1m30s"),
    _outlier("maxEjectionPercent: 0, minHealthPercent: 100"),
    _outlier("splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3"),
    _route("fault: {abort: {httpStatus: 200, percentage: {value: 0}}}"),
    _route("fault: {abort: {httpStatus: 599, percentage: {value: 100}}}"),
    _route("fault: {abort: {grpcStatus: UNAVAILABLE}, delay: {fixedDelay: 1ms, percentage: {value: 0.0001}}}"),
    _vs("redirect: {uri: /x, redirectCode: 300}"),
    _vs("redirect: {uri: /x, redirectCode: 399, scheme: https, port: 65535}"),
    _vs("match: [{uri: {prefix: /a}}]\nredirect: {prefixRewrite: /b}"),
    _route("retries: {attempts: 0}"),
    _route("retries: {attempts: 3, perTryTimeout: 1ms, retryOn: 'gateway-error,connect-failure,503,cancelled'}"),
    _route("timeout: 1.001s"),
    _vs("route: [{destination: {host: a, subset: v1-canary, port: {number: 1}}}]"),
    _vs("route: [{destination: {host: a, subset: V1}}]"),   # Istio's IsDNS1123Label takes upper case
    _match("headers: {':authority': {exact: a}, 'a,b': {exact: a}, '@request.auth.claims.group': {exact: a}}"),
    _route("rewrite: {uriRegexRewrite: {match: '^/v1/(.*)$', rewrite: '/v2/\\1'}}"),
    _vs("directResponse: {status: 200}"),
    _route("corsPolicy: {allowOrigins: [{regex: 'https://.*\\.example\\.com'}, {prefix: 'https://'}], "
           "allowMethods: [GET, OPTIONS, '*'], maxAge: 24h}"),
    _match("uri: {prefix: ''}"),
    _match("port: 65535"),
    _match("withoutHeaders: {x-debug: {regex: '*'}}"),
    _match("uri: {regex: '" + "a" * 1024 + "'}"),
    _match("uri: {regex: '" + ".{1000}" * 16 + "'}"),     # program size 32004: Envoy takes it
    _match(r"uri: {regex: '(?i)^/API/v[0-9]+(?P<rest>/.*)?\z'}"),
    _match(r"headers: {user-agent: {regex: '.*\pL+[[:digit:]]{2,3}?\x{41}\Q.*\E'}}"),
    _match("authority: {regex: 'a(?i)b(?s:.)'}"),
    _match("queryParams: {q: {regex: '^*x'}}"),
]


@pytest.mark.parametrize("yaml_text", WEBHOOK_ACCEPTS)
def test_what_istios_webhook_accepts(yaml_text: str) -> None:
    assert len(load(yaml_text)) == 1


@pytest.mark.parametrize("pattern", [
    "[0-9]+", "(?i)chrome", "a(?i)b", r"\d{3}-\d{4}", r"^/foo\z", r"\pL+", r"\p{Greek}", "[[:alpha:]]+", r"\Qa.b\E",
    "(?P<id>[0-9]+)", "(?<id>x)", r"\x{41}", r"\x41", "a*?", "a{2,5}?", "(?U)a+", "(?i:ab)c", "[]a]", r"\012",
    "a{,3}", "^*", "(?s-m:.)", "a|b|", r"[^\s]", r"\b+x", "(?:a)", "(?:a|b)+c", "(?-i:a)", "(?)",
    "(?P<n>a)(?P<n>b)", "(a{10}){100}", "((a{2}))*", "(?i)(?:x{500}){2}",
    "(" * 500 + "a" + ")" * 500,   # deeper than Python's parser goes; RE2 takes 1000 levels
])
def test_re2_accepts(pattern: str) -> None:
    from meshlab.manifests.re2 import re2_problem
    assert re2_problem(pattern) is None


@pytest.mark.parametrize("pattern", [
    "foo(?=bar)", "(?!x)y", "(?<=a)b", "(?<!a)b", r"(a)\1", "a*+", "a++", "a?+", "a{2}+", "(abc", "abc)", "[abc",
    "*a", "a**", r"\Z", "(?>a)", "(?#c)", "(?x)a", r"\u0041", "a{1001}", "[z-a]", "(a{1000}){2}", "((a{100})){20}", "(?P=n)",
    r"[\b]", "(?i-)", r"\8", "(?(1)a|b)", "\\", "(?:", "(?-:a)",
])
def test_re2_refuses(pattern: str) -> None:
    from meshlab.manifests.re2 import re2_problem
    assert re2_problem(pattern)


def test_a_loaded_object_loads_again_as_written() -> None:
    """Objects go back through load() as a copy (Lab.apply(objs)); the copy held the models'
    empty defaults, so a ServiceEntry of resolution NONE came back with `endpoints: []`, which
    Istio's CRD rule refuses ("NONE mode cannot set endpoints")."""
    (se,) = load("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
""")
    (again,) = load(se)
    assert again.spec == se.spec and again is not se
