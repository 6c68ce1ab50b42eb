"""How requests that got an answer were routed, and which VirtualServices did not apply and why.

For a group of successful requests explain says which VirtualService rule matched (or that none
did and Istio's default route served), which DestinationRule policy shaped the cluster, block by
block, and which VirtualServices a learner might have expected to apply but did not.

Envoy's own evidence comes first. A probe row's `route` is Envoy's %ROUTE_NAME%: a rule's `name`
(`<rule>.<match>` when the match is named too; istiod's route.go), or `default` for the route
istiod writes for a Service no VirtualService covers (route.DefaultRouteName). Its `cluster` is the
upstream cluster. The live config says which VirtualService wrote a route (route metadata
`istio.config`) and which DestinationRule shaped a cluster (cluster metadata). The objects are read
only to name the rule (`spec.http[i]`) and, when rules without names send to the same cluster, to
tell them apart by the request's path and headers, first match first as Envoy does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..analysis.snapshot import applies_to_mesh
from ..istiod.clusters import POLICY_BLOCKS, policy_sources
from ..names import ISTIO_NAMESPACE, exported_to, host_subset_of, parse_cluster_name, to_fqdn
from ..objects import DestinationRule, HTTPMatchRequest, HTTPRoute, StringMatch, VirtualService
from . import resilience
from .causes import Cause, answered_by, split_of
from .context import Context, client, ref, text

#: Istio's route name for a Service no VirtualService covers (pilot route.DefaultRouteName).
DEFAULT_ROUTE = "default"


@dataclass
class RouteUse:
    """The requests of a group that took one route: a VirtualService rule, the default route, …"""

    kind: str                               # "vs" | "default" | "tcp" | "unknown"
    vs: VirtualService | None = None
    rule: int | None = None                 # index in vs.spec.http, when known
    candidates: list[int] = field(default_factory=list)
    how: str = ""                           # how the rule was known
    rows: list[dict[str, Any]] = field(default_factory=list)
    clusters: Counter = field(default_factory=Counter)


# ------------------------------------------------------------------------------------- the route

def served(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str,
           all_rows: list[dict[str, Any]] | None = None) -> Cause:
    """The main cause of a group of answered requests: the route most of them took. The other
    routes and the DestinationRule policy of each cluster used are its `parts`. `all_rows`, the
    whole probe, says what came before them (default: `grp`)."""
    split = split_of(ctx, grp, proxy)
    what = answered_by(split)
    if proxy == "none":
        return Cause("ok.kube-proxy", label,
                     answered_by(split, "Answered by the pods (no sidecar: kube-proxy picked a pod per connection)"),
                     "No Envoy was on the path (via='none'), so no VirtualService or DestinationRule applied: "
                     "the connection went to the ClusterIP and kube-proxy chose a ready pod for it.",
                     ok=True, commands=["kubectl get endpointslices -l kubernetes.io/service-name=<service>"],
                     split=split)
    from .gateway_api import served as httproute_served
    by_httproute = httproute_served(ctx, label, grp, proxy, split)
    if by_httproute is not None:
        by_httproute.parts += [p for c in dict.fromkeys(text(r.get("cluster")) for r in grp if text(r.get("cluster")))
                               if (p := policy_cause(ctx, label, c, proxy)) is not None]
        return by_httproute
    uses = route_uses(ctx, grp, proxy)
    causes = [_route_cause(ctx, label, u, proxy, len(grp), what if i == 0 else "") for i, u in enumerate(uses)]
    main = causes[0]
    main.parts, main.split = causes[1:], split
    used = list(dict.fromkeys(c for u in uses for c in u.clusters))
    for cluster in used:
        policy = policy_cause(ctx, label, cluster, proxy)
        if policy is not None:
            main.parts.append(policy)
    main.parts += resilience.locality_parts(ctx, label, grp, proxy, used, all_rows)
    main.parts += resilience.hash_parts(ctx, label, grp, proxy)
    retried = [r for r in grp if int(r.get("attempts") or 0) > 1]
    if retried:
        main.parts.append(Cause(
            "ok.retried", label,
            f"{len(retried)} of these needed more than one attempt (up to {max(int(r['attempts']) for r in retried)}) "
            "and then succeeded.",
            "Envoy retried them under the route's retry policy (when the VirtualService sets none, Istio's "
            "default: 2 retries on connect-failure, refused-stream, unavailable, cancelled, "
            "retriable-status-codes; Istio's retry_host_predicate previous_hosts sends a retry to another "
            "pod when there is one), which hid the failed first attempts.",
            "Look at the pods the first attempts went to; outlierDetection in the DestinationRule ejects them.",
            [f"istioctl proxy-config endpoints {client(proxy)}"], ok=True, count=len(retried)))
    main.parts += resilience.retried_parts(ctx, label, grp, proxy)
    main.parts += resilience.reset_retry_parts(ctx, label, grp, proxy)
    return main


def route_uses(ctx: Context, grp: list[dict[str, Any]], proxy: str) -> list[RouteUse]:
    """The routes the group's requests took, most requests first."""
    env = ctx.envoy(proxy)
    host = ctx.url_host()
    uses: dict[tuple, RouteUse] = {}
    by_evidence: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in grp:
        by_evidence.setdefault((text(r.get("route")), text(r.get("cluster"))), []).append(r)
    for (route, cluster), rows in by_evidence.items():
        use = _identify(ctx, proxy, host, route, cluster)
        if use.kind == "tcp":
            url = ctx.url()
            cluster = env.tcp_proxy_cluster(url.port if url else None, ctx.service_host())
        key = (use.kind, use.vs.key if use.vs else None, use.rule, tuple(use.candidates))
        found = uses.setdefault(key, use)
        found.rows += rows
        if cluster:
            found.clusters[cluster] += len(rows)
    return sorted(uses.values(), key=lambda u: -len(u.rows))


