"""`explain(probe_df, lab)`: why did I get this 503? One short answer per kind of outcome.

A probe's rows are grouped by outcome (status, Envoy flags, details, client error). Each group is
explained from what the lab really holds — its objects, its pods and the live Envoy config
(`lab.envoy_config()`), plus Envoy's `/clusters` health where the backend exposes it — never from
the status code alone: NC names the route and the missing cluster and says why it is missing, UH
names the cluster without a healthy endpoint and why, and so on. Every explanation also lists
what you would run on a real cluster to see the same thing.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .backends.base import Backend, ProxyName
from .errors import ProbeError
from .analysis.snapshot import applies_to_mesh
from .names import host_subset_of, labels_match, parse_cluster_name, selector_string, to_fqdn
from .objects import DestinationRule, K8sObject, VirtualService

__all__ = ["Explanation", "Cause", "explain"]


@dataclass
class Cause:
    """One outcome group: how many requests, what happened, which object/field, the fix."""

    outcome: str                 # "503 NC", "200", "dns", …
    count: int
    share: float
    what: str                    # what happened, in one sentence
    why: str = ""                # which object and field caused it
    fix: str = ""
    commands: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)    # "VirtualService default/reviews"
    ok: bool = False
    findings: list[str] = field(default_factory=list)   # what `meshlab analyze` / istioctl say about them

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "count": self.count, "share": self.share, "what": self.what,
                "why": self.why, "fix": self.fix, "commands": list(self.commands), "objects": list(self.objects),
                "findings": list(self.findings)}


@dataclass
class Explanation:
    """What a probe saw, explained. Prints as text; renders as HTML in a notebook."""

    causes: list[Cause]
    total: int

    def __iter__(self):
        return iter(self.causes)

    def __len__(self) -> int:
        return len(self.causes)

    def __getitem__(self, outcome: str) -> Cause:
        """The cause for an outcome label (`"503 NC"`) or a flag (`"NC"`)."""
        for c in self.causes:
            if c.outcome == outcome or outcome in c.outcome.split()[-1].split(","):
                return c
        raise KeyError(f"no outcome {outcome!r}; outcomes: {', '.join(c.outcome for c in self.causes)}")

    def to_frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame([c.to_dict() for c in self.causes])

    def __str__(self) -> str:
        if not self.causes:
            return "No requests to explain."
        lines = []
        for c in self.causes:
            lines.append(f"{c.outcome} — {c.count} of {self.total} requests ({c.share:.0%})")
            lines.append(f"  {c.what}")
            if c.why:
                lines.append(f"  Cause: {c.why}")
            if c.fix:
                lines.append(f"  Fix: {c.fix}")
            for cmd in c.commands:
                lines.append(f"  $ {cmd}")
                if cmd == "istioctl analyze":
                    lines += [f"    {f}" for f in c.findings]
            lines.append("")
        return "\n".join(lines).rstrip()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self.causes:
            return "<p>No requests to explain.</p>"
        e = html.escape
        parts = ['<div class="meshlab-explain" style="font-family:sans-serif;line-height:1.4">']
        for c in self.causes:
            color = "#2e7d32" if c.ok else "#c62828"
            parts.append(f'<div style="border-left:4px solid {color};padding:4px 10px;margin:6px 0">'
                         f'<b style="color:{color}">{e(c.outcome)}</b> '
                         f'<span style="color:#666">{c.count} of {self.total} requests ({c.share:.0%})</span>'
                         f'<div>{e(c.what)}</div>')
            if c.why:
                parts.append(f"<div><b>Cause:</b> {e(c.why)}</div>")
            if c.fix:
                parts.append(f"<div><b>Fix:</b> {e(c.fix)}</div>")
            if c.commands:
                cmds = "\n".join("$ " + cmd + "".join("\n  " + f for f in c.findings if cmd == "istioctl analyze")
                                  for cmd in c.commands)
                parts.append('<details><summary>On a real cluster</summary>'
                             f'<pre style="margin:2px 0">{e(cmds)}</pre></details>')
            parts.append("</div>")
        parts.append("</div>")
        return "".join(parts)


# ------------------------------------------------------------------------------------------- facade

def explain(probe_df: Any, lab: Any, *, url: str | None = None, namespace: str | None = None) -> Explanation:
    """Group `probe_df` rows by outcome and explain each group from `lab`'s state and Envoy config.

    `lab` is a `meshlab.Lab` or a Backend (read only through `meshlab.backends.base.Backend`: its
    objects, pods and live Envoy config), or just a list of objects (then explanations rest on
    the objects alone). `url` / `namespace` say what
    the probe asked for (default: `probe_df.attrs`, if the probe recorded them); they sharpen the
    `dns` and `refused` explanations, which have no Envoy row to go by.
    """
    if not hasattr(probe_df, "to_dict") and not (
            isinstance(probe_df, (list, tuple)) and all(isinstance(r, dict) for r in probe_df)):
        raise ProbeError(f"explain() takes what a probe returned (df = lab.probe(url); lab.explain(df)), "
                           f"not {type(probe_df).__name__} {probe_df!r:.60}")
    attrs = dict(getattr(probe_df, "attrs", {}) or {})
    attrs.update({k: v for k, v in (("url", url), ("namespace", namespace)) if v})
    ctx = _Context(lab, attrs)
    rows = probe_df.to_dict("records") if hasattr(probe_df, "to_dict") else list(probe_df)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (int(r.get("status") or 0), _s(r.get("flags")), _s(r.get("details")), _s(r.get("error")))
        groups.setdefault(key, []).append(r)
    total = len(rows)
    causes = []
    for key, grp in groups.items():
        cause = _explain_group(ctx, key, grp, rows)
        cause.count, cause.share = len(grp), len(grp) / total if total else 0.0
        if not cause.ok:
            cause.findings = [str(f) for f in ctx.findings if f.origin in cause.objects][:4]
            if cause.findings and "istioctl analyze" not in cause.commands:
                cause.commands.append("istioctl analyze")
        causes.append(cause)
    causes.sort(key=lambda c: (c.ok, -c.count))
    return Explanation(causes, total)


def _s(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


# ------------------------------------------------------------------------------------------ context

class _Context:
    """The lab's objects, pods and live Envoy view, read once per explain() through the Backend
    protocol (or only objects, when explain was given objects)."""

    def __init__(self, lab: Any, attrs: dict[str, Any]):
        from .analysis import analyze_snapshot, snapshot_of
        self.attrs = attrs
        self.backend: Backend | None = None
        if isinstance(lab, (list, tuple)):
            objects, pods = list(lab), None
        else:
            self.backend = getattr(lab, "backend", lab)     # a Lab, or a Backend itself
            objects, pods = self.backend.objects(), self.backend.pods()
        self.snap = snapshot_of(objects, pods)
        self.findings = analyze_snapshot(self.snap)
        self._envoy: dict[tuple[str, str], _EnvoyView] = {}

    def envoy(self, proxy: str) -> _EnvoyView:
        proxy = "gateway" if proxy == "gateway" else "sidecar"
        ns = (self.attrs.get("namespace") or "default") if proxy == "sidecar" else "default"
        if (proxy, ns) not in self._envoy:
            self._envoy[(proxy, ns)] = _EnvoyView(self.backend, proxy, ns)
        return self._envoy[(proxy, ns)]

    def findings_for(self, *codes: str, kind: str | None = None, name: str | None = None) -> list:
        return [f for f in self.findings if f.code in codes and (kind is None or f.kind == kind)
                and (name is None or f.name == name)]

    def pod_by_ip(self, ip: str):
        for p in self.snap.pods:
            if p.ip == ip:
                return p
        return None

    def vs_by_ref(self, ref: str) -> VirtualService | None:
        """`reviews.default` (Envoy route metadata) → the VirtualService."""
        name, _, ns = ref.partition(".")
        for vs in self.snap.virtual_services:
            if vs.name == name and (vs.namespace or "default") == (ns or "default"):
                return vs
        return None

    def vss_for_host(self, fqdn: str) -> list[VirtualService]:
        out = []
        for vs in self.snap.virtual_services:
            ns = vs.namespace or "default"
            if any(to_fqdn(h, ns) == fqdn or h == "*" for h in vs.spec.hosts):
                out.append(vs)
        return out

    def drs_for_host(self, fqdn: str) -> list[DestinationRule]:
        return [dr for dr in self.snap.destination_rules
                if to_fqdn(dr.spec.host, dr.namespace or "default") == fqdn]

    def url_host(self) -> str:
        url = str(self.attrs.get("url", ""))
        if not url:
            return ""
        rest = url.split("://", 1)[-1]
        return rest.split("/", 1)[0].rsplit(":", 1)[0] if rest else ""


class _EnvoyView:
    """`backend.envoy_config(proxy)` (istioctl proxy-config style rows, with each endpoint's
    outlier state), read defensively."""

    def __init__(self, backend: Backend | None, proxy: ProxyName, namespace: str):
        self.proxy = proxy
        self.available = False
        self.clusters: dict[str, dict[str, Any]] = {}
        self.routes: list[dict[str, Any]] = []
        self.endpoints: dict[str, list[dict[str, Any]]] = {}
        self.outlier_failed: set[tuple[str, str]] = set()
        if backend is None:
            return
        try:
            cfg = backend.envoy_config(proxy, namespace=namespace)
        except Exception:       # no live view (a proxy not started, a cluster not reachable): objects only
            return
        self.available = True
        for c in _rows(cfg.get("clusters")):
            self.clusters[str(c.get("name", ""))] = c
        self.routes = _rows(cfg.get("routes"))
        for e in _rows(cfg.get("endpoints")):
            self.endpoints.setdefault(str(e.get("cluster", "")), []).append(e)
            if str(e.get("outlier_check", "")).upper() == "FAILED":
                self.outlier_failed.add((str(e.get("cluster")), str(e.get("endpoint"))))

    def route_targets(self, route_name: str, host: str = "") -> list[tuple[dict[str, Any], list[str]]]:
        """Route rows named `route_name` (and, when known, serving `host`) with their cluster names."""
        rows = [r for r in self.routes if not route_name or r.get("route_name") == route_name]
        if host:
            def serves(r: dict[str, Any], exact: bool) -> bool:
                domains = [str(d) for d in (r.get("domains") or [])]
                return host in domains if exact else any(d.startswith("*") and host_subset_of(host, d)
                                                         for d in domains)
            rows = ([r for r in rows if serves(r, True)] or [r for r in rows if serves(r, False)] or rows)
        return [(r, _clusters_in(str(r.get("destination", "")))) for r in rows]

    def cluster_missing(self, name: str) -> bool:
        return self.available and name not in self.clusters

    def cluster_warming(self, name: str) -> bool:
        return self.clusters.get(name, {}).get("state") == "warming"


def _rows(x: Any) -> list[dict[str, Any]]:
    if x is None:
        return []
    if hasattr(x, "to_dict"):
        return x.to_dict("records")
    return [dict(r) for r in x]


def _clusters_in(destination: str) -> list[str]:
    """`outbound|9080|v1|r…` or `outbound|…|v1|r… 80, outbound|…|v2|r… 20` → cluster names."""
    out = []
    for part in destination.split(","):
        token = part.strip().split(" ")[0]
        if token.count("|") == 3:
            out.append(token)
    return out


def _ref(obj: K8sObject) -> str:
    return f"{obj.kind} {obj.namespace}/{obj.name}"


def _client(proxy: str) -> str:
    return "deploy/istio-ingressgateway -n istio-system" if proxy == "gateway" else "<client-pod>"


# ------------------------------------------------------------------------------------------ groups

def _explain_group(ctx: _Context, key: tuple, grp: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> Cause:
    status, flags, details, error = key
    flag_set = set(flags.split(",")) if flags and flags != "-" else set()
    label = (f"{status} {flags}" if flag_set else str(status)) if status else (error or flags or "no answer")
    proxy = _s(grp[0].get("proxy")) or "sidecar"
    if error == "dns":
        return _dns(ctx, label)
    if error == "refused":
        return _refused(ctx, label, grp)
    if "NC" in flag_set:
        return _nc(ctx, label, grp, proxy, all_rows)
    if "UH" in flag_set:
        return _uh(ctx, label, grp, proxy)
    if "FI" in flag_set:
        return _fi(ctx, label, grp, status)
    if "UO" in flag_set:
        return _uo(ctx, label, grp)
    if "UT" in flag_set:
        return _ut(ctx, label, grp, proxy)
    if "NR" in flag_set:
        return _nr(ctx, label, grp, proxy)
    if flag_set & {"UF", "URX"}:
        return _uf(ctx, label, grp, proxy, flag_set)
    if flag_set & {"UC", "UR", "LR"}:
        return Cause(label, 0, 0, f"The upstream connection was closed or reset before a full answer "
                     f"({details or ', '.join(sorted(flag_set))}).",
                     "The pod closed the connection mid-request (crash, restart) or a proxy reset it; Istio's "
                     "default retry policy does not retry this.",
                     "Look at the pod's logs; add `retries.retryOn: reset` if the request is safe to repeat.",
                     [f"kubectl logs {_pods_of(grp) or '<pod>'}",
                      f"istioctl proxy-config endpoints {_client(proxy)}"])
    if error in ("timeout", "reset"):
        return _client_error(ctx, label, grp, error)
    if 200 <= status < 400:
        return _ok(ctx, label, grp, flag_set, proxy)
    if status >= 400 and (flags in ("-", "") or details == "via_upstream"):
        return _app_error(ctx, label, grp, status)
    return Cause(label, 0, 0, f"Status {status}, Envoy flags {flags or '(none)'}, details {details or '(none)'}"
                 f"{', client error ' + error if error else ''}.",
                 commands=[f"istioctl proxy-config all {_client(proxy)}"])


def _versions(grp: list[dict[str, Any]]) -> str:
    c = Counter(_s(r.get("version")) or _s(r.get("pod")) or "?" for r in grp)
    total = sum(c.values())
    return ", ".join(f"{k} {v / total:.0%}" for k, v in c.most_common())


def _pods_of(grp: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({_s(r.get("pod")) for r in grp if _s(r.get("pod"))})[:3])


def _ok(ctx: _Context, label: str, grp: list[dict[str, Any]], flags: set[str], proxy: str) -> Cause:
    clusters = Counter(_s(r.get("cluster")) for r in grp if _s(r.get("cluster")))
    if proxy == "none":
        what = (f"Answered by the pods (no sidecar: kube-proxy picked a pod per connection): {_versions(grp)}.")
    else:
        via = ", ".join(f"{c} ({n})" for c, n in clusters.most_common(3))
        what = f"Answered by the pods: {_versions(grp)}" + (f", through {via}." if via else ".")
    why = ""
    if "DI" in flags:
        fault = _fault_rules(ctx, grp, "delay")
        why = ("Each of these was delayed first by a fault injection"
               + (f": {fault}" if fault else "") + ".")
    retried = [r for r in grp if int(r.get("attempts") or 0) > 1]
    if retried:
        why = (why + " " if why else "") + (f"{len(retried)} needed a retry (Envoy's default: 2 retries on "
                                              "connect failure) and still succeeded.")
    return Cause(label, 0, 0, what, why, ok=True,
                 commands=[f"istioctl proxy-config routes {_client(proxy)} -o json"] if proxy != "none" else
                 ["kubectl get endpoints"])


def _app_error(ctx: _Context, label: str, grp: list[dict[str, Any]], status: int) -> Cause:
    pods = _pods_of(grp)
    return Cause(label, 0, 0, f"The application itself answered {status} (Envoy passed it through: flag '-', "
                 "details via_upstream).",
                 f"The pods {pods or '(unknown)'} returned errors; since Istio 1.24 a 503 from the app is not "
                 "retried by default.",
                 "Fix the app, or add `retries: {attempts: 2, retryOn: 5xx}` to the VirtualService route and "
                 "outlierDetection to the DestinationRule to steer around failing pods.",
                 [f"kubectl logs {pods.split(', ')[0] if pods else '<pod>'}"])


def _client_error(ctx: _Context, label: str, grp: list[dict[str, Any]], error: str) -> Cause:
    if error == "timeout":
        return Cause(label, 0, 0, "The client gave up waiting: no answer arrived within the probe's timeout.",
                     "Istio sets no route timeout by default (timeout 0s = wait forever), so a slow or "
                     "delayed upstream keeps the request open.",
                     "Set `timeout:` on the VirtualService http rule to fail fast with 504 UT.",
                     ["istioctl proxy-config routes <client-pod> -o json | grep -i timeout"])
    return Cause(label, 0, 0, "The connection was reset before an answer arrived.",
                 "The pod (or the proxy in front of it) closed the connection: a crashed or restarted pod.",
                 "Check the pod; a sidecar in front would have retried on another pod.",
                 ["kubectl get pods -o wide", "kubectl logs <pod> --previous"])


# ---------------------------------------------------------------------------------------- DNS, refused

def _dns(ctx: _Context, label: str) -> Cause:
    host = ctx.url_host()
    ns = ctx.attrs.get("namespace") or "default"
    elsewhere = [s for s in ctx.snap.services if s.name == host.split(".")[0]] if host else []
    vs_hosts = [vs for vs in ctx.snap.virtual_services if host and host in vs.spec.hosts]
    why = (f"No Service answers to {host!r} from namespace {ns}" if host else
           "The host name matches no Service") + "; cluster DNS only knows Services (not VirtualService hosts)."
    if vs_hosts:
        why += (f" {_ref(vs_hosts[0])} lists {host!r} in its hosts, but a VirtualService does not create a DNS "
                "name: there must be a Service (or a ServiceEntry with DNS capture).")
    if elsewhere:
        why += " A Service of that name exists in " + ", ".join(f"{s.namespace}" for s in elsewhere) + \
            f": use {elsewhere[0].name}.{elsewhere[0].namespace}."
    return Cause(label, 0, 0, "The name did not resolve, so no connection was made and no proxy saw the request.",
                 why, "Create the Service, or call it by a name that resolves (<service>.<namespace>).",
                 [f"kubectl get svc -A | grep {host or '<name>'}", f"kubectl exec <client-pod> -- nslookup {host or '<name>'}"],
                 [_ref(v) for v in vs_hosts])


def _url_port(ctx: _Context) -> int | None:
    """The port the probed URL named (80 when it named none), or None without a usable URL."""
    from .probe import ProbeError, parse_url
    try:
        return parse_url(str(ctx.attrs["url"])).port if ctx.attrs.get("url") else None
    except ProbeError:
        return None


_INGRESS_LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}   # Istio's default install


def _gateway_refused(ctx: _Context, label: str, port: int | None) -> Cause:
    """The ingress gateway opens a listener only for ports some Gateway's servers declare."""
    mine = [g for g in ctx.snap.gateways
            if g.spec.selector and labels_match(g.spec.selector, _INGRESS_LABELS)]
    served = [f"Gateway {g.namespace}/{g.name}: port {srv.port.number} ({srv.port.protocol})"
              for g in mine for srv in g.spec.servers]
    where = f"port {port}" if port is not None else "that port"
    on_port = [srv for g in mine for srv in g.spec.servers if srv.port.number == port]
    if on_port:
        why = (f"A Gateway declares {where} ({', '.join(sorted({srv.port.protocol for srv in on_port}))}), but the "
               "local lab's gateway serves plain HTTP only and leaves that server out (see lab.warnings).")
    elif served:
        why = (f"The ingress gateway has no listener on {where}: no Gateway selecting it has a server on "
               f"{where}. It listens only where its Gateways say: {'; '.join(served)}.")
    else:
        why = (f"The ingress gateway has no listener on {where}: there is no Gateway with selector "
               "istio: ingressgateway, and without one the gateway listens on nothing.")
    return Cause(label, 0, 0, "The ingress gateway refused the connection.", why,
                 "Add a server for that port to a Gateway selecting istio: ingressgateway (and bind a "
                 "VirtualService to it), or call a port a Gateway declares.",
                 ["kubectl get gateways.networking.istio.io -A",
                  "istioctl proxy-config listeners deploy/istio-ingressgateway -n istio-system"],
                 [_ref(g) for g in mine])


