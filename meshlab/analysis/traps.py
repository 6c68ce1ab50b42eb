"""meshlab's own findings (`MLB…`): traps the course teaches that `istioctl analyze` stays silent on.

Each rule states what Envoy will actually do with the config, as istiod would generate it.
"""

from __future__ import annotations

import re
from typing import Iterator

from ..app import race_free_idle_ms
from ..names import (
    HTTP_FAMILY, ISTIO_NAMESPACE, TCP_FAMILY, UNSUPPORTED, cluster_name, duration_seconds, labels_match, port_protocol,
    selector_string, to_fqdn,
)
from ..objects import DestinationRule, HTTPMatchRequest, TrafficPolicy, VirtualService
from .snapshot import (
    Finding, Snapshot, applies_to_mesh, finding, go_quote, mirror_destinations, resource_name_from_host,
    route_destinations, rule_name,
)


def _seconds(d: str | None) -> float | None:
    if not d:
        return None
    try:
        return duration_seconds(d)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- MLB0001

def _is_catch_all(m: HTTPMatchRequest) -> bool:
    """A match every request meets, for every client: only `uri.prefix: /` (or regex `.*`, `/.*`),
    nothing else. Not istiod's `IsCatchAllRoute` (istiod/routes.py `is_catch_all`), which ignores
    `port`, `sourceLabels`, `sourceNamespace` and `gateways` because each proxy's routes are built
    for its own port and labels: such a match takes every request of some clients only, and later
    rules still match for the others, so it is no trap."""
    data = m.model_dump(exclude_none=True)
    data.pop("name", None)
    data.pop("ignore_uri_case", None)
    uri = data.pop("uri", None)
    if data:
        return False
    return uri is None or uri == {"prefix": "/"} or uri == {"regex": ".*"} or uri == {"regex": "/.*"}


def rules_after_catch_all(s: Snapshot) -> Iterator[Finding]:
    """A rule after one whose match takes every request never matches (istioctl only sees match-less ones)."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            if not rule.match:
                break          # istioctl reports what follows as IST0130
            catch = next((mn for mn, m in enumerate(rule.match) if _is_catch_all(m)), None)
            if catch is None:
                continue
            for later in range(n + 1, len(vs.spec.http)):
                yield finding(vs, "MLB0001",
                              f"http rule {rule_name(vs.spec.http[later].name, later)} can never match: rule "
                              f"{rule_name(rule.name, n)} match #{catch} takes every request and Envoy uses the "
                              "first route that matches.",
                              f"Move the catch-all rule spec.http[{n}] to the end, or narrow its match.",
                              f"spec.http[{later}]")
            break


# ---------------------------------------------------------------------------------------- MLB0002

def http_rules_on_tcp_ports(s: Snapshot) -> Iterator[Finding]:
    """http rules for a host whose Service port Istio treats as TCP are ignored on that port."""
    for vs in s.virtual_services:
        if not vs.spec.http or not applies_to_mesh(vs):
            continue
        ns = vs.namespace or "default"
        ports_matched = {m.port for r in vs.spec.http for m in (r.match or []) if m.port}
        for h in vs.spec.hosts:
            svc = s.service_for_host(h, ns)
            if svc is None:
                continue
            for p in svc.spec.ports:
                if ports_matched and p.port not in ports_matched:
                    continue
                proto = port_protocol(p.port, p.name, p.protocol, p.app_protocol)
                if proto not in TCP_FAMILY:
                    continue
                fq = to_fqdn(svc.name, svc.namespace or "default")
                yield finding(vs, "MLB0002",
                              f"The http rules of this VirtualService are ignored on port {p.port} of {fq}: its port "
                              f"name {go_quote(p.name or '')} makes Istio treat it as {proto}, so the sidecar only "
                              "forwards TCP connections there (no routes, subsets, retries, faults or timeouts).",
                              f"Name the Service port `http` or `http-<suffix>` (or set appProtocol: http) in "
                              f"Service {svc.namespace}/{svc.name}, or write `tcp:` rules instead.", "spec.http")


# ---------------------------------------------------------------------------------------- MLB0003

def faults_that_never_fire(s: Snapshot) -> Iterator[Finding]:
    """A fault without percentage is injected into 0% of requests, not 100%."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            if rule.fault is None:
                continue
            f = f"spec.http[{n}].fault"
            a, d = rule.fault.abort, rule.fault.delay
            if a is not None and (a.percentage is None or a.percentage.value == 0):
                why = "has no percentage" if a.percentage is None else "has percentage 0"
                yield finding(vs, "MLB0003",
                              f"The abort fault in http rule {rule_name(rule.name, n)} never fires: it {why}, and "
                              "Envoy injects a fault into that share of requests (unset means none).",
                              f"Add `percentage: {{value: 100}}` (or the share you want) to {f}.abort.",
                              f"{f}.abort.percentage")
            if d is not None and (d.percentage is None and not d.percent or
                                  d.percentage is not None and d.percentage.value == 0):
                yield finding(vs, "MLB0003",
                              f"The delay fault in http rule {rule_name(rule.name, n)} never fires: it has no "
                              "(or a zero) percentage, and Envoy delays that share of requests (unset means none).",
                              f"Add `percentage: {{value: 100}}` (or the share you want) to {f}.delay.",
                              f"{f}.delay.percentage")