def _identify(ctx: Context, proxy: str, host: str, route: str, cluster: str) -> RouteUse:
    env = ctx.envoy(proxy)
    if not route:
        url = ctx.url()
        # A tcp_proxy names no route: its access-log line (one per connection, no request id) gives
        # a row its cluster when the probe could join it by the connection, nothing otherwise; the
        # listener on the port says Envoy was there all the same.
        if env.tcp_proxy_cluster(url.port if url else None, ctx.service_host()):
            return RouteUse("tcp")
        if not cluster:
            return RouteUse("unknown")
    live = env.routes_to(route, cluster, host)
    vs_refs = list(dict.fromkeys(str(r["virtual_service"]) for r in live if r.get("virtual_service")))
    vs = ctx.vs_by_ref(vs_refs[0]) if vs_refs else None
    if vs is None and live and route == DEFAULT_ROUTE:
        return RouteUse("default")
    if vs is None and not live:       # no live view, or the config changed since: the objects alone
        vs = next((v for v in _applying(ctx, proxy) if _rule_of(v, route, cluster, ctx)[1]), None)
        if vs is None:
            return RouteUse("default" if route == DEFAULT_ROUTE else "unknown")
    if vs is None:
        return RouteUse("unknown")
    rule, candidates, how = _rule_of(vs, route, cluster, ctx)
    return RouteUse("vs", vs, rule, candidates, how)


def _applying(ctx: Context, proxy: str) -> list[VirtualService]:
    """VirtualServices that could route the probed request through this proxy (objects only)."""
    target = _target_host(ctx, proxy)
    out = []
    for vs in ctx.snap.virtual_services:
        ns = vs.namespace or "default"
        if not any(host_subset_of(target, to_fqdn(h, ns)) for h in vs.spec.hosts):
            continue
        if proxy == "gateway" and ctx.bound_to_ingress(vs):
            out.append(vs)
        elif proxy != "gateway" and applies_to_mesh(vs) and exported_to(vs.spec.export_to, ns, ctx.client_namespace()):
            out.append(vs)
    return out


