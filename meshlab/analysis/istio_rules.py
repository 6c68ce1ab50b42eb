"""The traffic-management rules of `istioctl analyze`, with the same codes, levels and targets.

Each rule reads a `Snapshot` and yields `Finding`s; none of them changes anything. The message
texts follow istioctl's templates (pkg/config/analysis/msg/messages.yaml) so a learner can search
for them; the `fix` line is meshlab's own.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..names import (
    CLUSTER_DOMAIN, MESH_GATEWAY, UNSUPPORTED, host_matches, labels_match, port_protocol, selector_string, to_fqdn,
)
from ..gateway_api import GatewayAPI
from ..objects import Gateway, GRPCRoute, KubernetesHTTPRoute, VirtualService
from .snapshot import (
    EXPORT_ALL, EXPORT_LOCAL, Finding, Registered, RouteDest, Snapshot,
    applies_to_mesh, finding, go_list, go_quote, mirror_destinations,
    resource_name_from_host, route_destinations,
)


# ------------------------------------------------------------------- IST0101 host, IST0112, IST0140

def destination_hosts(s: Snapshot) -> Iterator[Finding]:
    """VS destinations and mirrors must name a visible Service/ServiceEntry (and a port it has)."""
    for vs in s.virtual_services:
        ns = vs.namespace or "default"
        for what, dests in (("host", route_destinations(vs)), ("mirror host", mirror_destinations(vs))):
            for d in dests:
                reg = s.destination_host(ns, vs.spec.export_to, d.host)
                if reg is None:
                    yield finding(vs, "IST0101", f"Referenced {what} not found: {go_quote(d.host)}",
                                  _host_fix(s, d.host, ns, d.field), d.field)
                    continue
                yield from _port_checks(vs, d, reg)
    yield from _ingress_subsets(s)


def _host_fix(s: Snapshot, host: str, ns: str, field: str) -> str:
    fq = to_fqdn(host, ns)
    parts = host.split(".")
    if len(parts) in (2, 3) and parts[1] in s.namespaces and (len(parts) == 2 or parts[2] == "svc"):
        return (f"Istio does not expand {host!r} (it contains a dot): write {parts[0]}.{parts[1]}.svc.cluster.local "
                f"in {field}.host.")
    if "." in host and not host.endswith("." + CLUSTER_DOMAIN):
        return (f"{host!r} is taken as an external name: create a ServiceEntry for it, or correct {field}.host "
                "(in-cluster Services are <service>.<namespace>.svc.cluster.local).")
    return (f"Create the Service (or a ServiceEntry for {fq}) before routing to it, or correct {field}.host; "
            f"a short name is expanded in the VirtualService's namespace ({ns}).")


def _port_checks(vs: VirtualService, d: RouteDest, reg: Registered) -> Iterator[Finding]:
    numbers = [p[0] for p in reg.ports]
    if d.port is None:
        if len(reg.ports) > 1:
            yield finding(vs, "IST0112",
                          f"This VirtualService routes to a service {go_quote(d.host)} that exposes multiple ports "
                          f"{go_list(numbers)}. Specifying a port in the destination is required to disambiguate.",
                          f"Add `port: {{number: <one of {', '.join(map(str, numbers))}>}}` to {d.field}; without it "
                          "the sidecar builds the cluster name from the port the request came in on.", d.field)
        return
    if d.port not in numbers:
        yield finding(vs, "IST0101", f"Referenced host:port not found: {go_quote(f'{d.host}:{d.port}')}",
                      f"Use a port the {reg.obj.kind} exposes ({', '.join(map(str, numbers)) or 'none'}) in "
                      f"{d.field}.port.number; it is the Service port, not the targetPort.", d.field)


def _ingress_subsets(s: Snapshot) -> Iterator[Finding]:
    """IST0140: a gateway-bound VS route without subset, while another VS routes that host by subset."""
    by_host: dict[str, list[str]] = {}
    for vs in s.virtual_services:
        for rule in vs.spec.http:
            for rd in rule.route or []:
                d = rd.destination
                if d.subset and d.host in vs.spec.hosts:
                    names = by_host.setdefault(d.host, [])
                    names.append(f"{vs.namespace}/{vs.name}")
    for vs in s.virtual_services:
        if not vs.spec.gateways:
            continue
        for i, rule in enumerate(vs.spec.http):
            for j, rd in enumerate(rule.route or []):
                d = rd.destination
                if d.subset:
                    continue
                for other in by_host.get(d.host, []):
                    yield finding(vs, "IST0140",
                                  f"Subset in virtual service {other} has no effect on ingress gateway "
                                  f"{vs.namespace}/{vs.name} requests",
                                  f"Requests entering through the gateway follow this VirtualService, which sends "
                                  f"them to {d.host} without a subset; add the subset here if gateway traffic "
                                  f"should be split the same way.", f"spec.http[{i}].route[{j}].destination")


# ------------------------------------------------------------------------------ IST0101 host+subset

def destination_subsets(s: Snapshot) -> Iterator[Finding]:
    """Every host+subset a VS names must be defined by some DestinationRule (any namespace)."""
    defined: set[tuple[tuple[str, str], str]] = set()
    for dr in s.destination_rules:
        key = resource_name_from_host(dr.namespace or "default", dr.spec.host)
        for sub in dr.spec.subsets:
            defined.add((key, sub.name))
    for vs in s.virtual_services:
        ns = vs.namespace or "default"
        for kind, dests in (("host+subset", route_destinations(vs)), ("mirror+subset", mirror_destinations(vs))):
            for d in dests:
                if d.subset and (resource_name_from_host(ns, d.host), d.subset) not in defined:
                    yield finding(vs, "IST0101",
                                  f"Referenced {kind} in destinationrule not found: {go_quote(f'{d.host}+{d.subset}')}",
                                  f"Define subset {d.subset!r} in a DestinationRule for {to_fqdn(d.host, ns)} "
                                  f"(and apply it before this VirtualService), or remove {d.field}.subset. "
                                  "Until then Envoy answers 503 NC (cluster not found).", d.field)


# ----------------------------------------------------------------------- IST0101 gateway, IST0132

def virtual_service_gateways(s: Snapshot) -> Iterator[Finding]:
    """A VirtualService's `gateways` name Istio Gateways (networking.istio.io) only, as Istio's
    GatewayAnalyzer looks them up (`analyzers/virtualservice/gateways.go`, gvk.Gateway): a Gateway
    API Gateway of the same name is another object, and istiod binds no VirtualService to it."""
    for vs in s.virtual_services:
        ns = vs.namespace or "default"
        for i, gw_name in enumerate(vs.spec.gateways):
            if gw_name == MESH_GATEWAY:
                continue
            key = tuple(gw_name.split("/", 1)) if "/" in gw_name else (ns, gw_name)
            gw = s.gateway_by_key.get(key)
            field = f"spec.gateways[{i}]"
            if gw is None:
                yield finding(vs, "IST0101", f"Referenced gateway not found: {go_quote(gw_name)}",
                              f"Create Gateway {key[0]}/{key[1]} or fix {field}; a name without '<namespace>/' "
                              f"means a Gateway in the VirtualService's namespace ({ns})."
                              + (" A Gateway API Gateway of that name does not count: a VirtualService binds "
                                 "to Istio Gateways (networking.istio.io); route through it with an HTTPRoute."
                                 if any((g.namespace or "default", g.name) == key for g in s.k8s_gateways) else ""),
                              field)
            if not _host_in_gateway(gw, vs.spec.hosts, ns):
                yield finding(vs, "IST0132",
                              f"one or more host {go_list(vs.spec.hosts)} defined in VirtualService {ns}/{vs.name} "
                              f"not found in Gateway {key[0]}/{key[1]}.",
                              "A gateway only serves the hosts listed in its servers[].hosts; add the host there "
                              "(or use `*`), or change spec.hosts of this VirtualService. Meanwhile the gateway "
                              "answers 404 NR for it.", field)


def _host_in_gateway(gw: Gateway | None, vs_hosts: list[str], vs_ns: str) -> bool:
    if gw is None:
        return False
    gw_ns = gw.namespace or "default"
    names: list[str] = []
    for server in gw.spec.servers:
        hosts = list(server.hosts)
        for h in server.hosts:
            if "/" in h:
                scope, name = h.split("/", 1)
                if scope == EXPORT_LOCAL:
                    hosts[hosts.index(h)] = f"{gw_ns}/{name}"
                elif scope == EXPORT_ALL:
                    if name == "*":
                        hosts = ["*"]
                        break
                    hosts[hosts.index(h)] = name
        for h in hosts:
            if "/" in h:
                scope, name = h.split("/", 1)
                if scope != vs_ns and scope != EXPORT_ALL:
                    continue
                h = name
            names.append(h)
    return any(host_matches(g, v) for g in names for v in vs_hosts)


# ---------------------------------------------------------------------------------------- IST0109

def conflicting_mesh_hosts(s: Snapshot) -> Iterator[Finding]:
    """Two mesh VirtualServices for one host: istiod keeps only one of them (no merge)."""
    by_host: dict[tuple[str, str], list[VirtualService]] = {}
    for vs in s.virtual_services:
        if not applies_to_mesh(vs):
            continue
        ns = vs.namespace or "default"
        export = vs.spec.export_to
        if not export or EXPORT_ALL in export:
            scopes = [EXPORT_ALL]
        else:
            scopes = list(dict.fromkeys(ns if e == EXPORT_LOCAL else e for e in export))
        for scope in scopes:
            for h in vs.spec.hosts:
                lst = by_host.setdefault((scope, to_fqdn(h, ns)), [])
                if vs not in lst:
                    lst.append(vs)
    reported: set[tuple[str, str]] = set()
    all_scoped = [(fq, lst) for (scope, fq), lst in by_host.items() if scope == EXPORT_ALL]
    for (scope, fq), lst in by_host.items():
        vss = list(lst)
        if scope != EXPORT_ALL:
            for other_fq, other in all_scoped:
                if host_matches(fq, other_fq):
                    vss += other
        if len(vss) < 2:
            continue
        names = ",".join(sorted(f"{v.namespace}/{v.name}" for v in vss))
        for v in vss:
            key = (v.namespace or "", v.name)
            if key in reported:
                continue
            reported.add(key)
            yield finding(v, "IST0109",
                          f"The VirtualServices {names} associated with mesh gateway define the same host {scope}/{fq} "
                          "which can lead to undefined behavior. This can be fixed by merging the conflicting "
                          "VirtualServices into a single resource.",
                          "Merge the http rules into one VirtualService per host: istiod uses only one of them for "
                          "sidecars (the oldest), the other's rules are silently ignored.", "spec.hosts")


# -------------------------------------------------------------------------------- IST0174, IST0173

def subsets_select_pods(s: Snapshot) -> Iterator[Finding]:
    """A DR host must be a known service; each subset's labels must select at least one pod (any namespace)."""
    for dr in s.destination_rules:
        ns = dr.namespace or "default"
        reg = s.destination_host(ns, dr.spec.export_to, dr.spec.host)
        if reg is None:
            yield finding(dr, "IST0174",
                          f"The host {dr.spec.host} defined in the DestinationRule does not match any services in the mesh.",
                          f"Point spec.host at an existing Service ({to_fqdn(dr.spec.host, ns)} does not exist) or "
                          "create it; a short name is expanded in the DestinationRule's namespace.", "spec.host")
            continue
        for i, sub in enumerate(dr.spec.subsets):
            selector = {**reg.workload_labels, **sub.labels}
            if next(s.pods_with_labels(selector), None) is None:
                yield finding(dr, "IST0173",
                              f"The Subset {sub.name} defined in the DestinationRule does not select any pods. "
                              "Which may lead to 503 UH (NoHealthyUpstream).",
                              f"No pod carries {selector_string(sub.labels) or '(no labels)'}; fix "
                              f"spec.subsets[{i}].labels or deploy pods with those labels.",
                              f"spec.subsets[{i}].labels")


