"""`meshlab.analyze`: find misconfigurations the way `istioctl analyze` does, plus meshlab's own traps.

Findings carry Istio's code, level and target resource where Istio has a rule (IST0101, IST0173…),
so what a learner sees here is what `istioctl analyze -A` would print on a live cluster holding
the same objects (with Istio's default install: istiod and the ingress gateway). Traps Istio does
not flag but Envoy acts on get meshlab codes (`MLB0001`…). `codes.py` is Istio's message table
(generated from the oracle's, never typed by hand); `mlb_codes.py` lists meshlab's own codes.

- `snapshot.py`: the indexed view of one cluster every rule reads, and the `Finding` type;
- `istio_rules.py`: istioctl's traffic-management analyzers (IST codes);
- `workload_rules.py`: istioctl's injection and Deployment analyzers (IST0102, IST0103, IST0116, IST0137);
- `webhook_rules.py`: Istio's validation as istioctl reports it (IST0106, IST0130, IST0131);
- `traps.py`: meshlab's own (MLB codes);
- `pages/<code>.md`: a page per MLB code (what, why in Istio's and Envoy's terms, what you see,
  YAML that triggers it and the fix, related IST codes, the chapter); `page(code)`,
  `Finding.page` and `meshlab explain-code CODE` give it.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ManifestError
from ..manifests import LoadReport, load_report
from ..objects import Deployment, K8sObject, Namespace, ObjectKey, Pod
from ..state import BUILTIN_NAMESPACES, ClusterState
from . import istio_rules, traps, webhook_rules, workload_rules
from .codes import LEVEL_ORDER
from .mlb_codes import MESHLAB, Page, page
from .snapshot import SUPPRESS_ANNOTATION, Finding, Snapshot, default_istio_install

__all__ = ["Finding", "Page", "analyze", "analyze_snapshot", "format_findings", "page", "snapshot_of", "MESHLAB_CODES"]

#: What each meshlab code means (for docs and `--json` consumers).
MESHLAB_CODES = {code: c.name for code, c in MESHLAB.items()}
_RULES = (*istio_rules.RULES, *workload_rules.RULES, *webhook_rules.RULES, *traps.RULES)


def analyze(source: Any, *, istio_install: bool = True) -> list[Finding]:
    """Analyze objects, paths, YAML strings, a `ClusterState`, a `Lab` or a `LoadReport`; return
    sorted findings.

    `istio_install`: assume the cluster also runs Istio's default profile (istiod + ingress
    gateway in istio-system), as the live cluster `istioctl analyze` looks at would.
    An object Istio's validation refuses (a regex RE2 does not take, an unknown retryOn, a subset
    name that is no DNS label…) is analyzed with the others and gets IST0106 (Error) for each
    problem, as istioctl reports it. Raises `ManifestError` when some input cannot be read at all
    (YAML, types, the API server's own rules) — except for a `LoadReport`, whose readable objects
    are analyzed (what `meshlab analyze` does, printing the rest, as istioctl does).
    """
    objects, pods = _read(source)
    return analyze_snapshot(snapshot_of(objects, pods, istio_install=istio_install))


def analyze_snapshot(snap: Snapshot) -> list[Finding]:
    """Run every rule on an already indexed snapshot (explain reuses the one it builds)."""
    suppressed = _suppressions(snap)
    found: list[Finding] = []
    for rule in _RULES:
        found.extend(f for f in rule(snap) if not snap.is_synthetic(f)
                     and not ({f.code, "*"} & suppressed.get(f.key, set())))
    return _sorted_deduped(found)


def _suppressions(snap: Snapshot) -> dict[ObjectKey, set[str]]:
    """Codes silenced per resource with istioctl's `galley.istio.io/analyze-suppress` annotation: on
    the very object the message is about (pkg/config/analysis/local/istiod_analyze.go filterMessages),
    so an Istio Gateway's annotation does not silence a Gateway API Gateway of the same name."""
    out = {}
    for o in snap.state.all():
        value = o.metadata.annotations.get(SUPPRESS_ANNOTATION)
        if value:
            out[o.key] = {c.strip() for c in value.split(",")}
    return out


def _sorted_deduped(findings: Iterable[Finding]) -> list[Finding]:
    """istioctl's order (level, code, resource, text), identical messages printed once."""
    out: list[Finding] = []
    seen: set[str] = set()
    for f in sorted(findings, key=lambda f: (LEVEL_ORDER[f.level], f.code, f.origin, str(f))):
        if str(f) not in seen:
            seen.add(str(f))
            out.append(f)
    return out


def _read(source: Any) -> tuple[list[K8sObject], Any]:
    """The objects (and live pods, where there are some) of what `analyze` was given; objects
    Istio's validation refuses are among them (webhook_rules reports them)."""
    if isinstance(source, LoadReport):
        return source.read_objects, None
    if isinstance(source, ClusterState):
        return source.all(), [{"name": p.name, "namespace": p.namespace, "ready": p.ready, "phase": p.phase,
                               "ip": p.ip, "labels": p.labels} for p in source.pods()]
    if callable(getattr(source, "objects", None)):          # a Lab or a Backend
        return list(source.objects()), source.pods() if callable(getattr(source, "pods", None)) else None
    if isinstance(getattr(source, "state", None), ClusterState):
        return _read(source.state)
    if isinstance(source, (list, tuple)) and source and all(isinstance(o, K8sObject) for o in source):
        return list(source), None  # already typed: taken as they are (a lab's objects, a benchmark)
    report = load_report(source)
    if report.unparsed:
        raise ManifestError(report.unparsed)
    return _read(report)


def snapshot_of(objects: list[K8sObject], pods: Any = None, *, istio_install: bool = True) -> Snapshot:
    """The indexed view every rule reads: a private ClusterState holding `objects` (+ Istio's
    default install when `istio_install`), pods derived from the workloads.

    `pods` — a lab's `pods()` DataFrame, or rows with name, namespace, ip, labels, ready, phase —
    carries a live lab's readiness, phase and IP over, so `analyze(lab)` and explain see what the
    lab sees: a killed pod is `Failed`, an unready one is left out of endpoints.
    """
    live = _live_pods(pods)
    if any(isinstance(o, Pod) and o.metadata.owner_references for o in objects):
        # Read back from a real cluster: the Deployments' pods are already there as Pod objects.
        objects = [o for o in objects if not isinstance(o, Deployment)]
    state = ClusterState(strict_namespaces=False)
    # a ClusterState's own namespaces (default, kube-system, ...: no file, no labels) are not given
    own = {o.key for o in objects
           if not (isinstance(o, Namespace) and o.name in BUILTIN_NAMESPACES and o.source is None and not o.labels)}
    extra: list[K8sObject] = []
    if istio_install:
        extra = [o for o in default_istio_install() if o.key not in own]
    state.apply([*objects, *extra])
    _carry_live_pods(state, live)
    return Snapshot(state, {o.key for o in extra}, own)


def _carry_live_pods(state: ClusterState, live: list[dict[str, Any]]) -> None:
    """Copy readiness/phase/IP from the live pods; a real cluster names Deployment pods its own
    way, so pods not found by name are paired with a derived pod carrying the same labels."""
    def plain(labels: dict[str, str]) -> frozenset:
        return frozenset((k, v) for k, v in labels.items() if k != "pod-template-hash")

    by_name = {(p.namespace, p.name): p for p in state.pods()}
    matched = set()
    unmatched = []
    for row in live:
        pod = by_name.get((row["namespace"], row["name"]))
        if pod is None:
            unmatched.append(row)
            continue
        matched.add(id(pod))
        pod.ready, pod.phase, pod.ip = bool(row["ready"]), row["phase"], row.get("ip") or pod.ip  # type: ignore[assignment]
    if not unmatched:
        return
    spare: dict[tuple[str, frozenset], list] = {}
    for p in state.pods():
        if id(p) not in matched and p.owner:
            spare.setdefault((p.namespace, plain(p.labels)), []).append(p)
    for row in unmatched:
        group = spare.get((row["namespace"], plain(row.get("labels") or {})))
        if group:
            pod = group.pop(0)
            pod.name = row["name"]
            pod.ready, pod.phase, pod.ip = bool(row["ready"]), row["phase"], row.get("ip") or pod.ip  # type: ignore[assignment]


def _live_pods(pods: Any) -> list[dict[str, Any]]:
    """`lab.pods()` rows (name, namespace, ip, labels, ready, phase) as dicts."""
    if pods is None:
        return []
    try:
        rows = pods.to_dict("records") if hasattr(pods, "to_dict") else list(pods)
        if not rows or not {"name", "namespace", "ready"} <= set(rows[0]):
            return []
        out = []
        for r in rows:
            ip = r.get("ip")
            labels = r.get("labels")
            out.append({"name": r["name"], "namespace": r["namespace"], "ready": bool(r["ready"]),
                        "phase": str(r.get("phase") or "Running"), "ip": ip if isinstance(ip, str) and ip else None,
                        "labels": labels if isinstance(labels, dict) else {}})
        return out
    except Exception:  # live pod state is a refinement; analysis works without it
        return []


# ---------------------------------------------------------------------------------------- output

def format_findings(findings: list[Finding], *, fixes: bool = True) -> str:
    """istioctl's text output, each finding followed by indented lines on how to fix it and, for an
    MLB code, how to print its page."""
    lines = []
    for f in findings:
        lines.append(str(f))
        if fixes and f.fix:
            lines.append(f"    fix: {f.fix}")
        if fixes and f.page_command:
            lines.append(f"    page: {f.page_command}")
    return "\n".join(lines)