def _refused(ctx: _Context, label: str, grp: list[dict[str, Any]]) -> Cause:
    host = ctx.url_host()
    ns = ctx.attrs.get("namespace") or "default"
    svc = ctx.snap.state.resolve_host(host, ns) if host else None
    candidates = [svc] if svc is not None else [
        s for s in ctx.snap.services if not ctx.snap.is_synthetic_obj(s) and s.spec.selector
        and not any(p.ready and p.phase == "Running" for p in ctx.snap.service_pods(s))]
    port = _url_port(ctx)
    if ctx.attrs.get("via") == "gateway":
        return _gateway_refused(ctx, label, port)
    if svc is not None and port is not None and svc.port(port) is None:
        ports = [p.port for p in svc.spec.ports]
        good = f"http://{host}:{ports[0]}/" if ports else ""
        return Cause(label, 0, 0, "Nothing answered on the port the URL names.",
                     f"Service {svc.namespace}/{svc.name} has no port {port} (its ports: "
                     f"{', '.join(map(str, ports)) or 'none'}), so no listener or kube-proxy rule exists "
                     "for it and no pod was ever chosen.",
                     f"Call a port the Service declares{' (' + good + ')' if good else ''}; a Service's port "
                     "is not its pods' targetPort.",
                     [f"kubectl get svc {svc.name} -n {svc.namespace}"], [_ref(svc)])
    if candidates:
        s = candidates[0]
        pods = ctx.snap.service_pods(s)
        dead = [p for p in pods if p.phase != "Running"]
        unready = [p for p in pods if not p.ready]
        if not pods:
            why = (f"Service {s.namespace}/{s.name} selects {selector_string(s.spec.selector or {})} but no pod "
                   "has those labels, so it has no endpoints and kube-proxy rejects the connection.")
            fix = "Fix the Service's spec.selector or the pods' labels."
        elif len(unready) == len(pods):
            why = (f"All pods of Service {s.namespace}/{s.name} are not ready ({', '.join(p.name for p in pods[:3])}), "
                   "so it has no ready endpoints and kube-proxy rejects the connection.")
            fix = "Make a pod ready again (fix the readiness probe / restart the pod)."
        elif dead:
            why = (f"kube-proxy sent some connections to {', '.join(p.name for p in dead[:3])}, whose process is "
                   "dead but still listed until its readiness probe fails; nothing listens, so the pod refuses.")
            fix = "Wait for the endpoint to go, or restart the pod; a sidecar client would retry on another pod."
        else:
            why = f"The connection to Service {s.namespace}/{s.name} was refused by the chosen pod."
            fix = "Check the Service's targetPort against the port the app listens on."
        return Cause(label, 0, 0, "The TCP connection was refused (no proxy involved).", why, fix,
                     [f"kubectl get endpoints {s.name} -n {s.namespace}",
                      f"kubectl get pods -n {s.namespace} -l {selector_string(s.spec.selector or {})} -o wide"],
                     [_ref(s)])
    return Cause(label, 0, 0, "The TCP connection was refused.",
                 "Nothing listened at the address the client dialled (a Service without ready endpoints, or a "
                 "dead pod).", "Check the Service's endpoints.", ["kubectl get endpoints -A"])