# ---------------------------------------------------------------------------------- IST0118/IST0150

def port_names(s: Snapshot) -> Iterator[Finding]:
    """Service ports should be named `<protocol>[-suffix]` (or set appProtocol), else Istio sniffs."""
    for svc in s.services:
        labels = svc.labels
        if "istio" in labels or labels.get("release") == "istio":
            continue
        if labels.get("gateway.istio.io/managed") in ("istio.io-gateway-controller", "istio.io-mesh-controller",
                                                       "istio.io-eastwest-controller"):
            continue
        for i, p in enumerate(svc.spec.ports):
            proto = port_protocol(p.port, p.name, p.protocol, p.app_protocol)
            external = svc.spec.type == "ExternalName"
            if proto != UNSUPPORTED and not (p.name == "tcp" and external):
                continue
            field = f"spec.ports[{i}]"
            if external:
                yield finding(svc, "IST0150",
                              "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and "
                              "unmatched traffic for ports serving TCP protocol from being forwarded correctly",
                              "Name the port after its protocol, e.g. `http` or `https`.", field)
                continue
            target = p.target_port if p.target_port is not None else p.port
            yield finding(svc, "IST0118",
                          f"Port name {p.name or ''} (port: {p.port}, targetPort: {target}) doesn't follow the naming "
                          "convention of Istio port.",
                          f"Name it `http-…`, `grpc-…`, `tcp-…` (protocol, then '-' and anything) or set "
                          f"appProtocol; otherwise Istio sniffs the protocol on port {p.port}.", field)


