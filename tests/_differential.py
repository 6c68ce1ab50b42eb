"""`meshlab validate` against the real API server's verdict, input by input (differential validation).

The API server's verdict: a server-side apply dry run (`dryRun=All`, `fieldValidation=Strict`, the
field manager `meshlab`), as `kubectl apply --server-side --dry-run=server` sends it — built-in
validation, Istio's CRD schemas and their CEL rules, admission. A file is sent document by
document, split where kubectl splits it (a line `---`), each document as the YAML text the learner
wrote (`application/apply-patch+yaml`), so the API server's YAML decoder (sigs.k8s.io/yaml, the one
kubectl parses with) judges the syntax too; the file is refused when any document is. A dict is sent
as JSON. The resource comes from the server's discovery, as kubectl finds it (a kind or version it
does not serve is refused there). An input from which no request can be made at all — not text,
no object, no kind — is counted apart ("no request") and not in the agreement.

meshlab's verdict: `meshlab.manifests.load_report` (what `meshlab validate` prints) has no problems.

The corpus: the hostile-input table (tests/test_bad_input.py), the field mutants of Istio's kinds
(tests/test_validation_vs_crd.py, over Istio's samples and meshlab's richer documents), and every
Kubernetes manifest in the repository (notebooks/manifests/**).

Where the two differ and meshlab follows Istio's validating webhook (which a real cluster runs after
the API server, refusing what meshlab refuses), the case is listed in `WEBHOOK_SOURCES` with the
webhook rule's source; any other difference is a failure of the agreement test.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from _apiserver import REPO, APIServer

MANIFESTS = REPO / "notebooks" / "manifests"
#: What a learner's manifest files are: every Kubernetes manifest the repository has. (kind-config.yaml
#: is kind's configuration and environment.yml conda's: not Kubernetes objects.)
REPOSITORY_MANIFESTS = sorted(MANIFESTS.rglob("*.yaml"))

_V = "pkg/config/validation/validation.go"
_VS = "pkg/config/validation/virtualservice.go"
#: Istio's validating webhook rules meshlab follows where the CRD schema (so the API server) accepts:
#: the reason as test_validation_vs_crd.WEBHOOK_STRICTER words it → the rule in istio/istio (read
#: at ISTIO_SOURCE, meshlab/backends/kind/config.py: the newest source the module proxy serves).
WEBHOOK_SOURCES: dict[str, str] = {
    "webhook: weight must be >= 0": f"{_V} validateWeight",
    "webhook: with several destinations the total weight must be > 0": f"{_V} validateHTTPRouteDestinations",
    "webhook: attempts must be >= 0": f"{_V} validateHTTPRetry",
    "webhook: a percentage is 0..100": f"{_V} validatePercentage, ValidatePercent; {_VS} validateHTTPRoute (mirrorPercentage)",
    "webhook: a destination needs a host": f"{_V} validateDestination (agent.ValidateWildcardDomain)",
    "webhook: host is required": f"{_V} ValidateDestinationRule (agent.ValidateWildcardDomain)",
    "webhook: a subset needs a name": f"{_V} validateSubsetName",
    "webhook: a server needs at least one host": f"{_V} validateServer",
    "webhook: a regex match must not be empty (and must be RE2)": f"{_V} validateStringMatchRegexp, validateStringRegexp",
    "webhook: a prefix match must not be empty (except uri)": f"{_V} validateStringMatch",
    "webhook: a subset name is an RFC 1123 label": f"{_V} validateSubsetName",
    "webhook: a destination port is 1..65535": f"{_V} validatePortSelector (agent.ValidatePort)",
    "webhook: attempts 0 (retries off) with perTryTimeout/retryOn set is refused": f"{_V} validateHTTPRetry",
    "webhook: retryOn lists known policies or HTTP status codes": f"{_V} validateHTTPRetry (supportedRetryOnPolicies)",
    "webhook: httpStatus is 200..600 (meshlab 200..599: Envoy refuses 600)": f"{_V} validateHTTPStatus",
    "webhook: grpcStatus is a gRPC code name": f"{_V} validateHTTPFaultInjectionAbort",
    "webhook: http2Error is not supported": f"{_V} validateHTTPFaultInjectionAbort",
    "webhook: exponentialDelay is not supported": f"{_V} validateHTTPFaultInjectionDelay",
    "webhook: a fault needs an abort and/or a delay": f"{_V} validateHTTPFaultInjection",
    "webhook: a redirect must set uri, prefixRewrite, authority, scheme or port": f"{_V} validateHTTPRedirect",
    "webhook: only one of uri or prefixRewrite": f"{_V} validateHTTPRedirect",
    "webhook: a redirect scheme is http or https": f"{_V} validateHTTPRedirect",
    "webhook: redirectCode is 0 or 300..399": f"{_V} validateHTTPRedirect",
    "webhook: a rewrite sets uri, uriRegexRewrite (not both) or authority": f"{_V} validateHTTPRewrite",
    "webhook: only one of mirror or mirrors": f"{_VS} validateHTTPRouteConflict",
    "webhook: a gateway is `<namespace>/<name>` (RFC 1123 labels) or a DNS name (validateGatewayNames)":
        f"{_V} validateGatewayNames (agent.ValidateFQDN)",
    "webhook: directResponse status and corsPolicy rules (subtrees kept as dicts)":
        f"{_V} validateHTTPDirectResponse, validateCORSPolicy",
    "webhook: connection pool limits are >= 0": f"{_V} validateConnectionPool",
    "webhook: tcp idleTimeout is a duration, 0 or >= 1ms in whole ms (the CRD has no rule on it)":
        f"{_V} validateConnectionPool (agent.ValidateDuration)",
    "webhook: not with h2UpgradePolicy UPGRADE": f"{_V} validateConnectionPool",
    "webhook: a connection pool sets tcp or http": f"{_V} validateConnectionPool",
    "webhook: needs splitExternalLocalOriginErrors": f"{_V} validateOutlierDetection",
    "webhook: a port traffic policy needs a port": f"{_V} validatePortTrafficPolicies",
    "webhook: a traffic policy sets at least one field": f"{_V} validateTrafficPolicy, validatePortTrafficPolicies",
    # worded on branch sec (issue 17), listed here so the two land together
    "webhook: a host is a DNS name (ValidateWildcardDomain)": f"{_V} ValidateVirtualService (agent.ValidateWildcardDomain)",
    "webhook: a destination host is a DNS name": f"{_V} validateDestination (agent.ValidateWildcardDomain)",
    "webhook: host is a DNS name (ValidateWildcardDomain)": f"{_V} ValidateDestinationRule (agent.ValidateWildcardDomain)",
    "webhook: a header name cannot be empty (ValidateHTTPHeaderOperationName)": f"{_V} ValidateHTTPHeaderOperationName",
    "webhook: a header-match name is a token, a pseudo-header or a JWT claim":
        f"{_V} ValidateHTTPHeaderNameOrJwtClaimRoute",
    "webhook: with resolution DNS and no endpoints a host is a full DNS name (no wildcard)":
        f"{_V} ValidateServiceEntry (agent.ValidateFQDN)",
    "webhook: a header value has no control characters and well-formed %…% commands":
        f"{_VS} validateHTTPRoute (ValidateHTTPHeaderValue, header_value_validator.go validateHeaderValue)",
}
#: Hostile-input cases where meshlab follows the webhook: case id → the reason above.
TABLE_WEBHOOK: dict[str, str] = {
    "table:weight-negative": "webhook: weight must be >= 0",
    "table:perl-regex": "webhook: a regex match must not be empty (and must be RE2)",
    "table:pseudo-header-match": "webhook: a header-match name is a token, a pseudo-header or a JWT claim",
    "table:header-name-with-space": "webhook: a header-match name is a token, a pseudo-header or a JWT claim",
    "table:negative-pool-limit": "webhook: connection pool limits are >= 0",
    "table:subset-trailing-newline": "webhook: a subset name is an RFC 1123 label",
    "table:header-value-crlf": "webhook: a header value has no control characters and well-formed %…% commands",
    "table:header-lone-percent": "webhook: a header value has no control characters and well-formed %…% commands",
    "table:header-environment-unterminated":
        "webhook: a header value has no control characters and well-formed %…% commands",
    "table:vs-host-empty": "webhook: a host is a DNS name (ValidateWildcardDomain)",
    "table:vs-host-with-port": "webhook: a host is a DNS name (ValidateWildcardDomain)",
    "table:vs-host-non-ascii": "webhook: a host is a DNS name (ValidateWildcardDomain)",
    "table:vs-host-wildcard-not-leftmost": "webhook: a host is a DNS name (ValidateWildcardDomain)",
}
#: Where meshlab refuses what neither the API server nor the webhook refuses: case id → why.
MESHLAB_RULES: dict[str, str] = {
    # (the same object twice in one apply is no longer one: a warning, the later wins, as kubectl applies it)
    # Envoy's own proto constraints: istiod would push the config and Envoy would reject (NACK) the
    # whole listener or route configuration; meshlab says so at load, naming the field.
    "table:redirect-uri-crlf": ("Envoy refuses it: RedirectAction.path_redirect is an HTTP header value "
                                "(envoy/config/route/v3/route_components.proto, well_known_regex HTTP_HEADER_VALUE); "
                                "Istio's validateHTTPRedirect does not check it, so the route config would be NACKed"),
    "table:weights-sum-beyond-envoy": ("Envoy refuses it: a route's weighted clusters total must fit a uint32 "
                                       "(envoy/config/route/v3/route_components.proto WeightedCluster); each weight "
                                       "is a valid int32, so the API server and Istio's webhook accept it"),
    "table:ring-size-beyond-envoy": ("Envoy refuses it: RingHashLbConfig.minimum_ring_size is at most 8M "
                                     "(envoy/config/cluster/v3/cluster.proto, lte: 8388608); the CRD and "
                                     "Istio's webhook set no bound"),
    "table:replicas-beyond-int32": ("Deployment.spec.replicas is an int32 (k8s.io/api apps/v1 types.go); the "
                                    "server-side-apply dry run accepted 4294967296 (measured), which no Deployment "
                                    "can hold; meshlab refuses it, naming the bound"),
    # rules of the local lab itself: ports its own machinery takes
    "table:service-port-istio-reserved": ("meshlab's own rule: 15001 is the sidecar's outbound capture port (Istio "
                                          "reserves 15000-15090 for its proxy); the API server accepts such a "
                                          "Service, the local lab cannot give it a listener of its own"),
    "table:container-port-lab-control": ("meshlab's own rule: 15999 is the demo app's control port in a local "
                                         "lab (pod knobs); a cluster has no such port"),
}


_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.M)


@dataclass
class Case:
    """One input and both verdicts."""

    id: str                      # "table:weight-as-string", "mutant:VirtualService spec.http[].weight <negative>", "manifest:…"
    meshlab_ok: bool
    meshlab_why: str
    api_ok: bool | None = None   # None: no request can be made from this input
    api_why: str = ""
    webhook: str | None = None   # the mutant table's reason, where it lists the case as the webhook's

    @property
    def agree(self) -> bool:
        return self.api_ok is not None and self.meshlab_ok == self.api_ok


# ------------------------------------------------------------------------------- the API server

class DryRun:
    """Server-side apply dry runs against one API server, as its admin."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.client = server.dynamic()
        self.ctx = ssl.create_default_context(cafile=str(server.ca))
        self.ctx.load_cert_chain(server.dir / "users" / "admin.crt", server.dir / "users" / "admin.key")
        self._namespaces: set[str] = set()

    def _resource(self, api_version: str, kind: str) -> Any | None:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.client.resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ValueError):
            return None

    def ensure_namespace(self, name: str) -> None:
        if name not in self._namespaces:
            self.server.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {json.dumps(name)}}}\n")
            self._namespaces.add(name)

    def verdict(self, identity: tuple[str, str, str, str | None], body: bytes, content_type: str) -> tuple[bool, str]:
        """(accepted, the API server's message) for one document; `identity` is (apiVersion, kind,
        name, namespace) as the document names them."""
        api_version, kind, name, namespace = identity
        resource = self._resource(api_version, kind)
        if resource is None:
            return False, f"the server does not serve {kind} in {api_version}"
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if resource.namespaced:
            namespace = namespace or "default"
            if re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
                self.ensure_namespace(namespace)
            path += f"/namespaces/{urllib.parse.quote(namespace.encode('utf-8', 'surrogateescape'), safe='')}"
        path += f"/{resource.name}/{urllib.parse.quote(name.encode('utf-8', 'surrogateescape'), safe='') or '-'}"
        query = urllib.parse.urlencode({"dryRun": "All", "fieldManager": "meshlab", "force": "true",
                                        "fieldValidation": "Strict"})
        req = urllib.request.Request(f"{self.server.url}{path}?{query}", data=body, method="PATCH",
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                r.read()
                return True, ""
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return False, f"{e.code} {json.loads(text).get('message', text)}"
            except ValueError:
                return False, f"{e.code} {text[:300]}"


def _identity(doc_text: str) -> tuple[str, str, str, str | None] | None:
    """(apiVersion, kind, name, namespace) of a document, as a client reads them: parsed when it
    parses, else from its top-level lines (a document the server's YAML decoder then judges)."""
    try:
        data = yaml.safe_load(doc_text)
    except (yaml.YAMLError, RecursionError):     # not YAML PyYAML can read: the server's decoder judges it
        data = None
    if isinstance(data, dict):
        md = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        api, kind, name = data.get("apiVersion"), data.get("kind"), md.get("name")
        if kind is not None and api is not None:
            return str(api), str(kind), str(name or ""), md.get("namespace") if isinstance(md.get("namespace"), str) else None
        return None
    if data is not None:
        return None     # a list or a scalar: no object
    def top(key: str) -> str | None:
        m = re.search(rf"^{key}:[ \t]*(\S+)", doc_text, re.M)
        return m.group(1) if m else None
    name = re.search(r"^metadata:[ \t]*(?:![^\s{]+[ \t]*)?\{[^}]*?name:[ \t]*([^,}\s]+)|^[ \t]+name:[ \t]*(\S+)",
                     doc_text, re.M)
    api, kind = top("apiVersion"), top("kind")
    if not (api and kind and name):
        return None
    return api, kind, (name.group(1) or name.group(2)), None


def api_verdict_of_text(dry: DryRun, raw: bytes) -> tuple[bool | None, str]:
    """The API server's verdict on a file's bytes (None: no request can be made from them)."""
    if b"\x00" in raw:
        return None, "binary: no YAML document to send"
    text = raw.decode("utf-8", errors="surrogateescape")
    docs = [d for d in _SEPARATOR.split(text) if d.strip() and not all(
        ln.strip().startswith("#") or not ln.strip() for ln in d.splitlines())]
    if not docs:
        return None, "no object in it"
    refusals = []
    for doc in docs:
        identity = _identity(doc)
        if identity is None:
            return None, "a document without apiVersion, kind or name: a client cannot send it"
        ok, why = dry.verdict(identity, doc.encode("utf-8", errors="surrogateescape"), "application/apply-patch+yaml")
        if not ok:
            refusals.append(why)
    return not refusals, "; ".join(refusals)


def api_verdict_of_dict(dry: DryRun, doc: dict[str, Any]) -> tuple[bool | None, str]:
    try:
        body = json.dumps(doc).encode()
    except (RecursionError, TypeError, ValueError) as e:
        return None, f"cannot be serialised for a request ({type(e).__name__})"
    md = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    if not isinstance(doc.get("kind"), str) or not isinstance(doc.get("apiVersion"), str):
        return None, "no apiVersion or kind"
    return dry.verdict((doc["apiVersion"], doc["kind"], str(md.get("name") or ""), md.get("namespace")), body,
                       "application/apply-patch+yaml")


# --------------------------------------------------------------------------------------- meshlab

def meshlab_verdict(source: Any) -> tuple[bool, str]:
    from meshlab.manifests import load_report

    report = load_report(source)
    return not report.problems, "; ".join(str(p) for p in report.problems)[:400]


# ---------------------------------------------------------------------------------------- corpus

def table_cases(dry: DryRun, tmp: Path) -> list[Case]:
    """tests/test_bad_input.py's hostile inputs, each as the file (or object) a learner would have."""
    import test_bad_input as table

    out = []
    for case in table.CASES:
        where = tmp / case.id
        where.mkdir(parents=True, exist_ok=True)
        if callable(case.content):
            target = case.content(where)
        else:
            target = where / f"{case.id}.yaml"
            target.write_bytes(case.content if isinstance(case.content, bytes) else case.content.encode())
        ok, why = meshlab_verdict(target)
        if isinstance(target, dict):
            api_ok, api_why = api_verdict_of_dict(dry, target)
        elif isinstance(target, Path) and target.is_file() and target.stat().st_size <= 4 << 20:
            api_ok, api_why = api_verdict_of_text(dry, target.read_bytes())
        else:
            api_ok, api_why = None, "not a file a client could read (missing, a device, or over 4 MiB)"
        out.append(Case(f"table:{case.id}", ok, why, api_ok, api_why, webhook=TABLE_WEBHOOK.get(f"table:{case.id}")))
    return out


def mutant_cases(dry: DryRun, reference: Path) -> list[Case]:
    """tests/test_validation_vs_crd.py's mutants (one per field, mutation and version, on the fields
    meshlab models), each sent as the object."""
    import test_validation_vs_crd as crd
    from _mutants import mutant_docs

    out = []
    for m in mutant_docs(crd._base_docs(reference), lambda k, v: crd._schemas(str(reference))[(k, v)]):
        ok, why = meshlab_verdict(m.doc)
        api_ok, api_why = api_verdict_of_dict(dry, m.doc)
        out.append(Case(f"mutant:{m.kind}.{m.version} {m.generic} <{m.mutation}>", ok, why, api_ok, api_why,
                        webhook=crd._stricter(m.kind, m.field, m.mutation)))
    return out


def manifest_cases(dry: DryRun) -> list[Case]:
    out = []
    for path in REPOSITORY_MANIFESTS:
        ok, why = meshlab_verdict(path)
        api_ok, api_why = api_verdict_of_text(dry, path.read_bytes())
        out.append(Case(f"manifest:{path.relative_to(REPO)}", ok, why, api_ok, api_why))
    return out


def corpus(server: APIServer, reference: Path, tmp: Path,
           progress: Callable[[str], None] = lambda s: None) -> list[Case]:
    dry = DryRun(server)
    cases = table_cases(dry, tmp)
    progress(f"table: {len(cases)}")
    cases += manifest_cases(dry)
    progress(f"manifests: {len(REPOSITORY_MANIFESTS)}")
    mutants = mutant_cases(dry, reference)
    progress(f"mutants: {len(mutants)}")
    return cases + mutants


def documented(case: Case) -> str | None:
    """Why meshlab refuses what the API server accepts, when that is on purpose: the webhook rule
    and its source, or meshlab's own reason (None otherwise)."""
    if case.meshlab_ok or not case.api_ok:
        return None
    if case.id in MESHLAB_RULES:
        return MESHLAB_RULES[case.id]
    if case.webhook is not None and case.webhook in WEBHOOK_SOURCES:
        return f"{case.webhook} — istio/istio {WEBHOOK_SOURCES[case.webhook]}"
    return None


def report_line(cases: list[Case]) -> str:
    """`validate vs apiserver: A/N agree; …` — N counts the inputs a request can be made from."""
    sendable = [c for c in cases if c.api_ok is not None]
    agree = sum(c.agree for c in sendable)
    webhook = sum(1 for c in sendable if not c.agree and c.id not in MESHLAB_RULES and documented(c))
    own = sum(1 for c in sendable if not c.agree and c.id in MESHLAB_RULES and documented(c))
    return (f"validate vs apiserver: {agree}/{len(sendable)} agree; of the rest, {webhook} refused by meshlab as "
            f"Istio's webhook refuses them, {own} by a rule of meshlab's own, "
            f"{len(sendable) - agree - webhook - own} unexplained ({len(cases) - len(sendable)} inputs from which "
            f"no request can be made are not counted)")


def disagreements(cases: list[Case]) -> list[tuple[Case, str | None]]:
    """Every case where the two differ, with its documentation (None: unexplained)."""
    return [(c, documented(c)) for c in cases if c.api_ok is not None and not c.agree]