# ------------------------------------------------------------------------------- MLB0004, MLB0005

def _namespace_style(host: str, s: Snapshot) -> tuple[str, str] | None:
    """`reviews.prod` or `reviews.prod.svc`: looks like <service>.<namespace> but is not expanded."""
    parts = host.split(".")
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        if parts[1] in s.namespaces or (parts[1], parts[0]) in s.service_by_key:
            return parts[0], parts[1]
    return None


def unexpanded_hosts(s: Snapshot) -> Iterator[Finding]:
    """`name.namespace` hosts are taken as FQDNs by Istio and match no Service; mesh VS hosts that
    match no Service or ServiceEntry leave the VirtualService unused by sidecars."""
    for obj, hosts in [(vs, [(h, f"spec.hosts[{i}]") for i, h in enumerate(vs.spec.hosts)]
                        + [(d.host, d.field + ".host") for d in route_destinations(vs) + mirror_destinations(vs)])
                       for vs in s.virtual_services] + \
                      [(dr, [(dr.spec.host, "spec.host")]) for dr in s.destination_rules]:
        ns = obj.namespace or "default"
        reported: set[str] = set()
        for host, field in hosts:
            ns_style = _namespace_style(host, s)
            export = obj.spec.export_to
            if ns_style is None or host in reported or s.destination_host(ns, export, host) is not None:
                continue
            reported.add(host)
            svc, svc_ns = ns_style
            yield finding(obj, "MLB0004",
                          f"Host {go_quote(host)} is not expanded: Istio only expands names without a dot, so this "
                          f"stays {go_quote(host)} and matches no Service (it is not {svc}.{svc_ns}.svc.cluster.local).",
                          f"Write {svc}.{svc_ns}.svc.cluster.local in {field}.", field)
        if isinstance(obj, VirtualService) and applies_to_mesh(obj):
            for i, h in enumerate(obj.spec.hosts):
                if h in reported or h.startswith("*") or _looks_like_ip(h):
                    continue
                if s.destination_host(ns, obj.spec.export_to, h) is None:
                    yield finding(obj, "MLB0005",
                                  f"Host {go_quote(h)} of this VirtualService matches no Service or ServiceEntry, so "
                                  "sidecars never use these rules (istiod only adds them to the port-80 routes, for "
                                  "requests whose Host header is exactly this name).",
                                  f"Use the name of an existing Service in spec.hosts[{i}] (a short name is "
                                  f"expanded in namespace {ns}), or create a ServiceEntry for it.",
                                  f"spec.hosts[{i}]")


