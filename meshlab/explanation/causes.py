"""The causes explain names, each with a stable code (`CAUSES`), and the ones for failures.

Each function reads the group's rows and the `Context` (objects, pods, live Envoy config) and says
what happened, which object and field caused it, and the fix — from what the lab holds, never from
the status code alone: NC names the route and the missing cluster and says why it is missing, UH
names the cluster without a healthy endpoint and why, and so on. Successful requests are explained
in `routing.py`, every other Envoy flag in `flags.py`; `explain()` puts a group's causes together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..analysis.snapshot import applies_to_mesh, route_destinations
from ..names import labels_match, parse_cluster_name, selector_string, to_fqdn, zone_of
from ..objects import VirtualService
from .context import Context, client, ref, text

@dataclass
class Cause:
    """One outcome group: its stable `code` (`CAUSES`), what happened, which object and field caused
    it, the fix, and what you would run on a real cluster to see the same thing."""

    code: str                    # "NC.undefined-subset": stable, what tests and tools compare
    outcome: str                 # "503 NC", "200", "dns", …
    what: str                    # what happened, in one sentence
    why: str = ""                # which object and field caused it
    fix: str = ""
    commands: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)    # "VirtualService default/reviews"
    ok: bool = False
    count: int = 0               # requests in the group, and their share of the probe
    share: float = 0.0
    findings: list[str] = field(default_factory=list)   # what `meshlab analyze` / istioctl say about them
    fields: list[str] = field(default_factory=list)     # the fields it rests on: "spec.http[0]", …
    #: How answered requests split where the pods they could reach differ: {"version": {"v1": 24,
    #: "v2": 6}}, {"zone": {"eu-west-b": 28}} or both (`split_of`); {} for other causes.
    split: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The rest of the same requests' story, each with its own code: a cause per other Envoy flag
    #: (`503 DI,NC`: the NC cause, and DI's here), the other routes taken, the DestinationRule
    #: policy that applied, the VirtualServices that did not apply and why.
    parts: list[Cause] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        """This cause's code, then its parts' (`["ok.virtualservice-route", "ok.destination-rule-policy"]`)."""
        return [self.code] + [c for p in self.parts for c in p.codes]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "outcome": self.outcome, "count": self.count, "share": self.share,
                "what": self.what, "why": self.why, "fix": self.fix, "commands": list(self.commands),
                "objects": list(self.objects), "fields": list(self.fields), "findings": list(self.findings),
                "split": {k: dict(v) for k, v in self.split.items()}, "parts": [p.code for p in self.parts]}


#: Every cause explain can name: code → what it means. The part before the dot is the outcome
#: (Envoy's response flag, the client's error, `ok`, `app`) or `note` (something a learner may have
#: expected that did not happen), the rest the reason.
CAUSES: dict[str, str] = {
    # ---- requests that got through: the route, the policy (routing.py)
    "ok": "answered by the pods (no Envoy evidence of the route taken)",
    "ok.virtualservice-route": "a VirtualService rule matched and routed the requests",
    "ok.httproute-rule": "an HTTPRoute rule matched and routed the requests (at a Gateway, or in the mesh)",
    "ok.grpcroute-rule": "a GRPCRoute rule (its method match is a match on the path /<service>/<method>) matched "
                         "and routed the requests",
    "ok.default-route": "no VirtualService applies: Istio's default route to the Service's endpoints",
    "ok.tcp-proxy": "a TCP port: the sidecar's tcp_proxy forwarded each connection, no HTTP routing",
    "ok.kube-proxy": "no sidecar on the path: kube-proxy picked a pod per connection",
    "ok.retried": "some requests succeeded only after Envoy retried them on another pod",
    "note.non-idempotent-retried": "POST/PATCH requests were retried: the app may have executed them more than once",
    "note.retry-hides-keepalive-race": "retryOn reset answered keep-alive races with a second attempt: the race is still there",
    "ok.locality-priority": "Envoy served every request from the client's closest locality (priority 0)",
    "ok.locality-failover": "some requests went to a farther locality because the closest endpoints were unhealthy",
    "ok.failover-after-ejection": "outlier detection ejected the client's closest endpoints (priority 0), and Envoy "
                                  "moved their requests to the next priority (another zone)",
    "note.locality-failover-without-outlier-detection": "locality failover configured without outlierDetection: no priorities",
    "note.hash-not-sticky-across-subsets": "a weighted split between hashed subsets: a key is sticky per subset, not per pod",
    "ok.destination-rule-policy": "a DestinationRule's policy applied to the cluster (which blocks, from where)",
    "ok.destination-rule-no-policy": "a DestinationRule applies (subsets) but sets no policy for the cluster",
    "ok.no-destination-rule": "no DestinationRule applies: the cluster has Istio's defaults",
    # ---- VirtualServices that did not apply where a learner may expect them (routing.py)
    "note.vs-gateway-only": "the VirtualService is bound to gateways only (no `mesh`): sidecars ignore it",
    "note.vs-mesh-only": "the VirtualService is not bound to the gateway the request came through",
    "note.vs-other-gateway": "the VirtualService is bound to gateways that are not the ingress gateway",
    "note.gateway-ref-namespace": "a `gateways` name without namespace means one in the VirtualService's namespace",
    "note.vs-host-not-matched": "the VirtualService's hosts do not cover the host the request was for",
    "note.vs-not-exported": "the VirtualService's exportTo leaves out the client's namespace",
    "note.vs-shadowed": "another VirtualService for the same host was used (one per host for sidecars)",
    "note.vs-no-route-for-client": "the VirtualService applies, but Envoy used the default route for this client",
    "note.no-sidecar": "VirtualService/DestinationRule exist for the host, but no Envoy was on the path",
    "app.error-status": "the application itself answered an error status (Envoy passed it through)",
    "dns.no-service": "no Service has that name in the client's namespace",
    "dns.virtualservice-host-is-no-name": "the name is a VirtualService host, which creates no DNS name",
    "dns.service-in-another-namespace": "a Service of that name exists only in another namespace",
    "refused.no-service-port": "the Service has no such port: no listener, no kube-proxy rule",
    "refused.selector-matches-no-pod": "the Service's selector matches no pod: no endpoints",
    "refused.no-ready-pod": "every pod of the Service is unready: no endpoints",
    "refused.dead-pod": "kube-proxy picked a pod whose process is dead but still listed",
    "refused.pod-refused": "the chosen pod refused the connection (targetPort vs the app's port)",
    "refused.nothing-listening": "nothing listened at the address dialled",
    "refused.gateway-server-not-modelled": "a Gateway declares the port, but the local gateway serves HTTP only",
    "refused.no-gateway-server-on-port": "no Gateway selecting the ingress gateway has a server on that port",
    "refused.no-gateway": "no Gateway selects the ingress gateway, so it listens on nothing",
    "timeout.no-route-timeout": "the client gave up; Istio sets no route timeout by default",
    "reset.connection-reset": "the connection was reset before an answer",
    "NC.undefined-subset": "the route names a subset no DestinationRule defines",
    "NC.no-service": "the route names a host that is no Service or ServiceEntry",
    "NC.no-service-port": "the route names a port the Service does not have",
    "NC.destination-without-port": "the route's destination names no port: the cluster took the listener's port, which "
                                   "the Service does not have",
    "NC.route-before-cluster": "the route reached the proxy before its cluster (apply order, warming)",
    "NC.destination-rule-not-visible": "the DestinationRule defining the subset is not visible to this proxy",
    "NC.cluster-not-pushed": "the cluster is absent from the proxy's config",
    "NC.cluster-not-found": "the route names a cluster Envoy does not have (no live view to say more)",
    "UH.outlier-ejected": "every endpoint was ejected by outlier detection (not an empty subset: the pods are there)",
    "note.ejection-capped": "outlier detection wanted to eject, but maxEjectionPercent (10 % by default) forbade it",
    "note.not-a-gateway-error": "consecutiveGatewayErrors counts 502, 503, 504 only: these errors never eject",
    "NC.backend-not-found": "an HTTPRoute backendRef names a Service that does not exist: 500 (ResolvedRefs False, "
                            "BackendNotFound)",
    "NC.backend-not-permitted": "an HTTPRoute backendRef points into another namespace without a ReferenceGrant: "
                                "500 (ResolvedRefs False, RefNotPermitted)",
    "UH.selector-matches-no-pod": "the Service's selector matches no pod",
    "UH.subset-matches-no-pod": "the subset's labels match no pod of the Service",
    "UH.no-ready-endpoints": "the matching pods are not ready",
    "UH.target-port-not-declared": "the Service's named targetPort is a container port no pod declares: no endpoints",
    "UH.endpoints-were-missing": "no endpoint was ready when the requests arrived (pods starting, not pushed)",
    "UH.not-a-service": "the cluster's host is not a Kubernetes Service of the lab",
    "UH.no-healthy-endpoint": "the cluster had no healthy endpoint (no live view to say more)",
    "UF.dead-pod": "Envoy could not connect: the pod's process is dead but still in the endpoints",
    "UF.connect-failure": "Envoy could not connect: the app is down or not on the targetPort",
    "UC.upstream-reset": "the upstream connection was closed before a full answer",
    "UC.keepalive-race": "the app closed an idle keep-alive connection just as Envoy reused it (idleTimeout ≥ the app's)",
    "FI.fault-abort": "a VirtualService fault.abort answered instead of a pod",
    "UT.route-timeout": "the route timeout fired before the upstream answered (retries included)",
    "UT.per-try-timeout": "one attempt's perTryTimeout fired and was not retried (or every retry timed out)",
    "UO.circuit-breaker": "a DestinationRule connectionPool limit was full",
    "NR.no-virtualservice-for-gateway": "no VirtualService is bound to the Gateway",
    "NR.gateway-ref-wrong-namespace": "the VirtualService names the Gateway without its namespace: bound to nothing",
    "NR.no-gateway-route": "the VirtualServices bound to the gateway have no rule for the request",
    "NR.no-matching-rule": "the VirtualService covers the host but no rule matched",
    "NR.no-route": "the virtual host has no route for the request",
    "NR.no-httproute-for-host": "no HTTPRoute attached to the Gateway covers the request's host",
    "NR.no-matching-httproute-rule": "an HTTPRoute covers the host but none of its rules matched (PathPrefix is "
                                     "segment-based)",
    # ---- every other Envoy response flag (flags.py)
    "DI.fault-delay": "a VirtualService fault.delay held the requests first",
    "URX.retries-exhausted": "Envoy retried up to the route's retry limit and every attempt failed",
    "DC.downstream-closed": "the client closed its connection before Envoy finished",
    "DC.client-timeout": "the client gave up first: its timeout was shorter than the route's (none by default)",
    "UR.upstream-remote-reset": "the upstream reset the stream",
    "LR.local-reset": "Envoy reset the connection itself",
    "DT.max-duration": "the request or connection exceeded a maximum duration",
    "LH.local-health-check": "the local service failed its health check",
    "RL.rate-limited": "a local rate limit rejected the request",
    "UAEX.ext-authz-denied": "an external authorization service denied the request",
    "RLSE.rate-limit-service-error": "the rate limit service failed",
    "IH.invalid-envoy-header": "a strictly checked x-envoy-* header had an invalid value",
    "SI.stream-idle-timeout": "the stream idle timeout fired",
    "DPE.downstream-protocol-error": "the client's request broke the HTTP protocol",
    "UPE.upstream-protocol-error": "the upstream's response broke the HTTP protocol",
    "UMSDR.max-stream-duration": "the upstream request reached its maximum stream duration",
    "RFCF.from-cache": "the response came from Envoy's cache filter",
    "NFCF.no-filter-config": "a filter's configuration had not arrived",
    "OM.overload-manager": "Envoy's overload manager shed the request",
    "DF.dns-resolution-failed": "Envoy could not resolve the upstream's DNS name",
    "DO.drop-overload": "the cluster's drop_overloads policy dropped the request",
    "UDO.unconditional-drop-overload": "the cluster drops every request (drop_overloads at 100 %)",
    "DR.downstream-remote-reset": "the client reset the stream",
    "flag.unknown": "an Envoy response flag explain does not know",
    "other.unexplained": "an outcome explain has no reading for yet",
}


# ------------------------------------------------------------------------------------------ shared

def split_of(ctx: Context, grp: list[dict[str, Any]], proxy: str) -> dict[str, dict[str, int]]:
    """How answered requests split, by what tells apart the pods they could have reached — the
    endpoints the proxy had for the group's clusters (Envoy's view; without one, the pods that
    answered): by `version` where those pods carry more than one version, by `zone` (of the endpoint's
    locality, istiod's `region/zone/subzone`) where they live in more than one zone, by version when
    neither differs. Counts, most requests first: `{"zone": {"eu-west-b": 28, "eu-west-a": 2}}`."""
    env = ctx.envoy(proxy) if proxy != "none" else None
    clusters = {text(r.get("cluster")) for r in grp if text(r.get("cluster"))}
    localities = {str(e.get("endpoint")): str(e.get("locality") or "")
                  for c in clusters for e in (env.endpoints.get(c, []) if env is not None else [])}
    pods = {p.name: p for p in ctx.snap.pods}

    def version(r: dict[str, Any]) -> str:
        return text(r.get("version")) or text(r.get("pod")) or "?"

    def zone(r: dict[str, Any]) -> str:
        loc = localities.get(text(r.get("upstream")))
        if loc is None:
            pod = pods.get(text(r.get("pod")))
            loc = pod.locality if pod is not None else ""
        return zone_of(loc) or "?"

    reachable = [p for p in (ctx.pod_by_ip(ep.rsplit(":", 1)[0]) for ep in localities) if p is not None]
    versions = {p.version for p in reachable} if reachable else {version(r) for r in grp}
    zones = {zone_of(loc) for loc in localities.values()} if localities else {zone(r) for r in grp}
    out: dict[str, dict[str, int]] = {}
    if len(versions) > 1 or len(zones) <= 1:
        out["version"] = dict(Counter(version(r) for r in grp).most_common())
    if len(zones) > 1:
        out["zone"] = dict(Counter(zone(r) for r in grp).most_common())
    return out


def answered_by(split: dict[str, dict[str, int]], lead: str = "Answered by the pods") -> str:
    """`split_of` in a sentence: `Answered by the pods: v1 80%, v2 20%.`, `Answered by the pods, by
    zone: eu-west-b 93%, eu-west-a 7%.`, or `…: v1 50%, v2 50%; by zone: …` for both."""
    def shares(c: dict[str, int]) -> str:
        total = sum(c.values())
        return ", ".join(f"{k} {v / total:.0%}" for k, v in c.items())
    if list(split) == ["zone"]:
        return f"{lead}, by zone: {shares(split['zone'])}."
    return f"{lead}: " + "; ".join(("by zone: " if key == "zone" else "") + shares(c) for key, c in split.items()) + "."


def pods_of(grp: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({text(r.get("pod")) for r in grp if text(r.get("pod"))})[:3])


def _outlier_detection_for(ctx: Context, grp: list[dict[str, Any]]) -> Any:
    """The DestinationRule whose top-level outlierDetection applies to the group's clusters, else None."""
    for r in grp:
        parsed = parse_cluster_name(text(r.get("cluster")))
        if parsed is None:
            continue
        for dr in ctx.drs_for_host(parsed[3]):
            if dr.spec.traffic_policy and dr.spec.traffic_policy.outlier_detection:
                return dr
    return None


def app_error(ctx: Context, label: str, grp: list[dict[str, Any]], status: int) -> Cause:
    pods = pods_of(grp)
    logs = [f"kubectl logs {pods.split(', ')[0] if pods else '<pod>'}"]
    if any("URX" in text(r.get("flags")) for r in grp):      # the route's retries ran, and ran out
        return Cause("app.error-status", label,
                     f"The application itself answered {status} on every attempt: Envoy retried as the route's "
                     "retry policy says, ran out (URX), and passed the last answer through.",
                     f"The pods {pods or '(unknown)'} returned errors; retries cannot help when every attempt "
                     "meets a failing pod.",
                     "Fix the app; outlierDetection in the DestinationRule takes a failing pod out while "
                     "others are healthy.", logs)
    od = _outlier_detection_for(ctx, grp)
    if od is not None:       # it is there: ejection could not keep these errors away
        return Cause("app.error-status", label,
                     f"The application itself answered {status} (Envoy passed it through: flag "
                     f"'{text(grp[0].get('flags')) or '-'}', details via_upstream).",
                     f"The pods {pods or '(unknown)'} returned errors. {ref(od)} has outlierDetection, but it "
                     "cannot keep these away: a pod answers consecutive5xxErrors errors before it is ejected, "
                     "maxEjectionPercent may refuse the ejection (ejections_overflow), and a pod comes back "
                     "after baseEjectionTime.",
                     "Fix the app; keep healthy pods where the requests can go (another zone or priority), and "
                     "retries on 5xx in the VirtualService route to move a failed request to one.",
                     logs + ["istioctl proxy-config endpoints <client-pod> -o json | grep outlier"], [ref(od)])
    return Cause("app.error-status", label,
                 f"The application itself answered {status} (Envoy passed it through: flag '-', "
                 "details via_upstream).",
                 f"The pods {pods or '(unknown)'} returned errors; Istio's default retry policy does not retry "
                 "an app's 5xx answer (since Istio 1.24 not even a 503).",
                 "Fix the app, or add `retries: {attempts: 2, retryOn: 5xx}` to the VirtualService route and "
                 "outlierDetection to the DestinationRule to steer around failing pods.", logs)


def client_error(ctx: Context, label: str, grp: list[dict[str, Any]], error: str) -> Cause:
    if error == "timeout":
        return Cause("timeout.no-route-timeout", label,
                     "The client gave up waiting: no answer arrived within the probe's timeout.",
                     "Istio sets no route timeout by default (timeout 0s = wait forever), so a slow or "
                     "delayed upstream keeps the request open.",
                     "Set `timeout:` on the VirtualService http rule to fail fast with 504 UT.",
                     ["istioctl proxy-config routes <client-pod> -o json | grep -i timeout"])
    return Cause("reset.connection-reset", label, "The connection was reset before an answer arrived.",
                 "The pod (or the proxy in front of it) closed the connection: a crashed or restarted pod.",
                 "Check the pod; a sidecar in front would have retried on another pod.",
                 ["kubectl get pods -o wide", "kubectl logs <pod> --previous"])


# ---------------------------------------------------------------------------------------- DNS, refused

def dns(ctx: Context, label: str) -> Cause:
    host = ctx.url_host()
    ns = ctx.attrs.get("namespace") or "default"
    elsewhere = [s for s in ctx.snap.services if s.name == host.split(".")[0]] if host else []
    vs_hosts = [vs for vs in ctx.snap.virtual_services if host and host in vs.spec.hosts]
    why = (f"No Service answers to {host!r} from namespace {ns}" if host else
           "The host name matches no Service") + "; cluster DNS only knows Services (not VirtualService hosts)."
    code = "dns.no-service"
    if vs_hosts:
        code = "dns.virtualservice-host-is-no-name"
        why += (f" {ref(vs_hosts[0])} lists {host!r} in its hosts, but a VirtualService does not create a DNS "
                "name: there must be a Service (or a ServiceEntry with DNS capture).")
    if elsewhere:
        code = "dns.service-in-another-namespace"
        why += " A Service of that name exists in " + ", ".join(f"{s.namespace}" for s in elsewhere) + \
            f": use {elsewhere[0].name}.{elsewhere[0].namespace}."
    return Cause(code, label, "The name did not resolve, so no connection was made and no proxy saw the request.",
                 why, "Create the Service, or call it by a name that resolves (<service>.<namespace>).",
                 [f"kubectl get svc -A | grep {host or '<name>'}", f"kubectl exec <client-pod> -- nslookup {host or '<name>'}"],
                 [ref(v) for v in vs_hosts])


def _url_port(ctx: Context) -> int | None:
    """The port the probed URL named (80 when it named none), or None without a usable URL."""
    url = ctx.url()
    return url.port if url is not None else None


def _gateway_refused(ctx: Context, label: str, port: int | None) -> Cause:
    """The ingress gateway opens a listener only for ports some Gateway's servers declare."""
    mine = ctx.ingress_gateways()
    served = [f"Gateway {g.namespace}/{g.name}: port {srv.port.number} ({srv.port.protocol})"
              for g in mine for srv in g.spec.servers]
    where = f"port {port}" if port is not None else "that port"
    on_port = [srv for g in mine for srv in g.spec.servers if srv.port.number == port]
    if on_port:
        code = "refused.gateway-server-not-modelled"
        why = (f"A Gateway declares {where} ({', '.join(sorted({srv.port.protocol for srv in on_port}))}), but the "
               "local lab's gateway serves plain HTTP only and leaves that server out (see lab.warnings).")
    elif served:
        code = "refused.no-gateway-server-on-port"
        why = (f"The ingress gateway has no listener on {where}: no Gateway selecting it has a server on "
               f"{where}. It listens only where its Gateways say: {'; '.join(served)}.")
    else:
        code = "refused.no-gateway"
        why = (f"The ingress gateway has no listener on {where}: there is no Gateway with selector "
               "istio: ingressgateway, and without one the gateway listens on nothing.")
    return Cause(code, label, "The ingress gateway refused the connection.", why,
                 "Add a server for that port to a Gateway selecting istio: ingressgateway (and bind a "
                 "VirtualService to it), or call a port a Gateway declares.",
                 ["kubectl get gateways.networking.istio.io -A",
                  "istioctl proxy-config listeners deploy/istio-ingressgateway -n istio-system"],
                 [ref(g) for g in mine])


def _no_service_port(ctx: Context, label: str, *, through_sidecar: bool) -> Cause | None:
    """The URL names a port its Service does not have: no kube-proxy rule and no listener exist, so
    nothing answers (a sidecar passes the connection through to the ClusterIP and gets refused)."""
    host = ctx.url_host()
    svc = ctx.snap.state.resolve_host(host, ctx.attrs.get("namespace") or "default") if host else None
    port = _url_port(ctx)
    if svc is None or port is None or svc.port(port) is not None:
        return None
    ports = [p.port for p in svc.spec.ports]
    good = f"http://{host}:{ports[0]}/" if ports else ""
    how = ("the sidecar found no listener for it and passed the connection through (PassthroughCluster) to "
           "the ClusterIP, where nothing answers (UF): no pod was ever chosen." if through_sidecar else
           "no listener or kube-proxy rule exists for it and no pod was ever chosen.")
    return Cause("refused.no-service-port", label, "Nothing answered on the port the URL names.",
                 f"Service {svc.namespace}/{svc.name} has no port {port} (its ports: "
                 f"{', '.join(map(str, ports)) or 'none'}), so {how}",
                 f"Call a port the Service declares{' (' + good + ')' if good else ''}; a Service's port "
                 "is not its pods' targetPort.",
                 [f"kubectl get svc {svc.name} -n {svc.namespace}"], [ref(svc)])


def refused(ctx: Context, label: str, grp: list[dict[str, Any]]) -> Cause:
    host = ctx.url_host()
    ns = ctx.attrs.get("namespace") or "default"
    svc = ctx.snap.state.resolve_host(host, ns) if host else None
    candidates = [svc] if svc is not None else [
        s for s in ctx.snap.services if not ctx.snap.is_synthetic_obj(s) and s.spec.selector
        and not any(p.ready and p.phase == "Running" for p in ctx.snap.service_pods(s))]
    port = _url_port(ctx)
    if ctx.attrs.get("via") == "gateway":
        return _gateway_refused(ctx, label, port)
    found = _no_service_port(ctx, label, through_sidecar=False)
    if found is not None:
        return found
    if candidates:
        s = candidates[0]
        pods = ctx.snap.service_pods(s)
        dead = [p for p in pods if p.phase != "Running"]
        unready = [p for p in pods if not p.ready]
        if not pods:
            code = "refused.selector-matches-no-pod"
            why = (f"Service {s.namespace}/{s.name} selects {selector_string(s.spec.selector or {})} but no pod "
                   "has those labels, so it has no endpoints and kube-proxy rejects the connection.")
            fix = "Fix the Service's spec.selector or the pods' labels."
        elif len(unready) == len(pods):
            code = "refused.no-ready-pod"
            why = (f"All pods of Service {s.namespace}/{s.name} are not ready ({', '.join(p.name for p in pods[:3])}), "
                   "so it has no ready endpoints and kube-proxy rejects the connection.")
            fix = "Make a pod ready again (fix the readiness probe / restart the pod)."
        elif dead:
            code = "refused.dead-pod"
            why = (f"kube-proxy sent some connections to {', '.join(p.name for p in dead[:3])}, whose process is "
                   "dead but still listed until its readiness probe fails; nothing listens, so the pod refuses.")
            fix = "Wait for the endpoint to go, or restart the pod; a sidecar client would retry on another pod."
        else:
            code = "refused.pod-refused"
            why = f"The connection to Service {s.namespace}/{s.name} was refused by the chosen pod."
            fix = "Check the Service's targetPort against the port the app listens on."
        return Cause(code, label, "The TCP connection was refused (no proxy involved).", why, fix,
                     [f"kubectl get endpoints {s.name} -n {s.namespace}",
                      f"kubectl get pods -n {s.namespace} -l {selector_string(s.spec.selector or {})} -o wide"],
                     [ref(s)])
    return Cause("refused.nothing-listening", label, "The TCP connection was refused.",
                 "Nothing listened at the address the client dialled (a Service without ready endpoints, or a "
                 "dead pod).", "Check the Service's endpoints.", ["kubectl get endpoints -A"])


# ---------------------------------------------------------------------------------------------- NC

def nc(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str, all_rows: list[dict[str, Any]]) -> Cause:
    env = ctx.envoy(proxy)
    route_name = text(grp[0].get("route"))
    named = [c for r in grp for c in [text(r.get("cluster"))] if c]
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
        return Cause("NC.cluster-not-found", label,
                     "Envoy found the route but not the cluster it names (503 NC, cluster_not_found).",
                     why, f[0].fix if f else "Check the route's destination host and subset.",
                     ["istioctl analyze", f"istioctl proxy-config clusters {client(proxy)}"],
                     [f[0].origin] if f else [])
    cluster = missing[0]
    parsed = parse_cluster_name(cluster)
    vs = ctx.vs_by_ref(vs_refs[0]) if vs_refs else None
    by = " of ".join(x for x in ((f"Route {route_name!r}" if route_name else ""), (ref(vs) if vs else "")) if x)
    what = (f"{by or 'The route'} sends requests to cluster {cluster}, which this {proxy} does not have, so "
            "Envoy answers 503 NC (cluster_not_found).")
    cmds = ["istioctl analyze", f"istioctl proxy-config routes {client(proxy)} -o json",
            f"istioctl proxy-config clusters {client(proxy)}" + (f" --fqdn {parsed[3]}" if parsed else "")]
    objs = [ref(vs)] if vs else []
    if parsed is None:
        return Cause("NC.cluster-not-found", label, what, "", "", cmds, objs)
    _, port, subset, host = parsed
    reg = ctx.snap.destination_host("default", [], host)
    svc = ctx.snap.service_for_host(host, "default")
    if reg is None:
        why = (f"There is no Service or ServiceEntry {host}: istiod builds no cluster for it, but the route "
               f"still names one.")
        if host.count(".") == 1:
            why += f" ({host!r} is not expanded: Istio only expands names without a dot.)"
        fix = "Create the Service, or point the route's destination.host at an existing one."
        return Cause("NC.no-service", label, what, why, fix, cmds + ["kubectl get svc -A"], objs)
    if svc is not None and port is not None and svc.port(port) is None:
        ports = ", ".join(str(p.port) for p in svc.spec.ports)
        field = _destination_without_port(vs, host, subset) if vs is not None else None
        if field is not None:
            how = ("a sidecar's route configuration for that port holds only the Services that have it"
                   if proxy == "sidecar" else "the Service has several ports")
            why = (f"{field} of {ref(vs)} names no port, and Service {svc.namespace}/{svc.name} has no port {port} "
                   f"(it has {ports}): {how}, so the destination took the listener's port {port} "
                   "(route.GetDestinationCluster).")
            to = ports if len(svc.spec.ports) == 1 else f"one of the Service's ports ({ports})"
            return Cause("NC.destination-without-port", label, what, why, f"Set {field}.port.number to {to}.",
                         cmds, objs + [ref(svc)], fields=[field])
        why = (f"Service {svc.namespace}/{svc.name} has no port {port} (it has {ports}); the cluster name takes the "
               "destination's port, or the listener's when the destination names none.")
        return Cause("NC.no-service-port", label,
                     what, why, "Set destination.port.number to one of the Service's ports.",
                     cmds, objs + [ref(svc)])
    if subset:
        drs = ctx.drs_for_host(host)
        defining = [dr for dr in drs if dr.subset(subset) is not None]
        if not defining:
            have = sorted({s.name for dr in drs for s in dr.spec.subsets})
            why = (f"No DestinationRule defines subset {subset!r} for {host}"
                   + (f" (defined: {', '.join(have)} in {', '.join(ref(d) for d in drs)})" if drs else
                      " (there is no DestinationRule for this host at all)") + ".")
            fix = (f"Add subset {subset!r} (with the pods' labels) to the DestinationRule, or route to an existing "
                   "subset. Apply the DestinationRule first, then the VirtualService.")
            return Cause("NC.undefined-subset", label, what, why, fix, cmds + ["kubectl get destinationrules -A"],
                         objs + [ref(d) for d in drs])
        later_ok = _later_success(grp, all_rows)
        if not env.cluster_missing(cluster) or later_ok:
            why = (f"{ref(defining[0])} defines subset {subset!r}, but when these requests arrived Envoy had the "
                   "route before the cluster: the VirtualService was applied (or pushed) before the "
                   "DestinationRule, or the new cluster was still warming.")
            fix = ("Make before break: apply the DestinationRule subset first, wait a moment, then the "
                   "VirtualService (and remove in the opposite order).")
            return Cause("NC.route-before-cluster", label, what, why, fix, cmds, objs + [ref(defining[0])])
        why = (f"{ref(defining[0])} defines subset {subset!r}, yet this proxy has no such cluster: the "
               "DestinationRule may not be visible to it (exportTo, namespace) or not pushed yet.")
        return Cause("NC.destination-rule-not-visible", label,
                     what, why, "Check the DestinationRule's namespace and exportTo.", cmds,
                     objs + [ref(defining[0])])
    return Cause("NC.cluster-not-pushed", label,
                 what, "The cluster is absent from the proxy's config (not pushed yet, or not "
                 "visible to this proxy).", "Check exportTo and the order things were applied in.", cmds, objs)


def _destination_without_port(vs: VirtualService, host: str, subset: str | None) -> str | None:
    """The field of `vs`'s first http route destination to `host` (an FQDN) and `subset` that names
    no port, if one does."""
    ns = vs.namespace or "default"
    return next((d.field for d in route_destinations(vs) if d.section == "http" and d.port is None
                 and to_fqdn(d.host, ns) == host and d.subset == (subset or "")), None)


def _nc_window(ctx: Context, label: str, grp: list[dict[str, Any]], all_rows: list[dict[str, Any]], proxy: str,
               route_name: str) -> Cause | None:
    """NC while every cluster the routes name exists now: the route arrived before its cluster."""
    last_nc = max(float(r.get("t") or 0) for r in grp)
    later = Counter(text(r.get("cluster")) for r in all_rows
                    if 200 <= int(r.get("status") or 0) < 500 and float(r.get("t") or 0) > last_nc
                    and text(r.get("route")) == route_name and text(r.get("cluster")))
    if not later:
        return None
    cluster = later.most_common(1)[0][0]
    parsed = parse_cluster_name(cluster)
    dr = None
    if parsed and parsed[2]:
        dr = next((d for d in ctx.drs_for_host(parsed[3]) if d.subset(parsed[2]) is not None), None)
    first_ok = min(float(r.get("t") or 0) for r in all_rows if text(r.get("cluster")) == cluster)
    what = (f"For {last_nc - min(float(r.get('t') or 0) for r in grp):.2f} s the route sent requests to a cluster "
            f"this {proxy} did not have yet (503 NC, cluster_not_found); from t={first_ok:.2f} s they reached "
            f"{cluster}.")
    why = ((f"Subset {parsed[2]!r} comes from {ref(dr)}: the route naming it was live before the cluster — the "
            "VirtualService was applied (or pushed) before the DestinationRule, or the new cluster was still "
            "warming.") if dr else
           "The route was live before its cluster existed (config applied in the wrong order).")
    return Cause("NC.route-before-cluster", label, what, why,
                 "Make before break: apply the DestinationRule (subsets) first, wait for it to reach the proxies, "
                 "then the VirtualService that uses them; on removal, the VirtualService first.",
                 ["istioctl analyze", f"istioctl proxy-config clusters {client(proxy)}",
                  "kubectl get destinationrules,virtualservices -A"], [ref(dr)] if dr else [])


def _nc_gone(ctx: Context, label: str, cluster: str, proxy: str) -> Cause:
    """The route's cluster exists now, but did not when the requests were sent."""
    parsed = parse_cluster_name(cluster)
    dr = None
    if parsed and parsed[2]:
        dr = next((d for d in ctx.drs_for_host(parsed[3]) if d.subset(parsed[2]) is not None), None)
    return Cause("NC.route-before-cluster", label,
                 f"The route sends requests to {cluster}; Envoy has that cluster now, but did not when "
                 "these requests were sent (503 NC, cluster_not_found).",
                 (f"Its subset comes from {ref(dr)}, which reached the proxy after the route that uses it: "
                  "applied in the wrong order, or the cluster was still warming." if dr else
                  "The route reached the proxy before its cluster: applied in the wrong order."),
                 "Make before break: DestinationRule first, then the VirtualService; on removal the reverse.",
                 [f"istioctl proxy-config clusters {client(proxy)}"], [ref(dr)] if dr else [])


def _later_success(grp: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> bool:
    """NC only early in the probe, 2xx afterwards: a make-before-break window."""
    last_nc = max(float(r.get("t") or 0) for r in grp)
    return any(200 <= int(r.get("status") or 0) < 400 and float(r.get("t") or 0) > last_nc for r in all_rows)


# ---------------------------------------------------------------------------------------------- UH

def uh(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    env = ctx.envoy(proxy)
    cluster = next((text(r.get("cluster")) for r in grp if text(r.get("cluster"))), "")
    parsed = parse_cluster_name(cluster) if cluster else None
    what = (f"Cluster {cluster or '(unknown)'} has no healthy endpoint, so Envoy answers 503 UH "
            "(no_healthy_upstream).")
    cmds = [f"istioctl proxy-config endpoints {client(proxy)}" + (f' --cluster "{cluster}"' if cluster else "")]
    if parsed is None:
        f = ctx.findings_for("IST0173", "MLB0006", "MLB0007")
        return Cause("UH.no-healthy-endpoint", label, what, f[0].message if f else "", f[0].fix if f else "", cmds,
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
               + (f", configured in {ref(od)} spec.trafficPolicy.outlierDetection" if od else "")
               + "; with Istio's panic threshold 0 Envoy does not fall back to ejected hosts.")
        return Cause("UH.outlier-ejected", label, what, why,
                     "Fix the failing pods; ejections end after baseEjectionTime. Lower maxEjectionPercent to "
                     "keep some hosts in rotation.", cmds + [f"istioctl proxy-config endpoints {client(proxy)} "
                                                           f"--cluster \"{cluster}\" -o json | grep outlier"],
                     [ref(od)] if od else [])
    if svc is None:
        return Cause("UH.not-a-service", label, what, f"{host} is not a Kubernetes Service in the lab.", "", cmds)
    pods = ctx.snap.service_pods(svc)
    labels: dict[str, str] = {}
    dr_ref = ""
    if subset:
        for dr in ctx.drs_for_host(host):
            sub = dr.subset(subset)
            if sub is not None:
                labels, dr_ref = dict(sub.labels), ref(dr)
                break
    chosen = [p for p in pods if labels_match(labels, p.labels)]
    ready = [p for p in chosen if p.ready and p.phase == "Running"]
    objs = [o for o in (dr_ref, ref(svc)) if o]
    if not pods:
        code = "UH.selector-matches-no-pod"
        why = (f"Service {svc.namespace}/{svc.name} selects {selector_string(svc.spec.selector or {})}, "
               "which no pod carries.")
        fix = "Fix the Service's spec.selector or deploy pods with those labels."
    elif subset and not chosen:
        code = "UH.subset-matches-no-pod"
        have = sorted({f"{k}={v}" for p in pods for k, v in p.labels.items() if k in labels})
        why = (f"Subset {subset!r} in {dr_ref} selects {selector_string(labels)}, but no pod of Service "
               f"{svc.namespace}/{svc.name} carries it" + (f" (they have {', '.join(have)})" if have else "") + ".")
        fix = (f"Fix the subset's labels in {dr_ref} (spec.subsets[name={subset}].labels) or deploy pods with "
               "those labels.")
        cmds.append(f"kubectl get pods -n {svc.namespace} -l {selector_string(svc.spec.selector or {})} --show-labels")
    elif not ready:
        code = "UH.no-ready-endpoints"
        why = (f"The {len(chosen)} matching pod(s) ({', '.join(p.name for p in chosen[:3])}) are not ready, so they "
               "are not in the endpoints Envoy gets.")
        fix = "Make the pods ready (readiness probe), or route elsewhere meanwhile."
        cmds.append(f"kubectl get pods -n {svc.namespace} -o wide")
    elif (undeclared := _undeclared_target_port(svc, port, ready)) is not None:
        # the endpoints controller resolves a named targetPort per pod; none declares it: no endpoint
        code = "UH.target-port-not-declared"
        sp, name = undeclared
        why = (f"Service {svc.namespace}/{svc.name} port {sp.port} has targetPort {name!r}, but none of its "
               f"{len(ready)} ready pod(s) ({', '.join(p.name for p in ready[:3])}) declares a container port "
               "with that name, so the port has no endpoints.")
        fix = (f"Set the Service's targetPort to a container port the pods declare (by name or number), or name "
               f"the pods' container port {name!r}.")
        objs = [ref(svc)]
    else:
        enforced = int(env.cluster_stats(cluster).get("outlier_detection.ejections_enforced_total") or 0)
        if enforced:       # ejected when the requests came, back in rotation since (baseEjectionTime)
            od = next((dr for dr in ctx.drs_for_host(host) if dr.spec.traffic_policy
                       and dr.spec.traffic_policy.outlier_detection), None)
            return Cause("UH.outlier-ejected", label, what,
                         f"Outlier detection had ejected the cluster's endpoints when these requests came: Envoy "
                         f"counted {enforced} ejection(s) for {cluster} (outlier_detection.ejections_enforced_total)"
                         + (f", configured in {ref(od)} spec.trafficPolicy.outlierDetection" if od else "")
                         + "; they return after baseEjectionTime, and with Istio's panic threshold 0 Envoy does "
                         "not fall back to ejected hosts meanwhile.",
                         "Fix the failing pods; lower maxEjectionPercent to keep some hosts in rotation.",
                         cmds, [ref(od)] if od else [])
        code = "UH.endpoints-were-missing"
        why = ("The lab's pods match now: the requests arrived while no endpoint was ready (pods starting or "
               "restarting), or the endpoints had not been pushed yet.")
        fix = "Retry once the endpoints are back; add outlierDetection/retries for resilience."
    return Cause(code, label, what, why, fix, cmds, objs)


def _undeclared_target_port(svc: Any, port: Any, pods: list[Any]) -> tuple[Any, str] | None:
    """The Service port of cluster port `port` and its named targetPort when none of `pods` declares
    that name (the EndpointSlice controller then gives the port no endpoint; MLB0012)."""
    for sp in svc.spec.ports:
        if str(sp.port) == str(port) and isinstance(sp.target_port, str):
            if pods and all(p.container_port(sp.target_port) is None for p in pods):
                return sp, sp.target_port
    return None


# ------------------------------------------------------------------------------------------ FI, UT

def rules_for(ctx: Context, grp: list[dict[str, Any]]) -> list[tuple[VirtualService, int]]:
    """VirtualService http rules the group's requests went through (by route name, else by host)."""
    names = {text(r.get("route")) for r in grp}
    hosts = {parse_cluster_name(text(r.get("cluster")))[3] for r in grp if parse_cluster_name(text(r.get("cluster")))}
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


def fault_source(ctx: Context, grp: list[dict[str, Any]], kind: str) -> tuple[VirtualService, str, str] | None:
    """The VirtualService rule whose `fault.<kind>` (`delay` or `abort`) the group's requests met:
    (the VirtualService, the field, what it sets), or None."""
    for vs, i in rules_for(ctx, grp):
        fault = vs.spec.http[i].fault
        part = getattr(fault, kind, None) if fault else None
        if part is not None:
            pct = part.percentage.value if part.percentage else None
            detail = (f"fixedDelay {part.fixed_delay}" if kind == "delay" else f"httpStatus {part.http_status}")
            return vs, f"spec.http[{i}].fault.{kind}", f"{detail}, percentage {pct if pct is not None else 'unset'}"
    return None


def fault(ctx: Context, label: str, grp: list[dict[str, Any]], kind: str, status: int) -> Cause:
    """FI (`kind` "abort": the fault filter answered instead of a pod) or DI ("delay": it held the
    requests first), naming the VirtualService rule's `fault` that did it."""
    src = fault_source(ctx, grp, kind)
    code, what = (("FI.fault-abort", f"Envoy's fault filter answered {status} itself (FI, fault_filter_abort): "
                   "these requests never reached a pod.") if kind == "abort" else
                  ("DI.fault-delay", "Envoy's fault filter held these requests for a while before routing them (DI)."))
    return Cause(code, label, what,
                 f"Fault injection in {ref(src[0])} {src[1]} ({src[2]})." if src else
                 f"A VirtualService fault.{kind} matched these requests.",
                 f"Remove the {'fault' if kind == 'abort' else 'delay'} (or lower its percentage) when the "
                 "experiment is over.",
                 ["kubectl get virtualservices -A -o yaml | grep -A6 fault"],
                 [ref(src[0])] if src else [], fields=[src[1]] if src else [])


# ---------------------------------------------------------------------------------------------- NR

def nr(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause:
    host = ctx.url_host()
    cmds = [f"istioctl proxy-config routes {client(proxy)}"]
    if proxy == "gateway":
        return _nr_gateway(ctx, label, host, cmds + ["istioctl analyze"])
    fq = to_fqdn(host, ctx.attrs.get("namespace") or "default") if host else ""
    vss = [vs for vs in (ctx.vss_for_host(fq) if fq else ctx.snap.virtual_services)
           if vs.spec.http and applies_to_mesh(vs)]
    if vss:
        vs = vss[0]
        matches = [f"#{i}" + (f" {r.name!r}" if r.name else "") for i, r in enumerate(vs.spec.http) if r.match]
        why = (f"{ref(vs)} covers this host but none of its http rules matched the request "
               f"(rules with matches: {', '.join(matches) or 'none'}); when a VirtualService exists Istio adds no "
               "default route.")
        return Cause("NR.no-matching-rule", label, "No route matched: 404 NR (route_not_found).", why,
                     "Add a last http rule without `match` that routes to the default destination.", cmds,
                     [ref(vs)])
    return Cause("NR.no-route", label, "No route matched: 404 NR (route_not_found).",
                 "The virtual host for this request has no route that matches it.",
                 "Add a catch-all rule (no match) at the end of the VirtualService.", cmds)


def _nr_gateway(ctx: Context, label: str, host: str, cmds: list[str]) -> Cause:
    """404 NR at the ingress gateway: which VirtualServices are bound to its Gateways — a
    `gateways` entry resolved as istiod resolves it (`names.gateway_ref`), namespaces compared."""
    what = "The gateway found no route for the request: 404 NR (route_not_found)."
    mine = ctx.ingress_gateways()
    bound = [vs for vs in ctx.snap.virtual_services if ctx.bound_to_ingress(vs)]
    misbound = [(vs, b, g) for vs in ctx.snap.virtual_services for b in ctx.gateway_bindings(vs)
                if b.gateway is None for g in b.elsewhere if g in mine]
    if not bound and misbound:
        vs, b, gw = misbound[0]
        return Cause("NR.gateway-ref-wrong-namespace", label, what,
                     f"{ref(vs)} names gateway {b.entry!r} (spec.gateways[{b.index}]). istiod reads a name without "
                     f"a namespace as a Gateway in the VirtualService's own namespace — {b.resolved} — and there "
                     f"is none, so the VirtualService is bound to nothing and the gateway has no route. The Gateway "
                     f"of that name is {gw.namespace}/{gw.name} (istiod's resolveGatewayName, "
                     "pilot/pkg/model/config.go).",
                     f"Name it with its namespace: `gateways: [{gw.namespace}/{gw.name}]`.", cmds,
                     [ref(vs), ref(gw)], fields=[f"spec.gateways[{b.index}]"])
    if not bound:
        return Cause("NR.no-virtualservice-for-gateway", label, what,
                     "No VirtualService is bound to a Gateway of the ingress gateway (spec.gateways), so the "
                     "gateway has no routes for this host/port.",
                     "Bind a VirtualService to the Gateway (spec.gateways: [<namespace>/<gateway>]) with the "
                     "request's host in spec.hosts.", cmds, [ref(g) for g in mine])
    return Cause("NR.no-gateway-route", label, what,
                 f"The VirtualServices bound to the gateway ({', '.join(ref(v) for v in bound)}) have no rule "
                 f"matching this request" + (f" for host {host!r}" if host else "") + ": either the host is not in "
                 "their spec.hosts / the Gateway's servers[].hosts, or no http match fits the path/headers.",
                 "Put the request's host in a bound VirtualService's spec.hosts (and the Gateway's servers[].hosts), "
                 "and end its rules with one without match as the default.", cmds, [ref(v) for v in bound])


# ---------------------------------------------------------------------------------------------- UO

def uo(ctx: Context, label: str, grp: list[dict[str, Any]]) -> Cause:
    cluster = next((text(r.get("cluster")) for r in grp if text(r.get("cluster"))), "")
    parsed = parse_cluster_name(cluster) if cluster else None
    src, limits = "", []
    if parsed:
        for dr in ctx.drs_for_host(parsed[3]):
            pols = [dr.spec.traffic_policy] + [s.traffic_policy for s in dr.spec.subsets if s.name == parsed[2]]
            for tp in pols:
                cp = tp.connection_pool if tp else None
                if cp is None:
                    continue
                src = ref(dr)
                if cp.tcp and cp.tcp.max_connections is not None:
                    limits.append(f"tcp.maxConnections {cp.tcp.max_connections}")
                if cp.http:
                    for attr, nm in (("http1_max_pending_requests", "http1MaxPendingRequests"),
                                     ("http2_max_requests", "http2MaxRequests"),
                                     ("max_requests_per_connection", "maxRequestsPerConnection")):
                        v = getattr(cp.http, attr)
                        if v is not None:
                            limits.append(f"http.{nm} {v}")
    return Cause("UO.circuit-breaker", label,
                 f"Envoy's circuit breaker for {cluster or 'the cluster'} was full, so it rejected "
                 "these requests at once with 503 UO (overflow); they were not retried.",
                 (f"{src} spec.trafficPolicy.connectionPool sets {', '.join(limits)}; more requests were in "
                  "flight than that allows." if src else "A DestinationRule connectionPool limit was exceeded."),
                 "Raise the connectionPool limits, or send fewer concurrent requests.",
                 ["kubectl exec <client-pod> -c istio-proxy -- pilot-agent request GET stats | grep overflow"],
                 [src] if src else [])


# ------------------------------------------------------------------------------------------- UF/URX

def uf(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str, flags: set[str]) -> Cause:
    if {text(r.get("cluster")) for r in grp} == {"PassthroughCluster"}:
        # the sidecar passed the connection through to what the app dialled, and nothing was there
        found = _no_service_port(ctx, label, through_sidecar=True)
        if found is not None:
            return found
    ups = Counter(text(r.get("upstream")) for r in grp if text(r.get("upstream")))
    pods = [ctx.pod_by_ip(u.rsplit(":", 1)[0]) for u in ups]
    names = [p.name for p in pods if p is not None]
    dead = [p.name for p in pods if p is not None and p.phase != "Running"]
    retried = "URX" in flags
    what = ("Envoy could not connect to the pod" + ("s" if len(ups) > 1 else "") +
            (f" {', '.join(names)}" if names else (f" {', '.join(ups)}" if ups else "")) +
            (" and gave up after its retries (UF,URX)." if retried else " (UF, upstream connect failure)."))
    code = "UF.dead-pod" if dead else "UF.connect-failure"
    if dead:
        one = len(dead) == 1
        why = (f"{', '.join(dead)} {'is' if one else 'are'} not running ({'its process is' if one else 'their processes are'} "
               f"dead) but still in the endpoints until the readiness probe fails; connecting is refused.")
    else:
        why = ("The endpoint refused or timed out the connection: the app is down or not listening on the "
               "Service's targetPort.")
    if retried:
        why += " Envoy retried on other hosts, and every attempt failed (the URX part names the retry policy)."
    cmds = [f"istioctl proxy-config endpoints {client(proxy)}", "kubectl get pods -o wide"]
    if names:
        cmds.append(f"kubectl logs {names[0]}")
    return Cause(code, label, what, why,
                 "Restart or fix the pod; outlierDetection in the DestinationRule ejects such hosts quickly.", cmds)