# ---------------------------------------------------------------------------------------------- NC

def _nc(ctx: _Context, label: str, grp: list[dict[str, Any]], proxy: str, all_rows: list[dict[str, Any]]) -> Cause:
    env = ctx.envoy(proxy)
    route_name = _s(grp[0].get("route"))
    named = [c for r in grp for c in [_s(r.get("cluster"))] if c]
    targets = env.route_targets(route_name, ctx.url_host()) if (route_name or not named) else []
    missing = list(dict.fromkeys(named))
    vs_refs: list[str] = []
    for row, clusters in targets:
        gone = [c for c in clusters if env.cluster_missing(c)]
        if gone:
            missing += [c for c in gone if c not in missing]
            if row.get("virtual_service"):
                vs_refs.append(str(row["virtual_service"]))
    if not missing:
        transient = _nc_window(ctx, label, grp, all_rows, proxy, route_name)
        if transient is not None:
            return transient
        present = [c for _, clusters in targets for c in clusters if c in env.clusters]
        if env.available and present and route_name:
            return _nc_gone(ctx, label, present[0], proxy)
        # No live view: fall back to the analyzer's IST0101 findings.
        f = ctx.findings_for("IST0101", kind="VirtualService")
        why = f[0].message + f" ({f[0].origin}, {f[0].field})" if f else \
            "The route named a cluster Envoy does not have."
        return Cause(label, 0, 0, "Envoy found the route but not the cluster it names (503 NC, cluster_not_found).",
                     why, f[0].fix if f else "Check the route's destination host and subset.",
                     ["istioctl analyze", f"istioctl proxy-config clusters {_client(proxy)}"],
                     [f[0].origin] if f else [])
    cluster = missing[0]
    parsed = parse_cluster_name(cluster)
    vs = ctx.vs_by_ref(vs_refs[0]) if vs_refs else None
    by = " of ".join(x for x in ((f"Route {route_name!r}" if route_name else ""), (_ref(vs) if vs else "")) if x)
    what = (f"{by or 'The route'} sends requests to cluster {cluster}, which this {proxy} does not have, so "
            "Envoy answers 503 NC (cluster_not_found).")
    cmds = ["istioctl analyze", f"istioctl proxy-config routes {_client(proxy)} -o json",
            f"istioctl proxy-config clusters {_client(proxy)}" + (f" --fqdn {parsed[3]}" if parsed else "")]
    objs = [_ref(vs)] if vs else []
    if parsed is None:
        return Cause(label, 0, 0, what, "", "", cmds, objs)
    _, port, subset, host = parsed
    reg = ctx.snap.destination_host("default", [], host)
    svc = ctx.snap.service_for_host(host, "default")
    if reg is None:
        why = (f"There is no Service or ServiceEntry {host}: istiod builds no cluster for it, but the route "
               f"still names one.")
        if host.count(".") == 1:
            why += f" ({host!r} is not expanded: Istio only expands names without a dot.)"
        fix = "Create the Service, or point the route's destination.host at an existing one."
        return Cause(label, 0, 0, what, why, fix, cmds + ["kubectl get svc -A"], objs)
    if svc is not None and port is not None and svc.port(port) is None:
        ports = ", ".join(str(p.port) for p in svc.spec.ports)
        why = (f"Service {svc.namespace}/{svc.name} has no port {port} (it has {ports}); the cluster name takes the "
               "destination port, or the listener port when a multi-port Service has none in the destination.")
        return Cause(label, 0, 0, what, why, "Set destination.port.number to one of the Service's ports.",
                     cmds, objs + [_ref(svc)])
    if subset:
        drs = ctx.drs_for_host(host)
        defining = [dr for dr in drs if dr.subset(subset) is not None]
        if not defining:
            have = sorted({s.name for dr in drs for s in dr.spec.subsets})
            why = (f"No DestinationRule defines subset {subset!r} for {host}"
                   + (f" (defined: {', '.join(have)} in {', '.join(_ref(d) for d in drs)})" if drs else
                      " (there is no DestinationRule for this host at all)") + ".")
            fix = (f"Add subset {subset!r} (with the pods' labels) to the DestinationRule, or route to an existing "
                   "subset. Apply the DestinationRule first, then the VirtualService.")
            return Cause(label, 0, 0, what, why, fix, cmds + ["kubectl get destinationrules -A"],
                         objs + [_ref(d) for d in drs])
        later_ok = _later_success(grp, all_rows)
        if not env.cluster_missing(cluster) or later_ok:
            why = (f"{_ref(defining[0])} defines subset {subset!r}, but when these requests arrived Envoy had the "
                   "route before the cluster: the VirtualService was applied (or pushed) before the "
                   "DestinationRule, or the new cluster was still warming.")
            fix = ("Make before break: apply the DestinationRule subset first, wait a moment, then the "
                   "VirtualService (and remove in the opposite order).")
            return Cause(label, 0, 0, what, why, fix, cmds, objs + [_ref(defining[0])])
        why = (f"{_ref(defining[0])} defines subset {subset!r}, yet this proxy has no such cluster: the "
               "DestinationRule may not be visible to it (exportTo, namespace) or not pushed yet.")
        return Cause(label, 0, 0, what, why, "Check the DestinationRule's namespace and exportTo.", cmds,
                     objs + [_ref(defining[0])])
    return Cause(label, 0, 0, what, "The cluster is absent from the proxy's config (not pushed yet, or not "
                 "visible to this proxy).", "Check exportTo and the order things were applied in.", cmds, objs)


