"""Outcomes of requests routed by Gateway API HTTPRoutes (and GRPCRoutes): which rule served them, and why a backend
answered 500 NC or a gateway 404 NR — with the status conditions istiod wrote for the route.

istiod names each route it generates from an HTTPRoute `<namespace>.<route>.<rule index>` (or the
rule's `name`): Envoy logs that name, so a request leads back to its HTTPRoute rule. A backendRef
whose Service does not exist, or that points into another namespace without a ReferenceGrant,
still becomes a route — to a cluster Envoy does not have (`outbound|…|<missing host>`, or
`UnknownService`) — and istiod sets `cluster_not_found_response_code: 500` on every Gateway API
route (the spec's rule), so Envoy answers **500** NC where a VirtualService's would be 503 NC.
"""

from __future__ import annotations

from typing import Any

from ..gateway_api import GATEWAY_NAME_LABEL, GatewayAPI, deployment_name
from ..names import host_matches
from ..objects import GRPCRoute, GRPCRouteMatch, KubernetesGateway, KubernetesHTTPRoute, Service
from .causes import Cause, answered_by
from .context import Context, client, ref, text


def is_gateway_deployment(proxy: str) -> bool:
    """A probe row's proxy that is the Envoy Istio deployed for a Gateway API Gateway (`web-istio`)."""
    return proxy not in ("", "sidecar", "gateway", "none")


Route = KubernetesHTTPRoute | GRPCRoute


def routes(ctx: Context) -> list[Route]:
    return [*ctx.snap.state.list(KubernetesHTTPRoute), *ctx.snap.state.list(GRPCRoute)]


def rule_of(ctx: Context, route_name: str) -> tuple[Route, int] | None:
    """The HTTPRoute or GRPCRoute rule istiod named `route_name` (`<namespace>.<route>.<index>`, or
    the rule's name)."""
    if not route_name:
        return None
    for r in routes(ctx):
        ns = r.namespace or "default"
        for i, rule in enumerate(r.spec.rules or []):
            if (rule.name and rule.name == route_name) or route_name == f"{ns}.{r.name}.{i}":
                return r, i
    return None


def status_of(ctx: Context, obj: Any) -> dict[str, Any]:
    """The status istiod wrote (the lab's objects carry it), else the one its controller computes."""
    if obj.status:
        return obj.status
    if not hasattr(ctx, "_gateway_api_status"):
        ctx._gateway_api_status = GatewayAPI(ctx.snap.state).convert().status    # type: ignore[attr-defined]
    return ctx._gateway_api_status.get(obj.key, {})                           # type: ignore[attr-defined]


def conditions(ctx: Context, route: Route) -> list[str]:
    """`Accepted=True`, `ResolvedRefs=False (BackendNotFound: …)`: the route's conditions, as text."""
    out = []
    for parent in status_of(ctx, route).get("parents", []):
        for c in parent.get("conditions", []):
            detail = "" if c.get("status") == "True" else f" ({c.get('reason')}: {c.get('message')})"
            out.append(f"{c.get('type')}={c.get('status')}{detail}")
    return list(dict.fromkeys(out))


def _bad_backends(ctx: Context, route: Route, index: int) -> tuple[list[str], list[str]]:
    """(backendRefs whose Service does not exist, cross-namespace ones no ReferenceGrant allows)."""
    ns = route.namespace or "default"
    api = GatewayAPI(ctx.snap.state)
    missing, refused = [], []
    for b in (route.spec.rules or [])[index].backend_refs or []:
        to_ns = b.namespace or ns
        where = f"{b.name}" + (f" (namespace {b.namespace})" if b.namespace else "")
        # mesh routes do not enforce ReferenceGrants (route_collections.go: convertHTTPRoute(..., !mesh))
        gateway_parent = any(p.is_gateway for p in route.spec.parent_refs or [])
        if gateway_parent and b.namespace and b.namespace != ns and not api.backend_allowed(
                route.KIND, b.kind, b.group, b.name, b.namespace, ns):
            refused.append(where)
        elif ctx.snap.state.get(Service, b.name, to_ns) is None:
            missing.append(where)
    return missing, refused