def _rule_of(vs: VirtualService, route: str, cluster: str, ctx: Context) -> tuple[int | None, list[int], str]:
    """(the http rule index, the candidates, how it was known) for a request Envoy logged with
    `route` and `cluster` under this VirtualService."""
    if route:
        for i, rule in enumerate(vs.spec.http):
            for m in rule.match or [None]:
                if (rule.name or "") + (f".{m.name}" if m is not None and m.name else "") == route:
                    return i, [i], "Envoy logged its name as the route"
        return None, [], ""
    ns = vs.namespace or "default"
    candidates = [i for i, rule in enumerate(vs.spec.http)
                  if _may_be_unnamed(rule) and _sends_to(rule, cluster, ns)]
    if len(candidates) == 1:
        return candidates[0], candidates, "the only rule of it sending to that cluster"
    fitting = [i for i in candidates if _fits(vs.spec.http[i], ctx)]
    if fitting:
        return fitting[0], candidates, "the first rule sending to that cluster whose match fits the request"
    return None, candidates, ""


def _may_be_unnamed(rule: HTTPRoute) -> bool:
    """Some route of this rule has no name (neither the rule nor the match is named)."""
    return not rule.name and (not rule.match or any(not m.name for m in rule.match))


def _sends_to(rule: HTTPRoute, cluster: str, ns: str) -> bool:
    parsed = parse_cluster_name(cluster)
    if parsed is None:
        return not cluster and (rule.redirect is not None or rule.direct_response is not None)
    for d in rule.route or []:
        dest = d.destination
        port = dest.port.number if dest.port and dest.port.number else None
        if (to_fqdn(dest.host, ns) == parsed.host and (dest.subset or "") == parsed.subset
                and (port is None or port == parsed.port)):
            return True
    return False


def _fits(rule: HTTPRoute, ctx: Context) -> bool:
    """Whether one of the rule's matches fits the probe's request (uri, headers, query parameters,
    method, authority). Conditions istiod decides per proxy (sourceLabels, port, gateways…) were
    met, or Envoy would have no route for the rule at all."""
    return any(_match_fits(m, ctx) for m in rule.match or [None])


def _match_fits(m: HTTPMatchRequest | None, ctx: Context) -> bool:
    if m is None:
        return True
    path, _, query = ctx.request_path().partition("?")
    headers = ctx.request_headers()
    url = ctx.url()
    if m.uri is not None and not _string_fits(m.uri, path, bool(m.ignore_uri_case)):
        return False
    if m.method is not None and not _string_fits(m.method, "GET"):
        return False
    if m.authority is not None and not _string_fits(m.authority, url.authority if url else None):
        return False
    if any(not _string_fits(sm, headers.get(name.lower())) for name, sm in (m.headers or {}).items()):
        return False
    if any(_string_fits(sm, headers.get(name.lower())) for name, sm in (m.without_headers or {}).items()):
        return False
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return all(_string_fits(sm, params.get(name)) for name, sm in (m.query_params or {}).items())


def _string_fits(sm: StringMatch, value: str | None, ignore_case: bool = False) -> bool:
    if value is None:
        return False
    if ignore_case:
        value = value.lower()
    if sm.exact is not None:
        return value == (sm.exact.lower() if ignore_case else sm.exact)
    if sm.prefix is not None:
        return value.startswith(sm.prefix.lower() if ignore_case else sm.prefix)
    if sm.regex is not None and sm.regex != "*":
        try:
            return re.fullmatch(sm.regex, value) is not None
        except re.error:
            return True     # RE2 syntax Python lacks: do not rule the rule out
    return True             # an empty match: presence only


def _route_cause(ctx: Context, label: str, use: RouteUse, proxy: str, total: int, what: str) -> Cause:
    cause = _route_cause_of(ctx, label, use, proxy, total, what)
    cause.count = len(use.rows)
    return cause


