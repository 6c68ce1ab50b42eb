"""Differential test: meshlab's validator against the Kubernetes API server on Istio's real CRDs.

Sample manifests (Istio's own plus richer ones written here) are mutated field by field — wrong
types, out-of-range numbers, unknown and missing fields, extra fields that clash with a oneOf — and
every mutant gets two verdicts: `meshlab.load()` and the API server's own admission code for
custom resources run on the CRD (`meshlab-oracle crd-validate`: strict field validation, the
OpenAPI schema with its formats, list keys and the x-kubernetes-validations CEL rules). They must
agree for every field meshlab models. Subtrees meshlab keeps as plain dicts (tls, corsPolicy, …)
are not compared.

Where the two legitimately differ, the difference is listed below with its reason: Istio's validating
webhook (which a real cluster runs after the API server's checks) refuses more, and meshlab follows
the webhook there.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from _mutants import meshlab_accepts, mutant_docs, reason_for
from _oracle import crd_validate

ISTIO_KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
#: the comparison must not silently shrink (e.g. a model change marking everything unmodelled)
MIN_COMPARED = {"VirtualService": 400, "DestinationRule": 250, "Gateway": 70, "ServiceEntry": 80}

# (kind, path regex over "a.b[0].c", mutation kind, reason): meshlab refuses, the API server accepts.
WEBHOOK_STRICTER = [
    ("ServiceEntry", r"spec\.hosts\[\d+\]$", "*",
     "webhook: with resolution DNS and no endpoints a host is a full DNS name (no wildcard)"),
    ("VirtualService", r"spec\.http\[\d+\]\.route\[\d+\]\.weight$", "negative",
     "webhook: weight must be >= 0"),
    ("VirtualService", r"spec\.http\[\d+\]\.route(\[\d+\]\.weight)?$", "*",
     "webhook: with several destinations the total weight must be > 0"),
    ("VirtualService", r"spec\.http\[\d+\]\.retries\.attempts$", "negative", "webhook: attempts must be >= 0"),
    ("VirtualService", r"\.percentage\.value$|mirrorPercentage\.value$", "*", "webhook: a percentage is 0..100"),
    ("VirtualService", r"destination\.host$|mirror\.host$", "empty", "webhook: a destination needs a host"),
    ("DestinationRule", r"spec\.host$", "empty", "webhook: host is required"),
    ("DestinationRule", r"spec\.subsets\[\d+\]\.name$", "empty", "webhook: a subset needs a name"),
    ("Gateway", r"spec\.servers\[\d+\]\.hosts$", "empty-list", "webhook: a server needs at least one host"),
    # pkg/config/validation/virtualservice.go + validation.go (validateHTTPRoute and what it calls)
    ("VirtualService", r"\.regex$", "empty", "webhook: a regex match must not be empty (and must be RE2)"),
    ("VirtualService", r"\.prefix$", "empty", "webhook: a prefix match must not be empty (except uri)"),
    ("VirtualService", r"(destination|mirror)\.subset$", "enum", "webhook: a subset name is an RFC 1123 label"),
    ("VirtualService", r"(destination|mirror)\.port(\.number)?$", "*", "webhook: a destination port is 1..65535"),
    ("VirtualService", r"spec\.http\[\d+\]\.retries\.attempts$", "zero",
     "webhook: attempts 0 (retries off) with perTryTimeout/retryOn set is refused"),
    ("VirtualService", r"spec\.http\[\d+\]\.retries\.attempts$", "delete",
     "webhook: attempts 0 (retries off) with perTryTimeout/retryOn set is refused"),
    ("VirtualService", r"spec\.http\[\d+\]\.retries\.retryOn$", "*",
     "webhook: retryOn lists known policies or HTTP status codes"),
    ("VirtualService", r"spec\.http\[\d+\]\.fault\.abort\.httpStatus$", "*",
     "webhook: httpStatus is 200..600 (meshlab 200..599: Envoy refuses 600)"),
    ("VirtualService", r"spec\.http\[\d+\]\.fault\.abort\.grpcStatus$", "*", "webhook: grpcStatus is a gRPC code name"),
    ("VirtualService", r"spec\.http\[\d+\]\.fault\.abort\.http2Error$", "*", "webhook: http2Error is not supported"),
    ("VirtualService", r"spec\.http\[\d+\]\.fault\.delay\.exponentialDelay$", "*",
     "webhook: exponentialDelay is not supported"),
    ("VirtualService", r"spec\.http\[\d+\]\.fault$", "add", "webhook: a fault needs an abort and/or a delay"),
    ("VirtualService", r"spec\.http\[\d+\]\.redirect$", "add",
     "webhook: a redirect must set uri, prefixRewrite, authority, scheme or port"),
    ("VirtualService", r"spec\.http\[\d+\]\.redirect\.prefixRewrite$", "add", "webhook: only one of uri or prefixRewrite"),
    ("VirtualService", r"spec\.http\[\d+\]\.redirect\.scheme$", "*", "webhook: a redirect scheme is http or https"),
    ("VirtualService", r"spec\.http\[\d+\]\.redirect\.redirectCode$", "*", "webhook: redirectCode is 0 or 300..399"),
    ("VirtualService", r"spec\.http\[\d+\]\.rewrite(\.uri|\.uriRegexRewrite)?$", "*",
     "webhook: a rewrite sets uri, uriRegexRewrite (not both) or authority"),
    ("VirtualService", r"spec\.http\[\d+\]\.mirrors$", "add", "webhook: only one of mirror or mirrors"),
    ("VirtualService", r"spec\.gateways\[\d+\]$|\.match\[\d+\]\.gateways\[\d+\]$", "*",
     "webhook: a gateway is `<namespace>/<name>` (RFC 1123 labels) or a DNS name (validateGatewayNames)"),
    # kept as dicts, so not compared here (the cases are in test_manifests.py): directResponse.status 200..599,
    # corsPolicy (allowOrigins non-empty and RE2, allowMethods, maxAge in whole seconds)
    ("VirtualService", r"spec\.http\[\d+\]\.(directResponse|corsPolicy)\b", "*",
     "webhook: directResponse status and corsPolicy rules (subtrees kept as dicts)"),
    # validation.go: validateTrafficPolicy, validateConnectionPool, validateOutlierDetection
    ("DestinationRule", r"connectionPool\.(tcp|http)\.\w+$", "negative", "webhook: connection pool limits are >= 0"),
    ("DestinationRule", r"connectionPool\.tcp\.idleTimeout$", "*",
     "webhook: tcp idleTimeout is a duration, 0 or >= 1ms in whole ms (the CRD has no rule on it)"),
    ("DestinationRule", r"connectionPool\.http\.useClientProtocol$", "add", "webhook: not with h2UpgradePolicy UPGRADE"),
    ("DestinationRule", r"connectionPool$", "add", "webhook: a connection pool sets tcp or http"),
    ("DestinationRule", r"outlierDetection\.(maxEjectionPercent|minHealthPercent)$", "*", "webhook: a percentage is 0..100"),
    ("DestinationRule", r"outlierDetection\.consecutiveLocalOriginFailures$", "add",
     "webhook: needs splitExternalLocalOriginErrors"),
    ("DestinationRule", r"portLevelSettings\[\d+\]\.port$", "delete", "webhook: a port traffic policy needs a port"),
    ("DestinationRule", r"(trafficPolicy|portLevelSettings\[\d+\])\.loadBalancer$", "delete",
     "webhook: a traffic policy sets at least one field"),
    ("DestinationRule", r"trafficPolicy$", "add", "webhook: a traffic policy sets at least one field"),
    ("DestinationRule", r"spec\.subsets\[\d+\]\.name$", "enum", "webhook: a subset name is an RFC 1123 label"),
    # issue 17: hosts are DNS names (ValidateWildcardDomain; NOT_A_VALUE has '_' and capitals)
    ("VirtualService", r"spec\.hosts\[\d+\]$", "*", "webhook: a host is a DNS name (ValidateWildcardDomain)"),
    ("VirtualService", r"(destination|mirror)\.host$", "enum", "webhook: a destination host is a DNS name"),
    ("DestinationRule", r"spec\.host$", "enum", "webhook: host is a DNS name (ValidateWildcardDomain)"),
    ("VirtualService", r"headers\.(request|response)\.remove\[\d+\]$", "empty",
     "webhook: a header name cannot be empty (ValidateHTTPHeaderOperationName)"),
]

# ------------------------------------------------------------------------------------- the judge

CRD_FILE = "istio-crd-all.gen.yaml"


@lru_cache(maxsize=None)
def _schemas(reference: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, version) → the spec's schema (what the mutations walk)."""
    out = {}
    with open(Path(reference) / CRD_FILE, encoding="utf-8") as f:
        for doc in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if doc and doc["spec"]["names"]["kind"] in ISTIO_KINDS:
                for v in doc["spec"]["versions"]:
                    out[(doc["spec"]["names"]["kind"], v["name"])] = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return out


