"""Differential test: meshlab's validator against the OpenAPI schemas of Istio's real CRDs.

Sample manifests (Istio's own plus richer ones written here) are mutated field by field — wrong
types, out-of-range numbers, unknown and missing fields, extra fields that clash with a oneOf — and
every mutant gets two verdicts: `meshlab.load()` and the CRD's `openAPIV3Schema` (run by jsonschema,
with the API server's strict field validation: unknown fields are errors). They must agree for every
field meshlab models. Subtrees meshlab keeps as plain dicts (tls, corsPolicy, …) are not compared.

Where the two legitimately differ, the difference is listed below with its reason: Istio's validating
webhook (which a real cluster runs after the schema) refuses more than the schema does, and meshlab
follows the webhook there. CEL rules (`x-kubernetes-validations`) are not run by jsonschema; the
ones on modelled fields are written out below from the CRD's rule text, the rest are tested in
test_manifests.py.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from _mutants import fmt, meshlab_accepts, modelled, mutants
from meshlab.objects import MODELLED

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extras")

ISTIO_KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
#: the comparison must not silently shrink (e.g. a model change marking everything unmodelled)
MIN_COMPARED = {"VirtualService": 400, "DestinationRule": 250, "Gateway": 70, "ServiceEntry": 80}

# (kind, path regex over "a.b[0].c", mutation kind, reason): meshlab refuses, the schema accepts.
WEBHOOK_STRICTER = [
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
    # int32 in Istio's protos: the webhook's JSON decoding refuses more ("cannot unmarshal number")
    ("VirtualService", r"spec\.http\[\d+\]\.retries\.attempts$", "huge", "webhook: attempts is an int32"),
    ("DestinationRule", r"connectionPool\.(tcp|http)\.\w+$", "huge", "webhook: connection pool limits are int32"),
]

# CEL rules of the CRDs on fields meshlab models, written from the rule text.
_GO_DURATION = re.compile(r"^(\d+(\.\d*)?|\.\d+)(ns|us|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|ms|s|m|h))*$")


def _cel_violations(kind: str, spec: Any, schema: dict[str, Any]) -> list[str]:
    """Evaluate the CEL rules jsonschema cannot: durations >= 1ms, and ServiceEntry's spec rules."""
    out: list[str] = []

    def walk(value: Any, sch: dict[str, Any], where: str) -> None:
        for rule in sch.get("x-kubernetes-validations", []):
            if rule["rule"] == "duration(self) >= duration('1ms')":
                if not (isinstance(value, str) and _duration_ok(value)):
                    out.append(where)
            elif rule["rule"] == "0 < self && self <= 65535":
                if isinstance(value, int) and not isinstance(value, bool) and not 0 < value <= 65535:
                    out.append(where)
            elif rule["rule"] == 'self != "*"' and value == "*":
                out.append(where)
            elif rule["rule"].startswith("self.all(l1, self.exists_one(l2, l1.number == l2.number))"):
                nums = [p.get("number") for p in value if isinstance(p, dict)] if isinstance(value, list) else []
                if len(nums) != len(set(map(repr, nums))):
                    out.append(where)
        if isinstance(value, dict):
            for k, v in value.items():
                if k in sch.get("properties", {}):
                    walk(v, sch["properties"][k], f"{where}.{k}")
                elif isinstance(sch.get("additionalProperties"), dict):
                    walk(v, sch["additionalProperties"], f"{where}.{k}")
        elif isinstance(value, list) and isinstance(sch.get("items"), dict):
            for i, v in enumerate(value):
                walk(v, sch["items"], f"{where}[{i}]")

    walk(spec, schema, "spec")
    if kind == "ServiceEntry" and isinstance(spec, dict):
        resolution = spec.get("resolution", "NONE")
        addresses = spec.get("addresses") if isinstance(spec.get("addresses"), list) else []
        if any(isinstance(a, str) and "/" in a for a in addresses) and resolution not in ("STATIC", "NONE"):
            out.append("spec: CIDR addresses")
        if resolution == "NONE" and "endpoints" in spec:
            out.append("spec: NONE with endpoints")
        if "workloadSelector" in spec and "endpoints" in spec:
            out.append("spec: workloadSelector and endpoints")
    return out


def _duration_ok(text: str) -> bool:
    """Go's time.ParseDuration grammar (ASCII units), then CEL's `>= duration('1ms')`."""
    body = text[1:] if text.startswith("+") else text
    if not _GO_DURATION.match(body):
        return False   # also "0", which Go parses but is below 1ms anyway, and negatives
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = sum(float(n) * unit[u] for n, u in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|ms|s|m|h)", body))
    return total >= 1e-3