def _nc_window(ctx: _Context, label: str, grp: list[dict[str, Any]], all_rows: list[dict[str, Any]], proxy: str,
               route_name: str) -> Cause | None:
    """NC while every cluster the routes name exists now: the route arrived before its cluster."""
    last_nc = max(float(r.get("t") or 0) for r in grp)
    later = Counter(_s(r.get("cluster")) for r in all_rows
                    if 200 <= int(r.get("status") or 0) < 500 and float(r.get("t") or 0) > last_nc
                    and _s(r.get("route")) == route_name and _s(r.get("cluster")))
    if not later:
        return None
    cluster = later.most_common(1)[0][0]
    parsed = parse_cluster_name(cluster)
    dr = None
    if parsed and parsed[2]:
        dr = next((d for d in ctx.drs_for_host(parsed[3]) if d.subset(parsed[2]) is not None), None)
    first_ok = min(float(r.get("t") or 0) for r in all_rows if _s(r.get("cluster")) == cluster)
    what = (f"For {last_nc - min(float(r.get('t') or 0) for r in grp):.2f} s the route sent requests to a cluster "
            f"this {proxy} did not have yet (503 NC, cluster_not_found); from t={first_ok:.2f} s they reached "
            f"{cluster}.")
    why = ((f"Subset {parsed[2]!r} comes from {_ref(dr)}: the route naming it was live before the cluster — the "
            "VirtualService was applied (or pushed) before the DestinationRule, or the new cluster was still "
            "warming.") if dr else
           "The route was live before its cluster existed (config applied in the wrong order).")
    return Cause(label, 0, 0, what, why,
                 "Make before break: apply the DestinationRule (subsets) first, wait for it to reach the proxies, "
                 "then the VirtualService that uses them; on removal, the VirtualService first.",
                 ["istioctl analyze", f"istioctl proxy-config clusters {_client(proxy)}",
                  "kubectl get destinationrules,virtualservices -A"], [_ref(dr)] if dr else [])