def _looks_like_ip(h: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*", h))


# ---------------------------------------------------------------------------------------- MLB0006

def subsets_without_endpoints(s: Snapshot) -> Iterator[Finding]:
    """Subset labels must match a *ready* pod *behind the Service*: IST0173 counts pods anywhere."""
    for dr in s.destination_rules:
        ns = dr.namespace or "default"
        svc = s.service_for_host(dr.spec.host, ns)
        if svc is None or not dr.spec.subsets or svc.spec.selector is None:
            continue
        behind = s.service_pods(svc)
        for i, sub in enumerate(dr.spec.subsets):
            anywhere = next(s.pods_with_labels(sub.labels), None)
            if anywhere is None:
                continue      # IST0173 says it
            chosen = [p for p in behind if labels_match(sub.labels, p.labels)]
            ready = [p for p in chosen if p.ready and p.phase == "Running"]
            if ready:
                continue
            if chosen:
                why = f"its {len(chosen)} pod(s) ({', '.join(p.name for p in chosen[:3])}) are not ready"
                fix = "Make the pods ready (readiness probe), or route to another subset meanwhile."
            else:
                why = (f"pods with {selector_string(sub.labels)} exist (e.g. {anywhere.namespace}/{anywhere.name}), "
                       f"but none of them is selected by Service {svc.namespace}/{svc.name} "
                       f"({selector_string(svc.spec.selector)})")
                fix = f"Give those pods the Service's labels, or fix spec.subsets[{i}].labels."
            yield finding(dr, "MLB0006",
                          f"Subset {sub.name} of {to_fqdn(svc.name, svc.namespace or 'default')} has no ready "
                          f"endpoint: {why}. Requests routed to it get 503 UH (no healthy upstream).",
                          fix, f"spec.subsets[{i}].labels")


# ---------------------------------------------------------------------------------------- MLB0007

def services_without_endpoints(s: Snapshot) -> Iterator[Finding]:
    """A Service whose selector matches no ready pod: refused without a sidecar, 503 UH with one."""
    for svc in s.services:
        if not svc.spec.selector or svc.spec.type == "ExternalName" or s.is_synthetic_obj(svc):
            continue
        pods = s.service_pods(svc)
        if any(p.ready and p.phase == "Running" for p in pods):
            continue
        why = (f"{len(pods)} pod(s) match but none is ready" if pods
               else f"no pod in namespace {svc.namespace} has the labels {selector_string(svc.spec.selector)}")
        yield finding(svc, "MLB0007",
                      f"Service {svc.namespace}/{svc.name} has no ready endpoint: {why}. Clients without a sidecar "
                      "get connection refused; sidecars answer 503 UH.",
                      "Check `kubectl get endpoints " + svc.name + "`: fix spec.selector or the pod labels, "
                      "or deploy the pods.", "spec.selector")


# ---------------------------------------------------------------------------------------- MLB0008

def gateway_only_virtual_services(s: Snapshot) -> Iterator[Finding]:
    """A VS bound only to gateways does not apply to in-mesh clients: their sidecars ignore it."""
    for vs in s.virtual_services:
        if applies_to_mesh(vs):
            continue
        ns = vs.namespace or "default"
        mesh_hosts = [h for h in vs.spec.hosts if s.service_for_host(h, ns) is not None]
        if mesh_hosts:
            yield finding(vs, "MLB0008",
                          f"This VirtualService is bound to gateways {', '.join(vs.spec.gateways)} only, so sidecars "
                          f"ignore it: in-mesh calls to {', '.join(mesh_hosts)} get the default route.",
                          "Add `mesh` to spec.gateways if in-mesh traffic should follow these rules too.",
                          "spec.gateways")


# ---------------------------------------------------------------------------------------- MLB0009

def ignored_weights(s: Snapshot) -> Iterator[Finding]:
    """One destination always gets all the traffic: its weight is ignored."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            dests = rule.route or []
            if len(dests) == 1 and dests[0].weight not in (None, 100, 0):
                yield finding(vs, "MLB0009",
                              f"http rule {rule_name(rule.name, n)} has a single destination with weight "
                              f"{dests[0].weight}: it still gets 100% of the requests.",
                              "Add the other destination(s) to split traffic; weights are relative shares.",
                              f"spec.http[{n}].route[0].weight")


# ---------------------------------------------------------------------------------------- MLB0010

def retries_without_time(s: Snapshot) -> Iterator[Finding]:
    """perTryTimeout >= timeout: the route timeout fires before any retry can start."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            total = _seconds(rule.timeout)
            per_try = _seconds(rule.retries.per_try_timeout) if rule.retries else None
            attempts = rule.retries.attempts if rule.retries else None
            if total and per_try and per_try >= total and attempts != 0:
                yield finding(vs, "MLB0010",
                              f"http rule {rule_name(rule.name, n)}: perTryTimeout {rule.retries.per_try_timeout} is "
                              f"not shorter than timeout {rule.timeout}, so the route times out (504 UT) before a "
                              "retry can happen.",
                              "Make perTryTimeout × (attempts + 1) fit inside timeout.",
                              f"spec.http[{n}].retries.perTryTimeout")


# ---------------------------------------------------------------------------------------- MLB0011

def subsets_from_foreign_namespace(s: Snapshot) -> Iterator[Finding]:
    """A sidecar picks DestinationRules from its own namespace, then the Service's, then istio-system.

    istioctl finds a VS subset in a DR of *any* namespace; a sidecar only uses that DR if it sits in
    one of those namespaces — otherwise the subset cluster is never built and requests get 503 NC.
    """
    where: dict[tuple[tuple[str, str], str], list] = {}
    for dr in s.destination_rules:
        key = resource_name_from_host(dr.namespace or "default", dr.spec.host)
        for sub in dr.spec.subsets:
            where.setdefault((key, sub.name), []).append(dr)
    for vs in s.virtual_services:
        ns = vs.namespace or "default"
        for d in route_destinations(vs) + mirror_destinations(vs):
            if not d.subset:
                continue
            key = resource_name_from_host(ns, d.host)
            drs = where.get((key, d.subset), [])
            usable = {ns, key[0], ISTIO_NAMESPACE}
            if drs and not any((dr.namespace or "default") in usable for dr in drs):
                others = ", ".join(f"{dr.namespace}/{dr.name}" for dr in drs)
                yield finding(vs, "MLB0011",
                              f"Subset {d.subset} of {to_fqdn(d.host, ns)} is defined only by DestinationRule "
                              f"{others}; a sidecar uses DestinationRules from its own namespace, then the "
                              f"Service's ({key[0]}), then istio-system, so clients in {ns} have no such cluster "
                              "(503 NC).",
                              f"Move the DestinationRule to namespace {key[0]} (the Service's) or istio-system.",
                              d.field)


# ---------------------------------------------------------------------------------------- MLB0012

def target_ports_without_container_port(s: Snapshot) -> Iterator[Finding]:
    """targetPort must be a port the pods listen on (a named one must exist in the pod spec)."""
    for svc in s.services:
        if not svc.spec.selector or s.is_synthetic_obj(svc):
            continue
        pods = s.service_pods(svc)
        if not pods:
            continue
        for i, p in enumerate(svc.spec.ports):
            target = p.target_port if p.target_port is not None else p.port
            if isinstance(target, str):
                if all(pod.container_port(target) is None for pod in pods):
                    yield finding(svc, "MLB0012",
                                  f"Port {p.port} has targetPort {go_quote(target)}, but no selected pod declares a "
                                  "container port with that name, so the Service has no endpoints on this port.",
                                  f"Name the containerPort {target!r} in the pod template, or use the number as "
                                  f"spec.ports[{i}].targetPort.", f"spec.ports[{i}].targetPort")
                continue
            declared = [pod.listen_ports() for pod in pods]
            if all(declared) and all(target not in ports for ports in declared):
                have = sorted({n for ports in declared for n in ports})
                yield finding(svc, "MLB0012",
                              f"Port {p.port} forwards to targetPort {target}, but the selected pods declare only "
                              f"container port(s) {', '.join(map(str, have))}: unless the app also listens on {target} "
                              "without declaring it, connections are refused (503 UF/URX through a sidecar).",
                              f"Set spec.ports[{i}].targetPort to the port the app listens on.",
                              f"spec.ports[{i}].targetPort")


# ------------------------------------------------------------------------------- MLB0013 .. MLB0018
# Resilience traps (chapters 5-8): what a DestinationRule or VirtualService sets up in advance that
# Envoy will act on. Policies are read where a learner writes them — spec.trafficPolicy and each
# subset's trafficPolicy (a subset's block replaces the top-level one); portLevelSettings are left
# out of these checks.

def _policies(dr: DestinationRule) -> Iterator[tuple[str, str | None, TrafficPolicy | None, dict[str, str]]]:
    """(field path, subset, the policy in effect, the subset's labels) for the host's plain cluster
    and each subset's; a subset policy's blocks replace the top-level ones they set."""
    top = dr.spec.traffic_policy
    yield "spec.trafficPolicy", None, top, {}
    for i, sub in enumerate(dr.spec.subsets):
        own = sub.traffic_policy
        merged = top
        if own is not None:
            merged = TrafficPolicy(**{a: getattr(own, a) if getattr(own, a) is not None else
                                      (getattr(top, a) if top is not None else None)
                                      for a in ("load_balancer", "connection_pool", "outlier_detection", "tls")})
        yield (f"spec.subsets[{i}].trafficPolicy" if own is not None else "spec.trafficPolicy"), sub.name, merged, \
            dict(sub.labels)


def _block_path(dr: DestinationRule, subset: str | None, block: str) -> str:
    """Where the block in effect for `subset` is written (the subset's own, else the top level)."""
    for i, sub in enumerate(dr.spec.subsets):
        if sub.name == subset and sub.traffic_policy is not None and getattr(sub.traffic_policy, block) is not None:
            return f"spec.subsets[{i}].trafficPolicy.{_CAMEL[block]}"
    return f"spec.trafficPolicy.{_CAMEL[block]}"


_CAMEL = {"outlier_detection": "outlierDetection", "load_balancer": "loadBalancer",
          "connection_pool": "connectionPool"}


def _ready_pods(s: Snapshot, dr: DestinationRule, labels: dict[str, str]) -> list:
    svc = s.service_for_host(dr.spec.host, dr.namespace or "default")
    if svc is None or svc.spec.selector is None:
        return []
    return [p for p in s.service_pods(svc) if labels_match(labels, p.labels) and p.ready and p.phase == "Running"]


def ejection_never_allowed(s: Snapshot) -> Iterator[Finding]:
    """maxEjectionPercent (10 % when unset) below one host's share: Envoy ejects nothing
    (outlier_detection.ejections_overflow), since Istio does not set always_eject_one_host."""
    seen: set[str] = set()
    for dr in s.destination_rules:
        for _, subset, policy, labels in _policies(dr):
            od = policy.outlier_detection if policy is not None else None
            if od is None:
                continue
            pods = _ready_pods(s, dr, labels)
            pct = od.max_ejection_percent or 10
            if not pods or 100 / len(pods) <= pct:
                continue
            path = _block_path(dr, subset, "outlier_detection")
            if path in seen:
                continue
            seen.add(path)
            where = f"subset {subset} of {dr.spec.host}" if subset else dr.spec.host
            unset = " (unset: Envoy's 10 %)" if not od.max_ejection_percent else ""
            yield finding(dr, "MLB0013",
                          f"Outlier detection can never eject a host of {where}: it has {len(pods)} ready pod(s), so "
                          f"one ejection is {100 / len(pods):.0f} % of them, above maxEjectionPercent {pct} %{unset}. "
                          "Envoy counts the failures and ejects nothing (outlier_detection.ejections_overflow); "
                          "Istio does not set always_eject_one_host.",
                          f"Set {path}.maxEjectionPercent to at least {100 / len(pods):.0f} (100 lets every failing "
                          "pod go; with Istio's panic threshold 0 a cluster whose pods all fail then answers 503 UH).",
                          f"{path}.maxEjectionPercent")


def _asks_failover(lb) -> str | None:
    """Which setting of a loadBalancer asks for failover (`localityLbSetting` unless it says
    `enabled: false`, or `zoneAwareLbSetting`), if one does."""
    if lb is None:
        return None
    for name, setting in (("localityLbSetting", lb.locality_lb_setting), ("zoneAwareLbSetting", lb.zone_aware_lb_setting)):
        setting = setting or {}
        if setting.get("enabled") is not False and (setting.get("failover") or setting.get("failoverPriority")):
            return name
    return None


def failover_without_outlier_detection(s: Snapshot) -> Iterator[Finding]:
    """Locality failover written below the top level — in a subset's own trafficPolicy or a
    portLevelSettings entry — with no outlierDetection in effect there: istiod writes locality
    priorities only for a cluster with outlier detection (pilot/pkg/networking/core/loadbalancer/
    loadbalancer.go), so nothing fails over. A subset's policy inherits the top level's blocks it
    leaves unset; a port's replaces them all (pilot/pkg/model/destination_rule.go MergeTrafficPolicy).
    istioctl stays silent here: Istio's validation drops the warning (IST0133) below the top level,
    where `appendErrors` keeps only errors; at the top level IST0133 says it and this rule does not."""
    for dr in s.destination_rules:
        dr_top = dr.spec.traffic_policy
        places = []
        for i, sub in enumerate(dr.spec.subsets):
            own = sub.traffic_policy
            if own is None:
                continue
            od = own.outlier_detection or (dr_top.outlier_detection if dr_top is not None else None)
            places.append((f"spec.subsets[{i}].trafficPolicy", f" for subset {sub.name}", own.load_balancer, od))
            places += [(f"spec.subsets[{i}].trafficPolicy.portLevelSettings[{j}]",
                        f" for port {pl.port.number if pl.port else '?'} of subset {sub.name}", pl.load_balancer,
                        pl.outlier_detection) for j, pl in enumerate(own.port_level_settings or [])]
        if dr_top is not None:
            places += [(f"spec.trafficPolicy.portLevelSettings[{j}]", f" for port {pl.port.number if pl.port else '?'}",
                        pl.load_balancer, pl.outlier_detection) for j, pl in enumerate(dr_top.port_level_settings or [])]
        for where, what, lb, od in places:
            name = _asks_failover(lb)
            if name is None or od is not None:
                continue
            yield finding(dr, "MLB0014",
                          f"{where}.loadBalancer.{name} asks for failover, but there is no outlierDetection{what}: "
                          "istiod gives the endpoints no locality priorities without it (Envoy could never see the "
                          "local ones fail), so every zone gets traffic and nothing fails over. istioctl analyze "
                          "does not warn below the top-level trafficPolicy.",
                          f"Add outlierDetection next to the loadBalancer in {where}.",
                          f"{where}.loadBalancer.{name}")


def _app_keepalive_ms(s: Snapshot, dr: DestinationRule) -> tuple[float, str, float] | None:
    """The shortest keep-alive idle timeout the pods behind the host configure (their container's
    KEEPALIVE_TIMEOUT_MS, the demo app's; `meshlab.app.KNOB_ENV`), which workload sets it, and the
    longest Envoy idle timeout that never races it (`meshlab.app.race_free_idle_ms`)."""
    svc = s.service_for_host(dr.spec.host, dr.namespace or "default")
    if svc is None or svc.spec.selector is None:
        return None
    found = []
    for p in s.service_pods(svc):
        app = race_free_idle_ms(p.env())
        if app is not None:
            found.append((app[0], f"{'Deployment' if p.owner else 'Pod'} {p.namespace}/{p.owner or p.name}", app[1]))
    return min(found, key=lambda f: f[2]) if found else None


def _less_a_round_trip(app: tuple[float, str, float]) -> str:
    return f" less the network's round trip ({app[0] - app[2]:g} ms)" if app[2] < app[0] else ""


def idle_timeout_not_below_the_apps(s: Snapshot) -> Iterator[Finding]:
    """Envoy keeps idle upstream connections at least as long as the app does: the 503 UC race."""
    reported: set[tuple[str, str, str]] = set()
    with_dr = {(to_fqdn(dr.spec.host, dr.namespace or "default")) for dr in s.destination_rules}
    for svc in s.services:
        fq = to_fqdn(svc.name, svc.namespace or "default")
        probe = DestinationRule.model_validate({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                                                "metadata": {"name": svc.name, "namespace": svc.namespace},
                                                "spec": {"host": fq}})
        app = _app_keepalive_ms(s, probe) if fq not in with_dr else None
        if app is None:
            continue
        yield finding(svc, "MLB0015",
                      f"The app behind {fq} closes keep-alive connections idle for {app[0]:g} ms ({app[1]}, env "
                      "KEEPALIVE_TIMEOUT_MS), and no DestinationRule sets an idleTimeout, so Envoy keeps them for "
                      "1 h (its default): a request sent as the app closes one gets 503 UC "
                      "(upstream_reset_before_response_started{connection_termination}), now and then.",
                      f"Add a DestinationRule for {fq} with trafficPolicy.connectionPool.http.idleTimeout below the "
                      f"app's{_less_a_round_trip(app)} (e.g. {app[2] / 2:g}ms).", "spec.selector")
    for dr in s.destination_rules:
        app = _app_keepalive_ms(s, dr)
        if app is None:
            continue
        for _, subset, policy, _ in _policies(dr):
            pool = policy.connection_pool if policy is not None else None
            idle_text = ((pool.http.idle_timeout if pool and pool.http else None)
                         or (pool.tcp.idle_timeout if pool and pool.tcp else None))
            idle = _seconds(idle_text)
            if idle is not None and idle * 1000 < app[2]:
                continue
            path = _block_path(dr, subset, "connection_pool") + ".http.idleTimeout"
            if (dr.namespace or "", dr.name, path) in reported:
                continue
            reported.add((dr.namespace or "", dr.name, path))
            keeps = f"idleTimeout {idle_text}" if idle_text else "no idleTimeout (Envoy's default: 1 h)"
            yield finding(dr, "MLB0015",
                          f"The app behind {dr.spec.host} closes keep-alive connections idle for {app[0]:g} ms "
                          f"({app[1]}, env KEEPALIVE_TIMEOUT_MS), but Envoy keeps them with {keeps}: a request sent "
                          "as the app closes one gets 503 UC (upstream_reset_before_response_started"
                          "{connection_termination}), now and then.",
                          f"Set {path} below the app's timeout{_less_a_round_trip(app)} (e.g. {app[2] / 2:g}ms), so "
                          "Envoy closes idle "
                          "connections first.", path)


_SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}   # idempotent (RFC 9110 §9.2.2)
_RETRY_AFTER_WORK = {"5xx", "gateway-error", "reset", "retriable-4xx"}