# ------------------------------------------------------------------------------------ the schemas

@lru_cache(maxsize=None)
def _crds(reference: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, version) → the spec's schema, closed the way strict field validation closes it."""
    out = {}
    with open(Path(reference) / "istio-crd-all.gen.yaml", encoding="utf-8") as f:
        for doc in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not doc or doc["spec"]["names"]["kind"] not in ISTIO_KINDS:
                continue
            for v in doc["spec"]["versions"]:
                spec = copy.deepcopy(v["schema"]["openAPIV3Schema"]["properties"]["spec"])
                _close(spec)
                out[(doc["spec"]["names"]["kind"], v["name"])] = spec
    return out


def _close(schema: Any) -> None:
    if isinstance(schema, list):
        for s in schema:
            _close(s)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for key in ("properties",):
        for sub in schema.get(key, {}).values():
            _close(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _close(schema[key])
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            _close(schema[key])


def _crd_accepts(kind: str, version: str, spec: Any, reference: Path) -> bool:
    schema = _crds(str(reference))[(kind, version)]
    if not jsonschema.Draft4Validator(schema).is_valid(spec):
        return False
    return not _cel_violations(kind, spec, schema)


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
    for k, pattern, m, reason in WEBHOOK_STRICTER:
        if k == kind and re.search(pattern, field) and m in ("*", mutation):
            return reason
    return None


# ------------------------------------------------------------------------------------- the tests

def test_base_documents_are_accepted_by_both(reference_dir: Path) -> None:
    for name, doc in _base_docs(reference_dir):
        version = doc["apiVersion"].rsplit("/", 1)[1]
        assert _crd_accepts(doc["kind"], version, doc["spec"], reference_dir), (name, doc["metadata"]["name"])
        ok, why = meshlab_accepts(doc)
        assert ok, (name, why)


@pytest.mark.parametrize("kind", ISTIO_KINDS)
def test_meshlab_agrees_with_the_crd_schema(kind: str, reference_dir: Path) -> None:
    compared, disagreements, stricter = 0, [], 0
    seen: set[tuple[str, str, str]] = set()
    for name, doc in _base_docs(reference_dir):
        if doc["kind"] != kind:
            continue
        version = doc["apiVersion"].rsplit("/", 1)[1]
        cls = MODELLED[(doc["apiVersion"], kind)]
        schema = _crds(str(reference_dir))[(kind, version)]
        for path, mutation, mutate in mutants(doc["spec"], schema):
            field = fmt(("spec",) + path)
            generic = re.sub(r"\[\d+\]", "[]", field)
            if (generic, mutation, version) in seen:
                continue
            seen.add((generic, mutation, version))
            if not modelled(cls, ("spec",) + path):
                continue
            mutant = copy.deepcopy(doc)
            mutate(mutant["spec"])
            crd = _crd_accepts(kind, version, mutant["spec"], reference_dir)
            ours, why = meshlab_accepts(mutant)
            compared += 1
            if crd == ours:
                continue
            if not ours and _stricter(kind, field, mutation):
                stricter += 1
                continue
            disagreements.append(f"{name}: {field} <{mutation}>: CRD {'accepts' if crd else 'rejects'}, "
                                 f"meshlab {'accepts' if ours else 'rejects: ' + why[:160]}")
    print(f"{kind}: {compared} mutants compared, {stricter} refused by meshlab as by the webhook")
    assert compared > MIN_COMPARED[kind], f"only {compared} mutants compared for {kind}"
    assert not disagreements, f"{len(disagreements)} of {compared} disagree:\n" + "\n".join(disagreements[:40])


def test_the_mutations_can_tell_the_difference(reference_dir: Path) -> None:
    """The comparison is not vacuous: a mutant the CRD refuses and one it accepts, both seen as such."""
    doc = next(d for _, d in _base_docs(reference_dir) if d["metadata"]["name"] == "rich-vs")
    bad = copy.deepcopy(doc)
    bad["spec"]["http"][0]["route"][0]["weight"] = "30"
    good = copy.deepcopy(doc)
    good["spec"]["http"][0]["route"][0]["weight"] = 31
    assert not _crd_accepts("VirtualService", "v1", bad["spec"], reference_dir)
    assert _crd_accepts("VirtualService", "v1", good["spec"], reference_dir)
    assert meshlab_accepts(bad)[0] is False and meshlab_accepts(good)[0] is True