def _route_cause_of(ctx: Context, label: str, use: RouteUse, proxy: str, total: int, what: str) -> Cause:
    n = len(use.rows)
    who = "them" if n == total else f"{n} of the {total} requests"
    what = what or f"{n} of the {total} requests took another route."
    to = ", ".join(f"{c}" + (f" ({k})" if len(use.clusters) > 1 else "") for c, k in use.clusters.most_common())
    cmds = [f"istioctl proxy-config routes {client(proxy)} -o json"]
    if use.kind == "vs" and use.vs is not None:
        vs = use.vs
        if use.rule is not None:
            rule = vs.spec.http[use.rule]
            which = f"rule spec.http[{use.rule}]" + (f" ({rule.name!r})" if rule.name else "")
            fields = [f"spec.http[{use.rule}]"]
        else:
            which = "one of its rules " + " / ".join(f"spec.http[{i}]" for i in use.candidates)
            fields = [f"spec.http[{i}]" for i in use.candidates]
        where = "the ingress gateway" if proxy == "gateway" else "this client's sidecar"
        why = (f"{ref(vs)} routes this host at {where}; its {which} matched"
               + (f" ({use.how})" if use.how else "") + (f" and sent {who} to {to}." if to else "."))
        return Cause("ok.virtualservice-route", label, what, why, ok=True, commands=cmds, objects=[ref(vs)],
                     fields=fields)
    if use.kind == "default":
        host = next((p.host for c in use.clusters if (p := parse_cluster_name(c)) is not None), "")
        svc = ctx.snap.service_for_host(host, "default") if host else None
        why = (f"No VirtualService routes {host or 'this host'} for this client, so Envoy used the route "
               f"istiod writes for every Service port (route name `{DEFAULT_ROUTE}`): all of the Service's ready "
               f"endpoints" + (f", cluster {to}." if to else "."))
        return Cause("ok.default-route", label, what, why, ok=True, commands=cmds,
                     objects=[ref(svc)] if svc is not None else [])
    if use.kind == "tcp":
        svc_host = ctx.service_host()
        svc = ctx.snap.service_for_host(svc_host, "default") if svc_host else None
        url = ctx.url()
        why = (f"Port {url.port if url else '?'} is not an HTTP port (by its Service port's name or appProtocol), "
               f"so the sidecar's listener for it is a tcp_proxy to {to or 'the Service cluster'}: Envoy picks a pod "
               "per connection and applies no HTTP routing (no VirtualService http rule). Envoy logs TCP per "
               "connection, without a request id, so these rows carry no route, cluster or flags.")
        return Cause("ok.tcp-proxy", label, what, why, ok=True,
                     commands=[f"istioctl proxy-config listeners {client(proxy)} --port {url.port if url else ''}"],
                     objects=[ref(svc)] if svc is not None else [])
    return Cause("ok", label, what, "Envoy's evidence does not say which route served these requests.",
                 ok=True, commands=cmds)


# ------------------------------------------------------------------------- the DestinationRule

def policy_cause(ctx: Context, label: str, cluster: str, proxy: str) -> Cause | None:
    """Which DestinationRule shaped `cluster` (the live cluster's metadata says; objects otherwise)
    and where each block of its policy came from (`istiod.clusters.policy_sources`)."""
    parsed = parse_cluster_name(cluster)
    if parsed is None:
        return None
    env = ctx.envoy(proxy)
    if env.available and cluster in env.clusters:
        dr_ref = str(env.clusters[cluster].get("destination_rule") or "")
        dr = ctx.dr_by_ref(dr_ref) if dr_ref else None
    else:
        dr = _visible_dr(ctx, parsed.host)
    cmds = [f'istioctl proxy-config clusters {client(proxy)} --fqdn {parsed.host} -o json']
    if dr is None:
        return Cause("ok.no-destination-rule", label,
                     f"No DestinationRule applies to {parsed.host}, so {cluster} has Istio's defaults.",
                     "loadBalancer LEAST_REQUEST, connectionPool without limits (Envoy's circuit breakers at their "
                     "maximum), no outlierDetection.", ok=True, commands=cmds)
    sources = policy_sources(dr.spec.traffic_policy, dr.spec.subsets, parsed.port or 0, parsed.subset or None)
    applied = [(camel, path, block) for camel, (path, block) in sources.items() if block is not None]
    defaults = [camel for camel, (_, block) in sources.items() if block is None]
    replaced = [p for p in _written(dr, parsed.port or 0, parsed.subset) if p not in {a[1] for a in applied}]
    sub = f" (subset {parsed.subset!r}, spec.subsets[name={parsed.subset}])" if parsed.subset else ""
    if not applied:
        return Cause("ok.destination-rule-no-policy", label,
                     f"{ref(dr)} applies to {cluster}{sub}, but sets no traffic policy for it.",
                     "Every block is Istio's default: loadBalancer LEAST_REQUEST, no connectionPool limits, no "
                     "outlierDetection." + _replaced(replaced), ok=True, commands=cmds, objects=[ref(dr)],
                     fields=[f"spec.subsets[name={parsed.subset}]"] if parsed.subset else [])
    why = "; ".join(f"{camel} {_summary(block)} from {path}" for camel, path, block in applied) + "."
    if defaults:
        why += f" Not set, so Istio's default: {', '.join(defaults)}."
    return Cause("ok.destination-rule-policy", label, f"The traffic policy of {ref(dr)} applies to {cluster}{sub}.",
                 why + _replaced(replaced), ok=True, commands=cmds, objects=[ref(dr)],
                 fields=[path for _, path, _ in applied])


