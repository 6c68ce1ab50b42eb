"""Differential test: meshlab's loader against the Kubernetes API server on the Gateway API's CRDs.

The CRDs are the Gateway API's own (`config/crd/standard/` of the Go module sigs.k8s.io/gateway-api
at the version oracle/go.mod pins, read from the Go module cache after `go mod download`). The
judge is the API server's own admission code for custom resources (k8s.io/apiextensions-apiserver,
run in process by `meshlab-oracle crd-validate`): strict field validation, the CRD's defaults, its
OpenAPI schema, list-map keys and every x-kubernetes-validations CEL rule.

Valid Gateways, HTTPRoutes, GRPCRoutes and ReferenceGrants (written here, and the chapter's
manifests) are mutated field by field (tests/_mutants.py) and every mutant on a field meshlab
models must be refused by `meshlab.load()` exactly when the API server refuses it. Subtrees
meshlab keeps as plain dicts (a Gateway's infrastructure, tls, …) are not compared. No Istio
webhook validates the Gateway API's group, so there is no "stricter" list: the only allowed
differences are in `KNOWN`, each with its reason.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from _mutants import Mutant, meshlab_accepts, mutant_docs, reason_for
from _apiserver import apiserver  # noqa: F401  (the fixture)
from _oracle import crd_validate

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "notebooks" / "manifests" / "09-gateway-api"
CRD_FILES = {"Gateway": "gateways", "HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes",
             "ReferenceGrant": "referencegrants"}
#: the comparison must not silently shrink (e.g. a model change marking everything unmodelled)
MIN_COMPARED = {"Gateway": 120, "HTTPRoute": 600, "GRPCRoute": 200, "ReferenceGrant": 40}

# (kind, path regex over "spec.a[0].b", mutation kind, reason): verdicts that may differ.
KNOWN: list[tuple[str, str, str, str]] = []


# ------------------------------------------------------------------------------------- the judge

@lru_cache(maxsize=None)
def _module_dir() -> Path:
    """sigs.k8s.io/gateway-api at oracle/go.mod's version, in the Go module cache (downloaded if
    needed); skip without Go, except in CI."""
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI"):
            pytest.fail("Go is needed in CI to read the Gateway API's CRDs")
        pytest.skip("no Go: the Gateway API's CRDs come from its Go module")
    done = subprocess.run([go, "mod", "download", "-json", "sigs.k8s.io/gateway-api"], cwd=ROOT / "oracle",
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(json.loads(done.stdout)["Dir"])


def _crd_path(kind: str) -> Path:
    return _module_dir() / "config" / "crd" / "standard" / f"gateway.networking.k8s.io_{CRD_FILES[kind]}.yaml"


@lru_cache(maxsize=None)
def _schema(kind: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load(_crd_path(kind).read_text())
    return next(v["schema"]["openAPIV3Schema"]["properties"]["spec"]
                for v in crd["spec"]["versions"] if v["name"] == version)


def _api_server_errors(docs: list[dict[str, Any]]) -> list[list[str]]:
    """For each document, what the API server refuses creating it with ([] = accepted)."""
    return crd_validate([_crd_path(k) for k in CRD_FILES], docs)


# ------------------------------------------------------------------------------------ base docs

RICH = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: rich-gw, namespace: default}
spec:
  gatewayClassName: istio
  addresses: [{type: IPAddress, value: 10.0.0.1}]
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {shared: "true"}}}
      kinds: [{group: gateway.networking.k8s.io, kind: HTTPRoute}]
  - name: https
    port: 443
    protocol: HTTPS
    hostname: reviews.example.com
    tls:
      mode: Terminate
      certificateRefs: [{kind: Secret, name: reviews-cert}]
    allowedRoutes: {namespaces: {from: All}}
  - name: tcp
    port: 9000
    protocol: TCP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rich-route, namespace: default}
spec:
  parentRefs:
  - {name: rich-gw, sectionName: http}
  - {name: rich-gw, sectionName: https, port: 443}
  - {group: "", kind: Service, name: reviews, port: 9080}
  hostnames: [reviews.example.com, "*.example.org"]
  rules:
  - name: canary
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-user, value: jason}, {type: RegularExpression, name: x-b, value: "a.*"}]
      queryParams: [{name: v, value: "2"}]
      method: GET
    - path: {type: Exact, value: /exact}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-a, value: b}]
        add: [{name: x-c, value: d}]
        remove: [x-e]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [x-f]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 9080}, percent: 50}
    - type: CORS
      cors: {allowOrigins: ["https://example.com"], allowMethods: [GET, POST], allowHeaders: [x-user],
             exposeHeaders: [x-g], maxAge: 60, allowCredentials: true}
    backendRefs:
    - name: reviews-v2
      port: 9080
      weight: 30
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-version, value: v2}]}
    - {name: reviews-v1, port: 9080, weight: 70}
    timeouts: {request: 10s, backendRequest: 2s}
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.com, port: 8443, statusCode: 301,
                        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches:
    - path: {type: RegularExpression, value: "^/v[0-9]+/.*"}
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: ratings.example.com, path: {type: ReplaceFullPath, replaceFullPath: /ratings}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, namespace: other, port: 9080}, fraction: {numerator: 1, denominator: 10}}
    backendRefs: [{name: ratings, namespace: other, port: 9080}]
  - matches:
    - path: {type: PathPrefix, value: /ext}
    filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Filter, name: f}
    backendRefs: [{group: example.com, kind: Backend, name: b}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rich-grpc, namespace: default}
spec:
  parentRefs: [{name: rich-gw, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
  - name: echo
    matches:
    - method: {service: grpc.health.v1.Health, method: Check}
      headers: [{name: x-user, value: jason}]
    - method: {type: RegularExpression, service: "echo\\\\..*"}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: b}]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 9090}}
    backendRefs:
    - name: echo-v1
      port: 9090
      weight: 90
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier: {add: [{name: x-b, value: c}]}
    - {name: echo-v2, port: 9090, weight: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: rich-grant, namespace: other}
spec:
  from:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}
  - {group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: default}
  to:
  - {group: "", kind: Service, name: ratings}
  - {group: "", kind: Service}
"""