def _api_server_accepts(docs: list[dict[str, Any]], reference: Path) -> list[bool]:
    return [not errors for errors in crd_validate([reference / CRD_FILE], docs)]


# ------------------------------------------------------------------------------------ base docs

RICH = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rich-vs}
spec:
  hosts: [reviews]
  gateways: [mesh]
  http:
  - name: canary
    match:
    - uri: {prefix: /api}
      headers: {end-user: {exact: jason}}
      queryParams: {v: {regex: "[0-9]+"}}
      authority: {regex: "(?i)reviews(:[0-9]+)?"}
      port: 9080
      ignoreUriCase: true
      sourceLabels: {app: productpage}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 30
      headers: {request: {set: {x-a: b}}, response: {remove: [x-b]}}
    - destination: {host: reviews, subset: v1}
      weight: 70
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 5}}
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
    rewrite: {uri: /v2}
  - match:
    - uri: {regex: "^/v[0-9]+/.*"}
      headers: {x-b: {prefix: a}}
      port: 9080
    route:
    - destination: {host: ratings}
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
    mirrors:
    - destination: {host: shadow}
      percentage: {value: 10}
  - redirect: {uri: /new, redirectCode: 301, port: 8080}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rich-dr}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 1s, maxConnectionDuration: 1h, idleTimeout: 0s}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 100, maxRequestsPerConnection: 1, maxRetries: 3,
             maxConcurrentStreams: 10, idleTimeout: 30s, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 100,
                       minHealthPercent: 0}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: rich-gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    name: plain
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rich-se}
spec:
  hosts: [api.example.com]
  ports:
  - {number: 443, name: https, protocol: TLS}
  location: MESH_EXTERNAL
  resolution: DNS
  exportTo: ["."]