def _written(dr: DestinationRule, port: int, subset: str) -> list[str]:
    """Every block the DestinationRule writes that could apply to (port, subset)."""
    out = []
    levels = [(dr.spec.traffic_policy, "spec.trafficPolicy")]
    s = dr.subset(subset) if subset else None
    if s is not None:
        levels.append((s.traffic_policy, f"spec.subsets[name={subset}].trafficPolicy"))
    for policy, path in levels:
        if policy is None:
            continue
        out += [f"{path}.{camel}" for attr, camel in POLICY_BLOCKS if getattr(policy, attr) is not None]
        for pl in policy.port_level_settings or []:
            if pl.port and pl.port.number == port:
                out += [f"{path}.portLevelSettings[port={port}].{camel}" for attr, camel in POLICY_BLOCKS
                        if getattr(pl, attr) is not None]
    return out


def _replaced(paths: list[str]) -> str:
    if not paths:
        return ""
    return (f" Not applied to this cluster: {', '.join(paths)} — a subset's policy or a portLevelSettings entry "
            "for this port replaces it (a port-level entry replaces all four blocks, even those it leaves unset).")


def _summary(block: Any) -> str:
    """`{simple: RANDOM}`, `{http.http1MaxPendingRequests: 1, tcp.maxConnections: 1}`."""
    data = block if isinstance(block, dict) else block.model_dump(by_alias=True, exclude_none=True, mode="json")
    flat: list[str] = []

    def walk(d: Any, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                flat.append(f"{prefix}{k}: {v}")
    walk(data, "")
    return "{" + ", ".join(flat) + "}"


def _visible_dr(ctx: Context, host: str) -> DestinationRule | None:
    """Without a live view: the DestinationRule for `host` a client in its namespace would get —
    its own namespace's, then the host's namespace's, then the root namespace's (Istio's lookup
    order, pilot/pkg/model push_context.go destinationRule)."""
    ns = ctx.client_namespace()
    drs = [dr for dr in ctx.drs_for_host(host) if exported_to(dr.spec.export_to, dr.namespace or "default", ns)]
    order = [ns, host.split(".")[1] if host.count(".") > 1 else ns, ISTIO_NAMESPACE]
    return next((dr for o in order for dr in drs if (dr.namespace or "default") == o), drs[0] if drs else None)


# ------------------------------------------------------------- VirtualServices that did not apply

def vs_notes(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> list[Cause]:
    """The VirtualServices a learner might expect to have routed these requests, and why each did
    not: bound only to gateways (or not to this gateway), a `gateways` name resolved in the
    VirtualService's own namespace, hosts that do not cover the request's host, exportTo, another
    VirtualService for the same host. `via='none'`: any VirtualService or DestinationRule for the
    host, which no Envoy applied."""
    if not ctx.url_host():
        return []
    if proxy == "none":
        return _no_sidecar(ctx, label)
    target = _target_host(ctx, proxy)
    from .gateway_api import rule_of
    if rule_of(ctx, text(grp[0].get("route"))) is not None:
        return []           # an HTTPRoute's rule: the route cause names it; no VirtualService was expected
    uses = route_uses(ctx, grp, proxy)
    if uses and all(u.kind == "tcp" for u in uses):
        return []           # a TCP port: no http rule applies, as the route cause says
    used = {u.vs.key for u in uses if u.vs is not None}
    destinations = {p.host for u in uses for c in u.clusters if (p := parse_cluster_name(c)) is not None}
    defaulted = any(text(r.get("route")) == DEFAULT_ROUTE for r in grp)
    client_ns = ctx.client_namespace()
    out = []
    for vs in ctx.snap.virtual_services:
        if vs.key in used:
            continue
        ns = vs.namespace or "default"
        hosts = [to_fqdn(h, ns) for h in vs.spec.hosts]
        cmds = [f"kubectl get virtualservice {vs.name} -n {ns} -o yaml"]
        if proxy != "gateway":
            hosts = [h for h in hosts if h != "*"]   # `*` is a gateway's host (the webhook refuses it for mesh)
        if not any(host_subset_of(target, h) for h in hosts):
            if proxy == "gateway" and not ctx.bound_to_ingress(vs) and applies_to_mesh(vs) and \
                    any(host_subset_of(d, h) for d in destinations for h in hosts):
                out.append(Cause("note.vs-mesh-only", label,
                                 f"{ref(vs)} did not apply at the ingress gateway, though it routes the host the "
                                 "gateway sent these requests to.",
                                 f"It is bound to sidecars only (`mesh`). At the gateway, the VirtualService bound "
                                 f"to its Gateway already chose the cluster ({', '.join(sorted(destinations))}); "
                                 "Envoy does not apply a second VirtualService for the destination host.",
                                 "To route gateway traffic the same way, give the gateway's VirtualService the same "
                                 "rules (or bind this one to the Gateway too).", cmds, [ref(vs)], ok=True,
                                 fields=["spec.gateways"]))
            elif _meant_for(ctx, vs, target, proxy):
                expanded = (f" (Istio expands a name without a dot in the VirtualService's own namespace, {ns})"
                            if any("." not in h and h != "*" for h in vs.spec.hosts) else "")
                out.append(Cause("note.vs-host-not-matched", label,
                                 f"{ref(vs)} did not apply: its hosts do not cover {target}.",
                                 f"spec.hosts {vs.spec.hosts} mean {', '.join(hosts)}{expanded}; the request was for "
                                 f"{target}.",
                                 f"List {target} (or a name that expands to it) in spec.hosts.", cmds, [ref(vs)],
                                 ok=True, fields=["spec.hosts"]))
            continue
        if proxy == "gateway":
            out += _not_at_gateway(ctx, label, vs, cmds)
            continue
        if not exported_to(vs.spec.export_to, ns, client_ns):
            out.append(Cause("note.vs-not-exported", label,
                             f"{ref(vs)} did not apply: it is not exported to namespace {client_ns}.",
                             f"spec.exportTo {vs.spec.export_to} leaves out the client's namespace {client_ns}, so "
                             "istiod does not send it to this sidecar.",
                             f"Add {client_ns!r} (or '*') to spec.exportTo.", cmds, [ref(vs)], ok=True,
                             fields=["spec.exportTo"]))
        elif not applies_to_mesh(vs):
            out.append(Cause("note.vs-gateway-only", label,
                             f"{ref(vs)} did not apply: it is bound to gateways only.",
                             f"spec.gateways {vs.spec.gateways} has no `mesh`, so sidecars ignore it; it routes only "
                             "at those gateways.",
                             "Add `mesh` to spec.gateways if in-mesh clients should follow it too.", cmds, [ref(vs)],
                             ok=True, fields=["spec.gateways"]))
        elif used:
            winner = next(u.vs for u in uses if u.vs is not None)
            out.append(Cause("note.vs-shadowed", label,
                             f"{ref(vs)} did not apply: {ref(winner)} routes the same host.",
                             "A sidecar takes one VirtualService per host; the routes Envoy used came from "
                             f"{ref(winner)} (istioctl analyze: IST0109).",
                             "Merge the rules into one VirtualService per host.", cmds + ["istioctl analyze"],
                             [ref(vs), ref(winner)], ok=True, fields=["spec.hosts"]))
        elif defaulted:
            out.append(Cause("note.vs-no-route-for-client", label,
                             f"{ref(vs)} covers {target} and applies to sidecars, yet Envoy used the default route.",
                             "None of its rules produced a route for this client (match conditions such as "
                             "sourceLabels, sourceNamespace, port or gateways leave it out), or it was applied "
                             "after these requests.",
                             "Check the rules' match conditions against this client.", cmds, [ref(vs)], ok=True,
                             fields=["spec.http"]))
    return out


def _target_host(ctx: Context, proxy: str) -> str:
    """The host a VirtualService must cover: the Host header at the gateway; for a sidecar the
    Service the name resolves to (else the name as written)."""
    host = ctx.url_host()
    if proxy == "gateway":
        return host
    return ctx.service_host() or to_fqdn(host, ctx.client_namespace())


def _meant_for(ctx: Context, vs: VirtualService, target: str, proxy: str) -> bool:
    """A VirtualService that does not cover `target` but that a learner likely meant for it: bound
    to this gateway; a host with the same first label; or rules routing to `target`."""
    if proxy == "gateway":
        return ctx.bound_to_ingress(vs)
    if not applies_to_mesh(vs):
        return False        # a gateway's VirtualService: no sidecar would use it, whatever its hosts
    ns = vs.namespace or "default"
    first = target.split(".")[0]
    if any(h.split(".")[0] == first for h in vs.spec.hosts):
        return True
    return any(to_fqdn(d.destination.host, ns) == target for rule in vs.spec.http for d in rule.route or [])


def _not_at_gateway(ctx: Context, label: str, vs: VirtualService, cmds: list[str]) -> list[Cause]:
    """A VirtualService covering the Host header that did not route at the ingress gateway."""
    if ctx.bound_to_ingress(vs):
        return []
    mine = ctx.ingress_gateways()
    wrong_ns = [(b, g) for b in ctx.gateway_bindings(vs) if b.gateway is None for g in b.elsewhere if g in mine]
    if wrong_ns:
        b, gw = wrong_ns[0]
        return [Cause("note.gateway-ref-namespace", label,
                      f"{ref(vs)} did not apply: spec.gateways[{b.index}] {b.entry!r} means {b.resolved}.",
                      f"istiod reads a gateway name without a namespace in the VirtualService's own namespace "
                      f"(resolveGatewayName, pilot/pkg/model/config.go); there is no Gateway {b.resolved}. The "
                      f"ingress gateway's Gateway is {gw.namespace}/{gw.name}.",
                      f"Write `gateways: [{gw.namespace}/{gw.name}]`.", cmds, [ref(vs), ref(gw)], ok=True,
                      fields=[f"spec.gateways[{b.index}]"])]
    if applies_to_mesh(vs) and not ctx.gateway_bindings(vs):
        return [Cause("note.vs-mesh-only", label,
                      f"{ref(vs)} did not apply at the ingress gateway: it is bound to no gateway.",
                      "Without spec.gateways a VirtualService applies to sidecars only (`mesh`); the request came "
                      "through the ingress gateway.",
                      "Add the Gateway (`<namespace>/<name>`) to spec.gateways — and `mesh` too if sidecars should "
                      "keep following it.", cmds, [ref(vs)], ok=True, fields=["spec.gateways"])]
    return [Cause("note.vs-other-gateway", label,
                  f"{ref(vs)} did not apply at the ingress gateway: its gateways are others.",
                  f"spec.gateways {vs.spec.gateways} resolve to "
                  f"{', '.join(b.resolved for b in ctx.gateway_bindings(vs)) or 'mesh only'}, none of them a Gateway "
                  "selecting the ingress gateway (istio: ingressgateway).",
                  "Bind it to the ingress gateway's Gateway.", cmds, [ref(vs)], ok=True, fields=["spec.gateways"])]


def _no_sidecar(ctx: Context, label: str) -> list[Cause]:
    target = _target_host(ctx, "sidecar")
    vss = [vs for vs in ctx.snap.virtual_services if applies_to_mesh(vs)
           and any(host_subset_of(target, to_fqdn(h, vs.namespace or "default")) for h in vs.spec.hosts)]
    drs = ctx.drs_for_host(target)
    if not vss and not drs:
        return []
    objs = [ref(o) for o in (*vss, *drs)]
    return [Cause("note.no-sidecar", label, f"{', '.join(objs)} did not apply: no Envoy was on the path.",
                  "VirtualServices and DestinationRules are Envoy configuration: with via='none' the client "
                  "dialled the ClusterIP and kube-proxy chose the pod.",
                  "Send through the sidecar (via='sidecar') to see them act.", [], objs, ok=True)]