# --------------------------------------------------------------------------- IST0101 selector, IST0162

def gateway_ports(s: Snapshot) -> Iterator[Finding]:
    """A Gateway must select gateway pods, and its ports must be exposed by a Service of those pods."""
    svcs_by_ns: dict[str, list] = {}
    for svc in s.services:
        svcs_by_ns.setdefault(svc.namespace or "default", []).append(svc)
    for gw in s.gateways:
        sel = gw.spec.selector
        pods = list(s.pods_with_labels(sel))
        sel_str = selector_string(sel)
        if not pods:
            yield finding(gw, "IST0101", f"Referenced selector not found: {go_quote(sel_str)}",
                          f"No pod has the labels {sel_str or '(none)'}; use the labels of your ingress gateway "
                          "pods (Istio's default is `istio: ingressgateway`).", "spec.selector")
            continue
        service_ports: set[int] = set()
        port_mapping: dict[int, int] = {}
        for pod in pods:
            for svc in svcs_by_ns.get(pod.namespace, []):
                if not labels_match(svc.spec.selector or {}, pod.labels):
                    continue
                for p in svc.spec.ports:
                    if p.protocol != "TCP":
                        continue
                    tp = p.target_port if p.target_port is not None else p.port
                    if isinstance(tp, int) and tp:
                        service_ports.add(tp)
                        port_mapping.setdefault(p.port, tp)
                    else:
                        service_ports.add(p.port)
        for i, server in enumerate(gw.spec.servers):
            n = server.port.number
            if n not in service_ports and n not in port_mapping:
                yield finding(gw, "IST0162",
                              f"The gateway is listening on a target port (port {n}) that is not defined in the Service "
                              f"associated with its workload instances (Pod selector {sel_str}). If you need to access "
                              "the gateway port through the gateway Service, it will not be available.",
                              f"Use a port the gateway Service forwards to (targetPorts "
                              f"{', '.join(map(str, sorted(service_ports))) or 'none'}; Istio's default ingress: 8080 "
                              "for http, 8443 for https) in spec.servers[].port.number, or add it to the Service.",
                              f"spec.servers[{i}].port")