"""


def _base_docs(reference: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = [("rich", d) for d in yaml.safe_load_all(RICH)]
    for path in sorted((reference / "istio-samples").glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d.get("kind") in ISTIO_KINDS:
                docs.append((path.name, d))
    return docs


def _stricter(kind: str, field: str, mutation: str) -> str | None:
    return reason_for(WEBHOOK_STRICTER, kind, field, mutation)


# ------------------------------------------------------------------------------------- the tests

def test_base_documents_are_accepted_by_both(reference_dir: Path) -> None:
    docs = _base_docs(reference_dir)
    for (name, doc), accepted in zip(docs, _api_server_accepts([d for _, d in docs], reference_dir)):
        assert accepted, (name, doc["metadata"]["name"])
        ok, why = meshlab_accepts(doc)
        assert ok, (name, why)


@pytest.mark.parametrize("kind", ISTIO_KINDS)
def test_meshlab_agrees_with_the_api_server(kind: str, reference_dir: Path) -> None:
    cases = mutant_docs([(n, d) for n, d in _base_docs(reference_dir) if d["kind"] == kind],
                        lambda k, v: _schemas(str(reference_dir))[(k, v)])
    disagreements, stricter = [], 0
    for m, crd in zip(cases, _api_server_accepts([m.doc for m in cases], reference_dir)):
        ours, why = meshlab_accepts(m.doc)
        if crd == ours:
            continue
        if not ours and _stricter(kind, m.field, m.mutation):
            stricter += 1
            continue
        disagreements.append(f"{m.source}: {m.field} <{m.mutation}>: API server {'accepts' if crd else 'rejects'}, "
                             f"meshlab {'accepts' if ours else 'rejects: ' + why[:160]}")
    print(f"{kind}: {len(cases)} mutants compared, {stricter} refused by meshlab as by the webhook")
    assert len(cases) > MIN_COMPARED[kind], f"only {len(cases)} mutants compared for {kind}"
    assert not disagreements, f"{len(disagreements)} of {len(cases)} disagree:\n" + "\n".join(disagreements[:40])


def test_the_mutations_can_tell_the_difference(reference_dir: Path) -> None:
    """The comparison is not vacuous: a mutant the API server refuses (a wrong type; a duration below
    the CRD's CEL minimum) and one it accepts, each seen as such by both."""
    doc = next(d for _, d in _base_docs(reference_dir) if d["metadata"]["name"] == "rich-vs")
    bad = copy.deepcopy(doc)
    bad["spec"]["http"][0]["route"][0]["weight"] = "30"
    good = copy.deepcopy(doc)
    good["spec"]["http"][0]["route"][0]["weight"] = 31
    short = copy.deepcopy(doc)
    short["spec"]["http"][0]["timeout"] = "500us"
    assert _api_server_accepts([bad, good, short], reference_dir) == [False, True, False]
    assert [meshlab_accepts(d)[0] for d in (bad, good, short)] == [False, True, False]