def nc(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause | None:
    """500 NC on a route generated from an HTTPRoute; None when the route is not one."""
    route_name = text(grp[0].get("route"))
    found = rule_of(ctx, route_name)
    if found is None:
        return None
    route, i = found
    missing, refused = _bad_backends(ctx, route, i)
    status = int(grp[0].get("status") or 0)
    field = f"spec.rules[{i}].backendRefs"
    conds = "; ".join(conditions(ctx, route))
    cmds = [f"kubectl get {route.KIND.lower()} {route.name} -n {route.namespace} -o yaml   # status.parents[].conditions",
            f"istioctl proxy-config routes {client(proxy)} -o json"]
    what = (f"{ref(route)} rule {i} (Envoy's route {route_name!r}) sends requests to a backend Envoy has no "
            f"cluster for, so Envoy answers {status} NC (cluster_not_found).")
    if refused:
        return Cause("NC.backend-not-permitted", label, what,
                     f"{field} names {', '.join(refused)} in another namespace, and no ReferenceGrant there allows "
                     f"{route.KIND}s from namespace {route.namespace} to refer to it: istiod routes to the cluster "
                     f"`UnknownService` instead, with cluster_not_found_response_code 500 (the Gateway API's rule for "
                     f"an invalid backend). The route's status says so: {conds}.",
                     f"Create a ReferenceGrant in the backend's namespace (from: group gateway.networking.k8s.io, "
                     f"kind {route.KIND}, namespace {route.namespace}; to: group \"\", kind Service), or move the backend.",
                     cmds + ["kubectl get referencegrants -A"], [ref(route)], fields=[field])
    if missing:
        return Cause("NC.backend-not-found", label, what,
                     f"{field} names Service {', '.join(missing)}, which does not exist: istiod still routes to its "
                     f"cluster name but builds no such cluster, and every Gateway API route carries "
                     f"cluster_not_found_response_code 500 — a VirtualService's route to a missing host answers 503 "
                     f"NC instead. The route's status says so: {conds}.",
                     "Create the Service, or correct the backendRef's name (and port).",
                     cmds + ["kubectl get svc -A"], [ref(route)], fields=[field])
    return Cause("NC.backend-not-found", label, what,
                 f"The backends of {field} exist now; when these requests were sent Envoy had no cluster for them. "
                 f"Status: {conds}.", "Retry once the backend's Service is back.", cmds, [ref(route)], fields=[field])


def served(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str,
           split: dict[str, dict[str, int]]) -> Cause | None:
    """Answered requests whose route came from an HTTPRoute or GRPCRoute rule, `split` as
    `causes.split_of` gives it; None otherwise."""
    names = [text(r.get("route")) for r in grp]
    route_name = max(set(names), key=names.count) if names else ""
    found = rule_of(ctx, route_name)
    if found is None:
        return None
    route, i = found
    rule = (route.spec.rules or [])[i]
    where = (f"the gateway {proxy} (Gateway {_gateway_of(ctx, proxy)})" if is_gateway_deployment(proxy)
             else "this client's sidecar (a mesh route: parentRef a Service)")
    matches = "; ".join(_match_text(m) for m in rule.matches or []) or "any path"
    backends = ", ".join(f"{b.name}:{b.port} weight {b.weight}" for b in rule.backend_refs or []) or "none"
    code = "ok.grpcroute-rule" if isinstance(route, GRPCRoute) else "ok.httproute-rule"
    return Cause(code, label, answered_by(split),
                 f"{ref(route)} routes this request at {where}: rule spec.rules[{i}] (Envoy's route {route_name!r}, "
                 f"matches {matches}) sent it to {backends}.", ok=True,
                 commands=[f"istioctl proxy-config routes {client(proxy)} -o json"], objects=[ref(route)],
                 fields=[f"spec.rules[{i}]"], split=split)


def _match_text(m: Any) -> str:
    """`PathPrefix /api`, or a GRPCRoute's `Exact method pkg.Service/Method` (`*` for either left out)."""
    if not isinstance(m, GRPCRouteMatch):
        return f"{m.path.type} {m.path.value}"
    if m.method is None:
        return "headers " + ", ".join(h.name for h in m.headers or [])
    return f"{m.method.type} method {m.method.service or '*'}/{m.method.method or '*'}"


def _gateway_of(ctx: Context, proxy: str) -> str:
    ns, _, name = proxy.rpartition("/")
    for gw in ctx.snap.state.list(KubernetesGateway):
        if deployment_name(gw) == name and (not ns or gw.namespace == ns):
            return f"{gw.namespace}/{gw.name}"
    return name


def nr(ctx: Context, label: str, grp: list[dict[str, Any]], proxy: str) -> Cause | None:
    """404 NR at a gateway deployment, or on a Service an HTTPRoute covers; None otherwise."""
    host = ctx.url_host()
    path = ctx.request_path().partition("?")[0]
    cmds = [f"istioctl proxy-config routes {client(proxy)}"]
    what = "No route matched: 404 NR (route_not_found)."
    if is_gateway_deployment(proxy):
        gw_ref = _gateway_of(ctx, proxy)
        attached = [r for r in routes(ctx) if any(p.is_gateway and f"{p.namespace or r.namespace}/{p.name}" == gw_ref
                                                   for p in r.spec.parent_refs or [])]
        for_host = [r for r in attached if not r.spec.hostnames or any(host_matches(h, host) for h in r.spec.hostnames)]
        if not for_host:
            return Cause("NR.no-httproute-for-host", label, what,
                         f"No HTTPRoute attached to Gateway {gw_ref} lists the host {host!r} in spec.hostnames "
                         "(or the listener's hostname does not cover it), so its Envoy has no virtual host for it.",
                         "Add the host to an HTTPRoute's spec.hostnames (and a listener whose hostname covers it).",
                         cmds, [ref(r) for r in attached])
        route = for_host[0]
    else:
        covering = [r for r in routes(ctx) if any(p.is_service for p in r.spec.parent_refs or [])]
        if not covering:
            return None
        route = covering[0]
    prefixes = [m.path.value for rule in route.spec.rules or [] for m in rule.matches or []
                if not isinstance(m, GRPCRouteMatch) and m.path.type == "PathPrefix"]
    near = [p for p in prefixes if p != "/" and path.startswith(p) and path[len(p):len(p) + 1] not in ("", "/")]
    why = (f"{ref(route)} covers this host, but none of its rules matched {path!r}; an HTTPRoute adds no catch-all of "
           "its own.")
    if near:
        why += (f" PathPrefix {near[0]!r} matches whole path segments ({near[0]} and {near[0]}/…), so "
                f"{path!r} is not under it — a VirtualService `prefix` compares characters and would have matched.")
    return Cause("NR.no-matching-httproute-rule", label, what, why,
                 "Add a rule without matches (it defaults to PathPrefix /) to catch the rest.", cmds, [ref(route)],
                 fields=["spec.rules"])


__all__ = ["GATEWAY_NAME_LABEL", "is_gateway_deployment", "nc", "nr", "served", "rule_of", "conditions"]