# ---------------------------------------------------------------------------------------- IST0002

def deprecated_fields(s: Snapshot) -> Iterator[Finding]:
    """The fields Istio's deprecation analyzer names (pkg/config/analysis/analyzers/deprecation/
    deprecation.go; it is hand-kept there too): VirtualService `fault.delay.percent` (> 0), Sidecar
    `outboundTrafficPolicy.egressProxy`."""
    for vs in s.virtual_services:
        for i, rule in enumerate(vs.spec.http):
            delay = rule.fault.delay if rule.fault is not None else None
            if delay is not None and (delay.percent or 0) > 0:
                yield finding(vs, "IST0002", "Deprecated: HTTPRoute.fault.delay.percent is deprecated; "
                              "use HTTPRoute.fault.delay.percentage",
                              f"Write `percentage: {{value: {delay.percent}}}` instead of `percent: {delay.percent}` "
                              f"in spec.http[{i}].fault.delay.", f"spec.http[{i}].fault.delay.percent")
    for sc in s.sidecars:
        spec = (sc.model_extra or {}).get("spec")
        policy = (spec.get("outboundTrafficPolicy") or {}) if isinstance(spec, dict) else {}
        if isinstance(policy, dict) and policy.get("egressProxy") is not None:
            yield finding(sc, "IST0002", "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
                          "istiod ignores egressProxy: route egress traffic with a ServiceEntry and a VirtualService.",
                          "spec.outboundTrafficPolicy.egressProxy")