def retries_of_non_idempotent_requests(s: Snapshot) -> Iterator[Finding]:
    """retryOn that retries after the app may have done the work (5xx, gateway-error, reset) on a
    rule POST or PATCH requests can take."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            rp = rule.retries
            if rp is None or not rp.attempts or not rp.retry_on:
                continue
            risky = sorted({w.strip() for w in rp.retry_on.split(",")} & _RETRY_AFTER_WORK)
            codes = [w for w in rp.retry_on.split(",") if w.strip().isdigit() and w.strip().startswith("5")]
            if not risky and not codes:
                continue
            if rule.match and all(m.method is not None and (m.method.exact or "").upper() in _SAFE_METHODS
                                  for m in rule.match):
                continue      # every match of the rule takes only methods that are safe to repeat
            yield finding(vs, "MLB0016",
                          f"http rule {rule_name(rule.name, n)} retries on {', '.join(risky + codes)} and takes any "
                          "method: a POST (or PATCH) that failed after the app did its work is sent again — the "
                          "app may execute it several times.",
                          "Match the methods that are safe to repeat (GET…) in this rule and give POST its own rule "
                          "retrying only connect-failure,refused-stream,reset-before-request; or make the handler "
                          "idempotent.", f"spec.http[{n}].retries.retryOn")


def hash_across_weighted_subsets(s: Snapshot) -> Iterator[Finding]:
    """A weighted split between destinations that hash: the key is sticky per subset only."""
    for vs in s.virtual_services:
        ns = vs.namespace or "default"
        for n, rule in enumerate(vs.spec.http):
            dests = [d for d in rule.route or [] if d.weight]
            if len(dests) < 2:
                continue
            hashed = []
            for d in dests:
                host = to_fqdn(d.destination.host, ns)
                for dr in s.destination_rules:
                    if to_fqdn(dr.spec.host, dr.namespace or "default") != host:
                        continue
                    for _, subset, policy, _ in _policies(dr):
                        if subset == d.destination.subset and policy is not None and policy.load_balancer \
                                and policy.load_balancer.consistent_hash is not None:
                            hashed.append(dr)
            if hashed:
                yield finding(vs, "MLB0017",
                              f"http rule {rule_name(rule.name, n)} splits requests by weight between "
                              f"{len(dests)} destinations that hash (consistentHash in DestinationRule "
                              f"{hashed[0].namespace}/{hashed[0].name}): Envoy draws the destination for every request "
                              "first, so a hash key sticks to one pod per subset, not to one pod.",
                              "For sticky versions, route by a match (a header or cookie) to one subset instead of "
                              "by weight.", f"spec.http[{n}].route")


def per_try_timeout_never_retried(s: Snapshot) -> Iterator[Finding]:
    """A perTryTimeout whose timeouts retryOn does not retry: the first slow attempt is the answer."""
    for vs in s.virtual_services:
        for n, rule in enumerate(vs.spec.http):
            rp = rule.retries
            if rp is None or not rp.attempts or not rp.per_try_timeout:
                continue
            words = {w.strip() for w in (rp.retry_on or "connect-failure,refused-stream,unavailable,cancelled,"
                                                          "retriable-status-codes").split(",")}
            if words & {"5xx", "gateway-error", "reset"}:
                continue
            yield finding(vs, "MLB0018",
                          f"http rule {rule_name(rule.name, n)}: perTryTimeout {rp.per_try_timeout} is never retried — "
                          f"retryOn ({rp.retry_on or 'the default'}) covers no timeout (5xx, gateway-error or reset), "
                          "so the first attempt that takes longer is answered 504 UT (upstream_per_try_timeout).",
                          "Add gateway-error (or 5xx) to retryOn, or drop perTryTimeout.",
                          f"spec.http[{n}].retries.retryOn")


# ---------------------------------------------------------------------------------------- MLB0019

def _sidecar_http_ports(s: Snapshot, vs: VirtualService) -> set[int]:
    """The ports a sidecar serves `vs`'s hosts on as HTTP: those of the Services its hosts name
    whose protocol is HTTP-like or sniffed (the ports that get an HTTP route configuration,
    pilot/pkg/networking/core/httproute.go)."""
    ns = vs.namespace or "default"
    ports: set[int] = set()
    for h in vs.spec.hosts:
        svc = s.service_for_host(h, ns)
        for p in svc.spec.ports if svc is not None else []:
            proto = port_protocol(p.port, p.name, p.protocol, p.app_protocol)
            if proto in HTTP_FAMILY or proto == UNSUPPORTED:
                ports.add(p.port)
    return ports


def destinations_without_the_listener_port(s: Snapshot) -> Iterator[Finding]:
    """A mesh route's destination without `port`, to a Service lacking a port the VirtualService's
    hosts are served on: route.GetDestinationCluster (pilot/pkg/networking/core/route/route.go)
    resolves it against the sidecar route configuration's registry, which for port P holds only
    the Services with port P (core/httproute.go), so the cluster takes the listener's port P —
    `outbound|P||<host>`, which does not exist: 503 NC. A gateway's registry holds every Service
    and a one-port Service's port is used, so there the same route works."""
    for vs in s.virtual_services:
        if not vs.spec.http or not applies_to_mesh(vs):
            continue
        ns = vs.namespace or "default"
        served = _sidecar_http_ports(s, vs)
        for n, rule in enumerate(vs.spec.http):
            ports = served
            if rule.match and all(m.port for m in rule.match):
                ports = served & {m.port for m in rule.match}
            for j, rd in enumerate(rule.route or []):
                d = rd.destination
                if d.port is not None and d.port.number:
                    continue
                svc = s.service_for_host(d.host, ns)
                if svc is None:
                    continue        # IST0101 says it
                has = {p.port for p in svc.spec.ports}
                missing = sorted(ports - has)
                if not missing:
                    continue
                fq = to_fqdn(svc.name, svc.namespace or "default")
                field = f"spec.http[{n}].route[{j}].destination"
                clusters = ", ".join(cluster_name(p, d.subset, fq) for p in missing)
                one = len(missing) == 1
                gateway = (f" Through a gateway the same route works: its registry holds every Service, and "
                           f"{fq}'s only port {svc.spec.ports[0].port} is used." if len(svc.spec.ports) == 1 else "")
                to = (f"{svc.spec.ports[0].port}" if len(has) == 1
                      else f"the port of {fq} to send to ({', '.join(str(p) for p in sorted(has))})")
                yield finding(vs, "MLB0019",
                              f"{field} names no port, and Service {svc.namespace}/{svc.name} has no port "
                              f"{', '.join(map(str, missing))}, on which sidecars serve this VirtualService's hosts. "
                              f"{'That port' if one else 'Each port'}'s route configuration holds only the Services "
                              "that have it, so the destination takes the listener's port: the route sends requests "
                              f"to cluster {clusters}, which {'does' if one else 'do'} not exist, and every request "
                              f"from a sidecar gets 503 NC (cluster_not_found).{gateway}",
                              f"Set {field}.port.number to {to}.", field)


RULES = (rules_after_catch_all, http_rules_on_tcp_ports, faults_that_never_fire, unexpanded_hosts,
         subsets_without_endpoints, services_without_endpoints, gateway_only_virtual_services, ignored_weights,
         retries_without_time, subsets_from_foreign_namespace, target_ports_without_container_port,
         ejection_never_allowed, failover_without_outlier_detection, idle_timeout_not_below_the_apps,
         retries_of_non_idempotent_requests, hash_across_weighted_subsets, per_try_timeout_never_retried,
         destinations_without_the_listener_port)