def _nc_gone(ctx: _Context, label: str, cluster: str, proxy: str) -> Cause:
    """The route's cluster exists now, but did not when the requests were sent."""
    parsed = parse_cluster_name(cluster)
    dr = None
    if parsed and parsed[2]:
        dr = next((d for d in ctx.drs_for_host(parsed[3]) if d.subset(parsed[2]) is not None), None)
    return Cause(label, 0, 0, f"The route sends requests to {cluster}; Envoy has that cluster now, but did not when "
                 "these requests were sent (503 NC, cluster_not_found).",
                 (f"Its subset comes from {_ref(dr)}, which reached the proxy after the route that uses it: "
                  "applied in the wrong order, or the cluster was still warming." if dr else
                  "The route reached the proxy before its cluster: applied in the wrong order."),
                 "Make before break: DestinationRule first, then the VirtualService; on removal the reverse.",
                 [f"istioctl proxy-config clusters {_client(proxy)}"], [_ref(dr)] if dr else [])


def _later_success(grp: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> bool:
    """NC only early in the probe, 2xx afterwards: a make-before-break window."""
    last_nc = max(float(r.get("t") or 0) for r in grp)
    return any(200 <= int(r.get("status") or 0) < 400 and float(r.get("t") or 0) > last_nc for r in all_rows)


# ---------------------------------------------------------------------------------------------- UH

def _uh(ctx: _Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    env = ctx.envoy(proxy)
    cluster = next((_s(r.get("cluster")) for r in grp if _s(r.get("cluster"))), "")
    parsed = parse_cluster_name(cluster) if cluster else None
    what = (f"Cluster {cluster or '(unknown)'} has no healthy endpoint, so Envoy answers 503 UH "
            "(no_healthy_upstream).")
    cmds = [f"istioctl proxy-config endpoints {_client(proxy)}" + (f' --cluster "{cluster}"' if cluster else "")]
    if parsed is None:
        f = ctx.findings_for("IST0173", "MLB0006", "MLB0007")
        return Cause(label, 0, 0, what, f[0].message if f else "", f[0].fix if f else "", cmds,
                     [f[0].origin] if f else [])
    _, port, subset, host = parsed
    svc = ctx.snap.service_for_host(host, "default")
    eps = env.endpoints.get(cluster, [])
    ejected = [e for e in eps if (cluster, str(e.get("endpoint"))) in env.outlier_failed]
    if svc is not None:
        cmds.append(f"kubectl get endpoints {svc.name} -n {svc.namespace}")
    if eps and len(ejected) == len(eps):
        drs = ctx.drs_for_host(host)
        od = next((dr for dr in drs if dr.spec.traffic_policy and dr.spec.traffic_policy.outlier_detection), None)
        pods = [ctx.pod_by_ip(str(e.get("endpoint", "")).rsplit(":", 1)[0]) for e in ejected]
        names = ", ".join(p.name for p in pods if p is not None) or ", ".join(str(e.get("endpoint")) for e in ejected)
        why = (f"All {len(eps)} endpoint(s) were ejected by outlier detection ({names})"
               + (f", configured in {_ref(od)} spec.trafficPolicy.outlierDetection" if od else "")
               + "; with Istio's panic threshold 0 Envoy does not fall back to ejected hosts.")
        return Cause(label, 0, 0, what, why,
                     "Fix the failing pods; ejections end after baseEjectionTime. Lower maxEjectionPercent to "
                     "keep some hosts in rotation.", cmds + [f"istioctl proxy-config endpoints {_client(proxy)} "
                                                           f"--cluster \"{cluster}\" -o json | grep outlier"],
                     [_ref(od)] if od else [])
    if svc is None:
        return Cause(label, 0, 0, what, f"{host} is not a Kubernetes Service in the lab.", "", cmds)
    pods = ctx.snap.service_pods(svc)
    labels: dict[str, str] = {}
    dr_ref = ""
    if subset:
        for dr in ctx.drs_for_host(host):
            sub = dr.subset(subset)
            if sub is not None:
                labels, dr_ref = dict(sub.labels), _ref(dr)
                break
    chosen = [p for p in pods if labels_match(labels, p.labels)]
    ready = [p for p in chosen if p.ready and p.phase == "Running"]
    objs = [o for o in (dr_ref, _ref(svc)) if o]
    if not pods:
        why = (f"Service {svc.namespace}/{svc.name} selects {selector_string(svc.spec.selector or {})}, "
               "which no pod carries.")
        fix = "Fix the Service's spec.selector or deploy pods with those labels."
    elif subset and not chosen:
        have = sorted({f"{k}={v}" for p in pods for k, v in p.labels.items() if k in labels})
        why = (f"Subset {subset!r} in {dr_ref} selects {selector_string(labels)}, but no pod of Service "
               f"{svc.namespace}/{svc.name} carries it" + (f" (they have {', '.join(have)})" if have else "") + ".")
        fix = (f"Fix the subset's labels in {dr_ref} (spec.subsets[name={subset}].labels) or deploy pods with "
               "those labels.")
        cmds.append(f"kubectl get pods -n {svc.namespace} -l {selector_string(svc.spec.selector or {})} --show-labels")
    elif not ready:
        why = (f"The {len(chosen)} matching pod(s) ({', '.join(p.name for p in chosen[:3])}) are not ready, so they "
               "are not in the endpoints Envoy gets.")
        fix = "Make the pods ready (readiness probe), or route elsewhere meanwhile."
        cmds.append(f"kubectl get pods -n {svc.namespace} -o wide")
    else:
        why = ("The lab's pods match now: the requests arrived while no endpoint was ready (pods starting or "
               "restarting), or the endpoints had not been pushed yet.")
        fix = "Retry once the endpoints are back; add outlierDetection/retries for resilience."
    return Cause(label, 0, 0, what, why, fix, cmds, objs)


# ------------------------------------------------------------------------------------------ FI, UT

def _rules_for(ctx: _Context, grp: list[dict[str, Any]]) -> list[tuple[VirtualService, int]]:
    """VirtualService http rules the group's requests went through (by route name, else by host)."""
    names = {_s(r.get("route")) for r in grp}
    hosts = {parse_cluster_name(_s(r.get("cluster")))[3] for r in grp if parse_cluster_name(_s(r.get("cluster")))}
    if ctx.url_host():
        hosts.add(to_fqdn(ctx.url_host(), ctx.attrs.get("namespace") or "default"))
    out = []
    for vs in ctx.snap.virtual_services:
        ns = vs.namespace or "default"
        covers = any(to_fqdn(h, ns) in hosts for h in vs.spec.hosts)
        for i, rule in enumerate(vs.spec.http):
            if (rule.name and rule.name in names) or covers:
                out.append((vs, i))
    return out


def _fault_rules(ctx: _Context, grp: list[dict[str, Any]], kind: str) -> str:
    for vs, i in _rules_for(ctx, grp):
        fault = vs.spec.http[i].fault
        part = getattr(fault, kind, None) if fault else None
        if part is not None:
            pct = part.percentage.value if part.percentage else None
            detail = (f"fixedDelay {part.fixed_delay}" if kind == "delay" else f"httpStatus {part.http_status}")
            return f"{_ref(vs)} spec.http[{i}].fault.{kind} ({detail}, percentage {pct if pct is not None else 'unset'})"
    return ""


def _fi(ctx: _Context, label: str, grp: list[dict[str, Any]], status: int) -> Cause:
    src = _fault_rules(ctx, grp, "abort")
    return Cause(label, 0, 0, f"Envoy's fault filter answered {status} itself (FI, fault_filter_abort): these "
                 "requests never reached a pod.",
                 f"Fault injection in {src}." if src else "A VirtualService fault.abort matched these requests.",
                 "Remove the fault (or lower its percentage) when the experiment is over.",
                 ["kubectl get virtualservices -A -o yaml | grep -A6 fault"],
                 [src.split(" spec.")[0]] if src else [])


def _ut(ctx: _Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    lat = sorted(float(r.get("latency_ms") or 0) for r in grp)
    med = lat[len(lat) // 2] if lat else 0
    src = ""
    for vs, i in _rules_for(ctx, grp):
        rule = vs.spec.http[i]
        if rule.timeout or (rule.retries and rule.retries.per_try_timeout):
            bits = [f"timeout {rule.timeout}"] if rule.timeout else []
            if rule.retries and rule.retries.per_try_timeout:
                bits.append(f"retries.perTryTimeout {rule.retries.per_try_timeout}")
            src = f"{_ref(vs)} spec.http[{i}] ({', '.join(bits)})"
            break
    pods = _pods_of(grp) or ", ".join(sorted({p.name for r in grp
                                             for p in [ctx.pod_by_ip(_s(r.get("upstream")).rsplit(":", 1)[0])]
                                             if p is not None}))
    return Cause(label, 0, 0, f"The upstream did not answer in time, so Envoy gave up with 504 UT "
                 f"(upstream_response_timeout) after about {med:.0f} ms.",
                 (f"The route timeout comes from {src}" if src else "A route timeout is set")
                 + (f"; the pods ({pods}) answer more slowly than that." if pods else "; the pods answer more slowly."),
                 "Raise the timeout, or make the slow pods faster (or route away from them).",
                 [f"istioctl proxy-config routes {_client(proxy)} -o json | grep -i timeout"],
                 [src.split(" spec.")[0]] if src else [])


# ---------------------------------------------------------------------------------------------- NR

def _nr(ctx: _Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    host = ctx.url_host()
    cmds = [f"istioctl proxy-config routes {_client(proxy)}"]
    if proxy == "gateway":
        gws = ctx.snap.gateways
        bound = [vs for vs in ctx.snap.virtual_services if any(
            g.split("/")[-1] in {gw.name for gw in gws} for g in vs.spec.gateways)]
        if not bound:
            why = ("No VirtualService is bound to the Gateway (spec.gateways), so the gateway has a virtual "
                   "host with no routes for this host/port.")
        else:
            why = (f"The VirtualServices bound to the gateway ({', '.join(_ref(v) for v in bound)}) have no rule "
                   f"matching this request" + (f" for host {host!r}" if host else "") + ": either the host is not in "
                   "their spec.hosts / the Gateway's servers[].hosts, or no http match fits the path/headers.")
        return Cause(label, 0, 0, "The gateway found no route for the request: 404 NR (route_not_found).", why,
                     "Bind a VirtualService to the Gateway with the request's host in spec.hosts and a rule "
                     "that matches (end with a rule without match as the default).", cmds + ["istioctl analyze"],
                     [_ref(v) for v in bound])
    fq = to_fqdn(host, ctx.attrs.get("namespace") or "default") if host else ""
    vss = [vs for vs in (ctx.vss_for_host(fq) if fq else ctx.snap.virtual_services)
           if vs.spec.http and applies_to_mesh(vs)]
    if vss:
        vs = vss[0]
        matches = [f"#{i}" + (f" {r.name!r}" if r.name else "") for i, r in enumerate(vs.spec.http) if r.match]
        why = (f"{_ref(vs)} covers this host but none of its http rules matched the request "
               f"(rules with matches: {', '.join(matches) or 'none'}); when a VirtualService exists Istio adds no "
               "default route.")
        return Cause(label, 0, 0, "No route matched: 404 NR (route_not_found).", why,
                     "Add a last http rule without `match` that routes to the default destination.", cmds,
                     [_ref(vs)])
    return Cause(label, 0, 0, "No route matched: 404 NR (route_not_found).",
                 "The virtual host for this request has no route that matches it.",
                 "Add a catch-all rule (no match) at the end of the VirtualService.", cmds)


# ---------------------------------------------------------------------------------------------- UO

def _uo(ctx: _Context, label: str, grp: list[dict[str, Any]]) -> Cause:
    cluster = next((_s(r.get("cluster")) for r in grp if _s(r.get("cluster"))), "")
    parsed = parse_cluster_name(cluster) if cluster else None
    src, limits = "", []
    if parsed:
        for dr in ctx.drs_for_host(parsed[3]):
            pols = [dr.spec.traffic_policy] + [s.traffic_policy for s in dr.spec.subsets if s.name == parsed[2]]
            for tp in pols:
                cp = tp.connection_pool if tp else None
                if cp is None:
                    continue
                src = _ref(dr)
                if cp.tcp and cp.tcp.max_connections is not None:
                    limits.append(f"tcp.maxConnections {cp.tcp.max_connections}")
                if cp.http:
                    for attr, nm in (("http1_max_pending_requests", "http1MaxPendingRequests"),
                                     ("http2_max_requests", "http2MaxRequests"),
                                     ("max_requests_per_connection", "maxRequestsPerConnection")):
                        v = getattr(cp.http, attr)
                        if v is not None:
                            limits.append(f"http.{nm} {v}")
    return Cause(label, 0, 0, f"Envoy's circuit breaker for {cluster or 'the cluster'} was full, so it rejected "
                 "these requests at once with 503 UO (overflow); they were not retried.",
                 (f"{src} spec.trafficPolicy.connectionPool sets {', '.join(limits)}; more requests were in "
                  "flight than that allows." if src else "A DestinationRule connectionPool limit was exceeded."),
                 "Raise the connectionPool limits, or send fewer concurrent requests.",
                 ["kubectl exec <client-pod> -c istio-proxy -- pilot-agent request GET stats | grep overflow"],
                 [src] if src else [])


# ------------------------------------------------------------------------------------------- UF/URX

def _uf(ctx: _Context, label: str, grp: list[dict[str, Any]], proxy: str, flags: set[str]) -> Cause:
    ups = Counter(_s(r.get("upstream")) for r in grp if _s(r.get("upstream")))
    pods = [ctx.pod_by_ip(u.rsplit(":", 1)[0]) for u in ups]
    names = [p.name for p in pods if p is not None]
    dead = [p.name for p in pods if p is not None and p.phase != "Running"]
    retried = "URX" in flags
    what = ("Envoy could not connect to the pod" + ("s" if len(ups) > 1 else "") +
            (f" {', '.join(names)}" if names else (f" {', '.join(ups)}" if ups else "")) +
            (" and gave up after its retries (UF,URX)." if retried else " (UF, upstream connect failure)."))
    if dead:
        one = len(dead) == 1
        why = (f"{', '.join(dead)} {'is' if one else 'are'} not running ({'its process is' if one else 'their processes are'} "
               f"dead) but still in the endpoints until the readiness probe fails; connecting is refused.")
    else:
        why = ("The endpoint refused or timed out the connection: the app is down or not listening on the "
               "Service's targetPort.")
    if retried:
        why += " Istio's default policy retried on other hosts (2 retries), and every attempt failed."
    cmds = [f"istioctl proxy-config endpoints {_client(proxy)}", "kubectl get pods -o wide"]
    if names:
        cmds.append(f"kubectl logs {names[0]}")
    return Cause(label, 0, 0, what, why,
                 "Restart or fix the pod; outlierDetection in the DestinationRule ejects such hosts quickly.", cmds)