# ---------------------------------------------------------------------------------------- IST0133

def failover_without_outlier_detection(s: Snapshot) -> Iterator[Finding]:
    """The warning Istio's validation attaches to a DestinationRule whose top-level traffic policy
    sets locality `failover` or `failoverPriority` (in `localityLbSetting` or `zoneAwareLbSetting`)
    without `outlierDetection` (pkg/config/validation/agent/validation.go ValidateLocalityLbSetting
    and ValidateZoneAwareLbSetting, through validateLoadBalancer; istioctl reports it as IST0133
    SchemaWarning): without outlier detection istiod writes no locality priorities, so failover never
    happens. Only the top level: a subset's policy and portLevelSettings are validated through
    `appendErrors` (pkg/config/validation/validation.go validateSubset, validatePortTrafficPolicies),
    which keeps errors and drops warnings, so istioctl says nothing there (meshlab's MLB0014 does)."""
    for dr in s.destination_rules:
        policy = dr.spec.traffic_policy
        lb = policy.load_balancer if policy is not None else None
        if lb is None or policy.outlier_detection is not None:
            continue
        for name, setting in (("localityLbSetting", lb.locality_lb_setting), ("zoneAwareLbSetting", lb.zone_aware_lb_setting)):
            if (setting or {}).get("failover") or (setting or {}).get("failoverPriority"):
                yield finding(dr, "IST0133", "Schema validation warning: outlier detection policy must be "
                              "provided for failover",
                              "Add `outlierDetection` next to the loadBalancer in spec.trafficPolicy: Envoy only "
                              "fails over when it ejects the local endpoints.", f"spec.trafficPolicy.loadBalancer.{name}")


# ---------------------------------------------------------------------------------------- IST0145