def _base_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = [("rich", d) for d in yaml.safe_load_all(RICH)]
    for path in sorted(CHAPTER.rglob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d.get("kind") in CRD_FILES and d["apiVersion"].startswith("gateway.networking.k8s.io/"):
                docs.append((path.name, d))
    return docs


def _known(kind: str, field: str, mutation: str) -> str | None:
    return reason_for(KNOWN, kind, field, mutation)


@lru_cache(maxsize=None)
def _mutant_docs(kind: str) -> list[Mutant]:
    return mutant_docs([(n, d) for n, d in _base_docs() if d["kind"] == kind], _schema)


# ------------------------------------------------------------------------------------- the tests

def test_base_documents_are_accepted_by_both() -> None:
    docs = _base_docs()
    assert {d["kind"] for _, d in docs} == set(CRD_FILES)
    for (name, doc), errors in zip(docs, _api_server_errors([d for _, d in docs])):
        assert errors == [], (name, doc["metadata"]["name"], errors)
        ok, why = meshlab_accepts(doc)
        assert ok, (name, why)


@pytest.mark.parametrize("kind", CRD_FILES)
def test_meshlab_agrees_with_the_api_server(kind: str) -> None:
    cases = _mutant_docs(kind)
    verdicts = _api_server_errors([m.doc for m in cases])
    disagreements, refused = [], 0
    for m, errors in zip(cases, verdicts):
        ours, why = meshlab_accepts(m.doc)
        refused += not ours
        if ours == (not errors) or _known(kind, m.field, m.mutation):
            continue
        disagreements.append(f"{m.source}: {m.field} <{m.mutation}>: API server {'refuses: ' + '; '.join(errors)[:200] if errors else 'accepts'}"
                             f", meshlab {'accepts' if ours else 'refuses: ' + why[:200]}")
    print(f"{kind}: {len(cases)} mutants compared, {refused} refused")
    assert len(cases) > MIN_COMPARED[kind], f"only {len(cases)} mutants compared for {kind}"
    assert not disagreements, f"{len(disagreements)} of {len(cases)} disagree:\n" + "\n".join(disagreements[:60])


# Mutants the field-by-field generator cannot reach: the CRDs' CEL rules across fields and items
# (and the schema's quirks), each an edit of a rich document; the API server's verdict decides.
def _set(path: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target = doc
        for step in parents:
            target = target[step]
        target[last] = copy.deepcopy(value)
    return edit


def _append(path: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for step in [int(p) if p.isdigit() else p for p in path.split(".")]:
            target = target[step]
        target.append(copy.deepcopy(value))
    return edit


ACROSS = [
    ("rich-gw", "duplicate IPAddress", _append("spec.addresses", {"type": "IPAddress", "value": "10.0.0.1"})),
    ("rich-gw", "IPv4 with leading zeros", _set("spec.addresses.0.value", "010.000.0.1")),
    ("rich-gw", "IPv6", _set("spec.addresses.0.value", "fd00::1")),
    ("rich-gw", "IPv6 with a zone", _set("spec.addresses.0.value", "fe80::1%eth0")),
    ("rich-gw", "address type containing IPAddress", _set("spec.addresses.0", {"type": "myIPAddressx", "value": "a b"})),
    ("rich-gw", "Hostname address", _set("spec.addresses.0", {"type": "Hostname", "value": "gw.example.com"})),
    ("rich-gw", "bad Hostname address", _set("spec.addresses.0", {"type": "Hostname", "value": "Gw_1"})),
    ("rich-gw", "duplicate Hostname", _set("spec.addresses", [{"type": "Hostname", "value": "a.b"},
                                                             {"type": "Hostname", "value": "a.b"}])),
    ("rich-gw", "duplicate listener name", _append("spec.listeners", {"name": "http", "port": 81, "protocol": "HTTP"})),
    ("rich-gw", "same port, protocol and hostname", _append(
        "spec.listeners", {"name": "http2", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"})),
    ("rich-gw", "TCP listener with a hostname", _set("spec.listeners.2.hostname", "a.example.com")),
    ("rich-gw", "HTTPS Terminate without certificates", _set("spec.listeners.1.tls", {"mode": "Terminate"})),
    ("rich-gw", "HTTPS Passthrough", _set("spec.listeners.1.tls", {"mode": "Passthrough"})),
    ("rich-gw", "HTTP with tls", _set("spec.listeners.0.tls", {"mode": "Passthrough"})),
    ("rich-gw", "TLS without tls", lambda d: (d["spec"]["listeners"][1].__setitem__("protocol", "TLS"), d["spec"]["listeners"][1].pop("tls"))),
    ("rich-gw", "TLS Passthrough", lambda d: d["spec"]["listeners"][1].update(protocol="TLS", tls={"mode": "Passthrough"})),
    ("rich-gw", "TCP with tls", _set("spec.listeners.2.tls", {"mode": "Passthrough"})),
    ("rich-route", "two parentRefs to one parent, one without sectionName",
     _set("spec.parentRefs.0", {"name": "rich-gw"})),
    ("rich-route", "two parentRefs with one sectionName", _set("spec.parentRefs.1.sectionName", "http")),
    ("rich-route", "the same header modifier twice", _append(
        "spec.rules.0.filters", {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}})),
    ("rich-route", "two mirrors", _append(
        "spec.rules.0.filters", {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "port": 1}}})),
    ("rich-route", "redirect and rewrite", _append(
        "spec.rules.1.filters", {"type": "URLRewrite", "urlRewrite": {"hostname": "a.b"}})),
    ("rich-route", "redirect with backendRefs", _set("spec.rules.1.backendRefs", [{"name": "r", "port": 1}])),
    ("rich-route", "ReplacePrefixMatch with an Exact match", _set("spec.rules.1.matches.0.path.type", "Exact")),
    ("rich-route", "ReplacePrefixMatch with two matches", _append("spec.rules.1.matches", {"path": {"value": "/b"}})),
    ("rich-route", "backendRequest longer than request", _set("spec.rules.0.timeouts.backendRequest", "11s")),
    ("rich-route", "request 0s, backendRequest longer", _set("spec.rules.0.timeouts", {"request": "0s",
                                                                                        "backendRequest": "5s"})),
    ("rich-route", "duplicate header match", _append("spec.rules.0.matches.0.headers", {"name": "x-user", "value": "b"})),
    ("rich-route", "header match names differ in case", _append("spec.rules.0.matches.0.headers",
                                                               {"name": "X-User", "value": "b"})),
    ("rich-route", "duplicate set header", _append("spec.rules.0.filters.0.requestHeaderModifier.set",
                                                   {"name": "x-a", "value": "c"})),
    ("rich-route", "mirror fraction above 1", _set("spec.rules.2.filters.1.requestMirror.fraction",
                                                   {"numerator": 11, "denominator": 10})),
    ("rich-route", "mirror percent and fraction", _set("spec.rules.2.filters.1.requestMirror.percent", 5)),
    ("rich-route", "CORS '*' with another origin", _set("spec.rules.0.filters.3.cors.allowOrigins",
                                                        ["*", "https://a.b"])),
    ("rich-route", "130 matches in all", lambda d: [r.__setitem__("matches", [{"path": {"value": f"/m{i}"}}
                                                                            for i in range(64)])
                                                    for r in d["spec"]["rules"][2:4]]
     + [d["spec"]["rules"][0].__setitem__("matches", [{"path": {"value": "/x"}}] * 2)]),
    ("rich-route", "path with '/./'", _set("spec.rules.0.matches.1.path.value", "/a/./b")),
    ("rich-route", "path ending in '/..'", _set("spec.rules.0.matches.1.path.value", "/a/..")),
    ("rich-route", "path with %2F", _set("spec.rules.0.matches.1.path.value", "/a%2Fb")),
    ("rich-route", "path with a space", _set("spec.rules.0.matches.1.path.value", "/a b")),
    ("rich-route", "regex path with '//'", _set("spec.rules.2.matches.0.path.value", "^//.*")),
    ("rich-grpc", "method match with neither", _set("spec.rules.0.matches.0.method", {"type": "Exact"})),
    ("rich-grpc", "Exact service with a slash", _set("spec.rules.0.matches.0.method.service", "a/b")),
    ("rich-grpc", "RegularExpression service with a slash", _set("spec.rules.0.matches.1.method.service", "a/b")),
    ("rich-grpc", "two request header modifiers", _append(
        "spec.rules.0.filters", {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}})),
    ("rich-grant", "a grant from a Gateway", _append("spec.from", {"group": "gateway.networking.k8s.io",
                                                                 "kind": "Gateway", "namespace": "x"})),
]


def _by_name(name: str) -> dict[str, Any]:
    return next(d for _, d in _base_docs() if d["metadata"]["name"] == name)


def test_meshlab_agrees_with_the_api_server_on_rules_across_fields() -> None:
    mutants_ = []
    for name, _, edit in ACROSS:
        doc = copy.deepcopy(_by_name(name))
        edit(doc)
        mutants_.append(doc)
    verdicts = _api_server_errors(mutants_)
    disagreements = []
    for (name, what, _), doc, errors in zip(ACROSS, mutants_, verdicts):
        ours, why = meshlab_accepts(doc)
        if ours != (not errors):
            disagreements.append(f"{name}: {what}: API server {'refuses: ' + '; '.join(errors)[:200] if errors else 'accepts'}"
                                 f", meshlab {'accepts' if ours else 'refuses: ' + why[:200]}")
    assert sum(bool(e) for e in verdicts) >= len(ACROSS) // 2, "most of these edits break a rule"
    assert not disagreements, "\n".join(disagreements)


def test_the_judge_runs_the_crds_cel_rules() -> None:
    """The comparison is not vacuous: the API server refuses what only a CEL rule forbids (a
    PathPrefix with '//', a Service backendRef without a port), accepts their repaired twins, and
    meshlab sees each the same way."""
    route = next(d for _, d in _base_docs() if d["metadata"]["name"] == "rich-route")
    bad_path, good_path, no_port = (copy.deepcopy(route) for _ in range(3))
    bad_path["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/api//v1"
    good_path["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/api/v1"
    del no_port["spec"]["rules"][0]["backendRefs"][1]["port"]
    errors = _api_server_errors([bad_path, good_path, no_port])
    assert any("must not contain '//'" in e for e in errors[0]), errors[0]
    assert errors[1] == []
    assert any("Must have port for Service reference" in e for e in errors[2]), errors[2]
    assert [meshlab_accepts(d)[0] for d in (bad_path, good_path, no_port)] == [False, True, False]


@pytest.mark.slow
def test_the_in_process_judge_gives_the_real_api_servers_verdicts(apiserver: Any) -> None:
    """crd-validate (the API server's validation code, in process) and a real kube-apiserver (a
    server-side apply dry run, tests/_differential.py) refuse exactly the same of these mutants."""
    from _differential import DryRun, api_verdict_of_dict
    dry = DryRun(apiserver)
    docs = [m.doc for kind in CRD_FILES for m in _mutant_docs(kind)]
    for name, _, edit in ACROSS:
        doc = copy.deepcopy(_by_name(name))
        edit(doc)
        docs.append(doc)
    ours = _api_server_errors(docs)
    differ = []
    for doc, errors in zip(docs, ours):
        real, why = api_verdict_of_dict(dry, doc)
        if real != (not errors):
            differ.append(f"{doc['kind']} {json.dumps(doc['spec'])[:160]}: crd-validate {errors[:1] or 'accepts'}, "
                          f"kube-apiserver {why[:160] or 'accepts'}")
    assert len(docs) > 1400
    assert not differ, f"{len(differ)} of {len(docs)} differ:\n" + "\n".join(differ[:20])