def _selector_string(selector: dict[str, str]) -> str:
    """klabels.SelectorFromSet(...).String(): `k=v` pairs sorted by key, joined by ','."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def conflicting_gateways(s: Snapshot) -> Iterator[Finding]:
    """gateway/conflictinggateway.go: two Gateways on the same workloads (the same selector, or
    selectors that contain one another and select a common pod) and port, with a host in common
    under the same bind: Envoy gets one listener, and one of them loses."""
    # (selector, port) → gateway "ns/name" → host → bind (the last server of a Gateway on that port)
    known: dict[tuple[str, int], dict[str, dict[str, str]]] = {}
    for gw in s.gateways:
        name = f"{gw.namespace or 'default'}/{gw.name}"
        for server in gw.spec.servers:
            known.setdefault((_selector_string(gw.spec.selector), server.port.number), {})[name] = {
                h: server.bind or "" for h in server.hosts}
    for gw in s.gateways:
        name = f"{gw.namespace or 'default'}/{gw.name}"
        mine = _selector_string(gw.spec.selector)
        same: list[tuple[str, int]] = []
        for sel, port in known:
            if sel == mine:
                same.append((sel, port))
            elif sel in mine or mine in sel:
                other = dict(kv.split("=", 1) for kv in sel.split(",") if kv.count("=") == 1)
                if any(labels_match(gw.spec.selector, p.labels) and labels_match(other, p.labels) for p in s.pods):
                    same.append((sel, port))
        for i, server in enumerate(gw.spec.servers):
            rivals = sorted({other for key in same if key[1] == server.port.number
                             for other, hosts in known[key].items()
                             if other != name and any(hosts.get(h) == (server.bind or "") for h in server.hosts
                                                      if h in hosts)})
            if rivals:
                yield finding(gw, "IST0145", f"Conflict with gateways {','.join(rivals)} (workload selector {mine}, "
                              f"port {server.port.number}, hosts {','.join(server.hosts)}).",
                              "Serve each host on a port of these gateway pods from one Gateway only (merge the "
                              "servers, or use different hosts or ports).", f"spec.servers[{i}]")


# ---------------------------------------------------------------------------------------- IST0177

def conflicting_service_entry_protocols(s: Snapshot) -> Iterator[Finding]:
    """serviceentry/conflictingserviceentries.go: ServiceEntries visible in one scope that give a
    host and port different protocols (compared upper-cased)."""
    index: dict[tuple[str, str, int], list[tuple[str, Any]]] = {}
    for se in s.service_entries:
        ns = se.namespace or "default"
        export = se.spec.export_to
        scopes = {EXPORT_ALL} if not export or EXPORT_ALL in export else \
            {ns if e == EXPORT_LOCAL else e for e in export}
        for scope in scopes:
            for h in se.spec.hosts:
                for p in se.spec.ports:
                    index.setdefault((scope, h, p.number), []).append(((p.protocol or "").upper(), se))
    reported: set[tuple[str, str]] = set()
    for (scope, host, port), entries in sorted(index.items(), key=lambda kv: kv[0]):
        if scope != EXPORT_ALL:
            entries = entries + index.get((EXPORT_ALL, host, port), [])
        protocols = sorted({proto for proto, _ in entries})
        if len(protocols) < 2:
            continue
        names = sorted({f"{se.namespace or 'default'}/{se.name}" for _, se in entries})
        for _, se in entries:
            key = (se.namespace or "default", se.name)
            if key in reported:
                continue
            reported.add(key)
            yield finding(se, "IST0177", f"Multiple ServiceEntries ({', '.join(names)}) define the same host "
                          f"{go_quote(host)} and port {port} with conflicting protocols ({', '.join(protocols)}).",
                          f"Give {host}:{port} one protocol in every ServiceEntry, or merge them: istiod keeps only "
                          "one, and the other's traffic is handled as the wrong protocol.", "spec.ports")


# -------------------------------------------------------------------------------- IST0128, IST0129

def _unverified(tls: dict[str, Any] | None, dr) -> str | None:
    """The TLS mode when it originates TLS (SIMPLE, MUTUAL) without caCertificates to check the
    server with (a credentialName counts only with a workloadSelector)."""
    tls = tls or {}
    mode = tls.get("mode")
    if mode not in ("SIMPLE", "MUTUAL") or tls.get("caCertificates"):
        return None
    if tls.get("credentialName") and dr.spec.workload_selector is not None:
        return None
    return mode


def tls_without_ca(s: Snapshot) -> Iterator[Finding]:
    """destinationrule/ca-certificates.go: TLS origination that does not verify the server."""
    for dr in s.destination_rules:
        ns, full = dr.namespace or "default", f"{dr.namespace or 'default'}/{dr.name}"
        tp = dr.spec.traffic_policy
        mode = _unverified(tp.tls if tp else None, dr)
        if mode:
            yield finding(dr, "IST0128", f"DestinationRule {full} in namespace {ns} has TLS mode set to {mode} but no "
                          f"caCertificates are set to validate server identity for host: {dr.spec.host}",
                          "Set tls.caCertificates (or a credentialName) so the sidecar checks who it talks to.",
                          "spec.trafficPolicy.tls")
        for i, plp in enumerate((tp.port_level_settings or []) if tp else []):
            mode = _unverified(plp.tls, dr)
            if mode:
                port = f"number:{plp.port.number}" if plp.port is not None else ""
                yield finding(dr, "IST0129", f"DestinationRule {full} in namespace {ns} has TLS mode set to {mode} but "
                              f"no caCertificates are set to validate server identity for host: {dr.spec.host} at "
                              f"port {port}",
                              "Set tls.caCertificates (or a credentialName) so the sidecar checks who it talks to.",
                              f"spec.trafficPolicy.portLevelSettings[{i}].tls")


# ----------------------------------------------------------------------------------------- IST0171

#: The condition types whose False status istioctl reports, per kind (conditions.ConditionAnalyzer).
_NEGATIVE_CONDITIONS = ("Accepted", "Programmed", "ResolvedRefs")


def negative_conditions(s: Snapshot) -> Iterator[Finding]:
    """IST0171 (pkg/config/analysis/analyzers/conditions): a Gateway API Gateway's, HTTPRoute's or GRPCRoute's status
    condition Accepted, Programmed or ResolvedRefs that is False. istioctl reads the status istiod wrote;
    objects that carry none (files) get the status istiod's controller would write for them
    (`meshlab.gateway_api`), as a live cluster holding them would show."""
    computed: dict | None = None
    for obj in [*s.k8s_gateways, *s.state.list(KubernetesHTTPRoute), *s.state.list(GRPCRoute)]:
        status = obj.status
        if not status:
            if computed is None:
                computed = GatewayAPI(s.state).convert().status
            status = computed.get(obj.key) or {}
        conditions = list(status.get("conditions") or [])
        for parent in status.get("parents") or []:
            conditions += parent.get("conditions") or []
        for c in conditions:
            if c.get("type") in _NEGATIVE_CONDITIONS and c.get("status") == "False":
                yield finding(obj, "IST0171", f"A condition with a negative status is present: type={c.get('type')}, "
                              f"reason={c.get('reason')}, message={c.get('message')}.", _condition_fix(c),
                              "status.parents[].conditions" if obj.kind in ("HTTPRoute", "GRPCRoute") else "status.conditions")


def _condition_fix(c: dict) -> str:
    return {"BackendNotFound": "Create the Service the backendRef names, or correct its name: until then Envoy "
                               "answers 500 for that rule.",
            "RefNotPermitted": "Add a ReferenceGrant in the backend's namespace that allows HTTPRoutes from this "
                               "namespace, or move the backend: until then Envoy answers 500 for that rule.",
            "NoMatchingParent": "The parentRef names no Gateway listener (or Service) Istio knows: check its name, "
                                "namespace, sectionName and port.",
            "NotAllowedByListeners": "The listener's allowedRoutes does not admit this route's namespace or kind.",
            "NoMatchingListenerHostname": "None of spec.hostnames falls under the listener's hostname."}.get(
        str(c.get("reason")), "")


RULES = (deprecated_fields, failover_without_outlier_detection, tls_without_ca, conflicting_gateways, conflicting_service_entry_protocols, destination_hosts, destination_subsets, virtual_service_gateways, conflicting_mesh_hosts,
         subsets_select_pods, port_names, gateway_ports, negative_conditions)
