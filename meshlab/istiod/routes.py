"""VirtualServices → Envoy route configurations, the way istiod writes them.

What makes the course's 404s and 503s real rather than simulated:

* a VirtualService's rules become routes **in order, first match wins**; a rule without `match`
  is a catch-all and nothing after it is emitted; when a VS covers a host, its virtual host holds
  **only** the VS routes, so an unmatched request gets Envoy's own 404 NR;
* destinations become Istio cluster names whether or not the cluster exists, and the route
  configuration says `validate_clusters: false`, so a missing Service or subset is Envoy's 503 NC;
* Istio's defaults are written out: `timeout: 0s` (Envoy's own default is 15 s) and the default
  retry policy (2 retries on connect-failure, refused-stream, unavailable, cancelled,
  retriable-status-codes; previous_hosts; 5 host-selection attempts);
* `sourceLabels`, `sourceNamespace`, `gateways` and `port` are evaluated here, per proxy, as
  istiod does — they never reach Envoy;
* fault `percentage` unset means 0 %: the fault never fires.
"""

from __future__ import annotations

from typing import Any

from ..gateway_api import UNKNOWN_SERVICE, quote_meta, uses_gateway_semantics
from ..names import (
    CLUSTER_DOMAIN, HTTP_FAMILY, HTTP_STATUS_NAMED, MESH_GATEWAY, UNSUPPORTED, cluster_name, duration_seconds, gateway_ref,
    host_matches, host_subset_of, is_wildcard, labels_match, to_fqdn,
)
from ..objects import (
    ConsistentHashLB, Destination, Headers, HTTPMatchRequest, HTTPRoute, StringMatch, TrafficPolicy,
    VirtualService,
)
from .clusters import duration
from .listeners import RouteTarget
from .registry import Registry, ServiceInfo
from .registry import where as where_obj

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
_CORS_TYPE = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
_FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
_REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                   307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}
MAX_DIRECT_RESPONSE_BODY = 1024 * 1024  # Istio raises Envoy's 4 KiB limit to 1 MiB


def _previous_hosts() -> list[dict[str, Any]]:
    return [{"name": "envoy.retry_host_predicates.previous_hosts",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host."
                                       "previous_hosts.v3.PreviousHostsPredicate"}}]


def default_retry_policy(*, hashed: bool = False) -> dict[str, Any]:
    """Istio's built-in default retry policy (since 1.24: no retry on upstream 503)."""
    policy: dict[str, Any] = {"retry_on": DEFAULT_RETRY_ON, "num_retries": 2,
                              "host_selection_retry_max_attempts": "5"}
    if not hashed:  # previous_hosts would defeat consistent hashing
        policy["retry_host_predicate"] = _previous_hosts()
    return policy


def parse_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """A VS `retryOn` → (Envoy's retry_on, retriable_status_codes): numbers that are HTTP statuses
    become codes, the rest stays (retry.parseRetryOn)."""
    words, codes = [], []
    for part in (p.strip() for p in retry_on.split(",")):
        if not part:
            continue
        if part.lstrip("+-").isdigit() and int(part) in HTTP_STATUS_NAMED:
            codes.append(int(part))
        else:
            words.append(part)
    return ",".join(words), codes


def _hash_of(policy: Any) -> ConsistentHashLB | None:
    lb = policy.load_balancer if policy is not None else None
    return lb.consistent_hash if lb is not None else None


def hash_policy(ch: ConsistentHashLB | None) -> dict[str, Any] | None:
    """A DestinationRule's consistentHash → the route's Envoy hash policy (ConsistentHashToHashPolicy)."""
    if ch is None:
        return None
    if ch.http_header_name:
        return {"header": {"header_name": ch.http_header_name}}
    if ch.http_cookie:
        cookie: dict[str, Any] = {"name": ch.http_cookie.get("name", "")}
        if ch.http_cookie.get("ttl"):
            cookie["ttl"] = duration(str(ch.http_cookie["ttl"]), "httpCookie.ttl")
        if ch.http_cookie.get("path"):
            cookie["path"] = ch.http_cookie["path"]
        if ch.http_cookie.get("attributes"):
            cookie["attributes"] = [{"name": a.get("name", ""), "value": a.get("value", "")}
                                    for a in ch.http_cookie["attributes"]]
        return {"cookie": cookie}
    if ch.use_source_ip:
        return {"connection_properties": {"source_ip": True}}
    if ch.http_query_parameter_name:
        return {"query_parameter": {"name": ch.http_query_parameter_name}}
    return None


def _fraction(percent: float) -> dict[str, Any]:
    """Istio's percentage (0–100, float) → Envoy FractionalPercent per million."""
    return {"numerator": int(round(percent * 10000)), "denominator": "MILLION"}


def _string_match(m: StringMatch) -> dict[str, Any] | None:
    if m.exact is not None:
        return {"exact": m.exact}
    if m.prefix is not None:
        return {"prefix": m.prefix}
    if m.regex is not None and m.regex != "*":
        return {"safe_regex": {"regex": m.regex}}
    return None  # empty match (or regex "*"): presence only


def _header_matcher(name: str, m: StringMatch, *, invert: bool = False) -> dict[str, Any]:
    sm = _string_match(m)
    out: dict[str, Any] = {"name": name}
    if sm is None:
        out["present_match"] = True
    else:
        out["string_match"] = sm
        if invert:
            out["treat_missing_header_as_empty"] = True
    if invert:
        out["invert_match"] = True
    return out


def translate_match(m: HTTPMatchRequest | None, where: str, warnings: list[str], *,
                    gateway_semantics: bool = False) -> dict[str, Any]:
    """VS HTTPMatchRequest → Envoy RouteMatch (conditions inside one match are ANDed).

    With `gateway_semantics` (configuration generated from an HTTPRoute) a prefix other than "/"
    matches whole path segments: `path_separated_prefix` without its trailing "/"
    (route.go, translateRouteMatch)."""
    out: dict[str, Any] = {"prefix": "/"}
    if m is None:
        out["case_sensitive"] = True
        return out
    if m.uri is not None:
        if m.uri.exact is not None:
            out = {"path": m.uri.exact}
        elif m.uri.prefix is not None and gateway_semantics and m.uri.prefix != "/":
            out = {"path_separated_prefix": m.uri.prefix.rstrip("/")}
        elif m.uri.prefix is not None:
            out = {"prefix": m.uri.prefix}
        elif m.uri.regex is not None:
            out = {"safe_regex": {"regex": m.uri.regex}}
    out["case_sensitive"] = not bool(m.ignore_uri_case)
    headers = []
    for name, sm in sorted((m.headers or {}).items()):
        if name.startswith("@"):
            warnings.append(f"{where}: header match {name!r} needs JWT claims, which the local lab "
                            "does not have; the condition never matches")
            headers.append({"name": "x-meshlab-unsupported-claim-match", "present_match": True})
            continue
        headers.append(_header_matcher(name.lower(), sm))
    for pseudo, sm in ((":method", m.method), (":authority", m.authority), (":scheme", m.scheme)):
        if sm is not None:
            headers.append(_header_matcher(pseudo, sm))
    for name, sm in sorted((m.without_headers or {}).items()):
        headers.append(_header_matcher(name.lower(), sm, invert=True))
    if headers:
        out["headers"] = headers
    if m.query_params:
        qps = []
        for name, sm in sorted(m.query_params.items()):
            s = _string_match(sm)
            qps.append({"name": name, "present_match": True} if s is None
                       else {"name": name, "string_match": s})
        out["query_parameters"] = qps
    return out


def is_catch_all(match: dict[str, Any]) -> bool:
    """Istio's `IsCatchAllRoute` on a translated Envoy route match (pilot/pkg/networking/core/route/
    route.go): path prefix "/" (or path-separated prefix "/", or regex ".*") and no header or
    query-parameter condition. What Envoy never sees — `port`, `sourceLabels`, `sourceNamespace`,
    `gateways` — does not count: a match on those alone is a catch-all for the proxies it selects."""
    if match.get("headers") or match.get("query_parameters") or match.get("dynamic_metadata"):
        return False
    if match.get("prefix") == "/" or match.get("path_separated_prefix") == "/":
        return True
    return match.get("safe_regex", {}).get("regex") == ".*"


def _internal(key: str) -> bool:
    """A header Envoy may not touch: a pseudo-header (`:authority`, …) or `host` (route.go isInternalHeader)."""
    return key.startswith(":") or key.lower() == "host"


def _header_ops(h: Headers | None) -> dict[str, Any]:
    """Header operations as istiod translates them (core/route/route.go TranslateHeadersOperations):
    set then add, each sorted; `:authority`/`host` dropped here (see `_authority`)."""
    out: dict[str, Any] = {}
    if h is None:
        return out
    for side, ops in (("request", h.request), ("response", h.response)):
        if ops is None:
            continue
        add = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
               for k, v in sorted((ops.set or {}).items()) if not _internal(k)]
        add += [{"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
                for k, v in sorted((ops.add or {}).items()) if not _internal(k)]
        if add:
            out[f"{side}_headers_to_add"] = add
        remove = [k for k in ops.remove or [] if not _internal(k)]
        if remove:
            out[f"{side}_headers_to_remove"] = remove
    return out


def _authority(h: Headers | None) -> str:
    """The Host a request's `:authority`/`host` set (else add) asks for: istiod turns it into a
    host rewrite (route.go TranslateHeadersOperations), since Envoy refuses to touch it as a header."""
    if h is None or h.request is None:
        return ""
    def pick(ops: dict[str, str] | None) -> str:
        return next((v for k, v in (ops or {}).items() if k.lower() in (":authority", "host")), "")
    return pick(h.request.set) or pick(h.request.add)


class RouteBuilder:
    """Turns the HTTP rules of VirtualServices into Envoy routes for one listener port.

    `sidecar`: routes of a sidecar's route configuration, whose service registry holds only the
    Services of this port; a gateway's holds every Service (core/gateway.go
    buildNameToServiceMapForHTTPRoutes). That decides a destination without a port."""

    def __init__(self, reg: Registry, listener_port: int, *, sidecar: bool = False) -> None:
        self.reg = reg
        self.port = listener_port
        self.sidecar = sidecar

    # ---- destinations ------------------------------------------------------------------------
    def dest_cluster(self, d: Destination, vs_ns: str) -> tuple[str, ServiceInfo | None, int, str | None]:
        if not d.host:      # a backendRef istiod refused (route.GetDestinationCluster)
            return UNKNOWN_SERVICE, None, self.port, None
        host = to_fqdn(d.host, vs_ns)
        svc = self.reg.service_for(host)
        # route.GetDestinationCluster: the destination's port; else a Service's only port (in a
        # sidecar's registry every Service has exactly the listener's port, and a Service without
        # it is not there); else the listener's port, whose cluster may not exist (503 NC)
        if d.port is not None and d.port.number:
            port = d.port.number
        elif svc is not None and len(svc.ports) == 1 and not self.sidecar:
            port = svc.ports[0].port
        else:
            port = self.port
        return cluster_name(port, d.subset, host), svc, port, d.subset

    def consistent_hash(self, d: Destination, vs_ns: str) -> ConsistentHashLB | None:
        """The consistentHash a route to destination `d` hashes by (HashForHTTPDestination,
        pilot/pkg/networking/core/route/route.go): the DestinationRule's top-level one, replaced by
        its `portLevelSettings` entry's when the destination names a port, by the subset's, by the
        subset's port-level one — each only where it sets a consistentHash (not block replacement:
        the route's hash may differ from the cluster's LB policy)."""
        dr = self.reg.destination_rule(to_fqdn(d.host, vs_ns))
        if dr is None:
            return None
        tp = dr.traffic_policy
        found = _hash_of(tp)
        port = d.port.number if d.port is not None and d.port.number else None

        def port_level(policy: TrafficPolicy | None) -> ConsistentHashLB | None:
            pl = next((x for x in (policy.port_level_settings or []) if x.port and x.port.number == port),
                      None) if policy is not None and port else None
            return _hash_of(pl)
        sub = next((x for x in dr.subsets if x.name == d.subset), None) if d.subset else None
        for candidate in (port_level(tp), _hash_of(sub.traffic_policy if sub else None),
                          port_level(sub.traffic_policy if sub else None)):
            if candidate is not None:
                found = candidate
        return found

    def service_hash(self, svc: ServiceInfo) -> ConsistentHashLB | None:
        """The consistentHash of a Service's default route (hashForService): the DestinationRule's
        top-level one, or its `portLevelSettings` entry's for this port when that sets one."""
        dr = self.reg.destination_rule(svc.hostname)
        if dr is None:
            return None
        found = _hash_of(dr.traffic_policy)
        pl = next((x for x in (dr.traffic_policy.port_level_settings or []) if x.port
                   and x.port.number == self.port), None) if dr.traffic_policy is not None else None
        if pl is not None and _hash_of(pl) is not None:
            found = _hash_of(pl)
        return found

    # ---- one rule ----------------------------------------------------------------------------
    def rule_action(self, rule: HTTPRoute, vs: VirtualService, where: str) -> dict[str, Any] | None:
        """The non-match part of an Envoy route for one VS http rule (shared by its matches)."""
        vs_ns = vs.namespace or "default"
        r: dict[str, Any] = {}
        if rule.redirect is not None:
            rd = rule.redirect
            red: dict[str, Any] = {}
            if rd.uri:
                red["path_redirect"] = rd.uri
            if rd.authority:
                red["host_redirect"] = rd.authority
            if rd.prefix_rewrite:
                red["prefix_rewrite"] = rd.prefix_rewrite
            if rd.scheme:
                red["scheme_redirect"] = rd.scheme
            if rd.port is not None or rd.derive_port:
                # ApplyRedirect (route.go): FROM_REQUEST_PORT is the port the route serves; no explicit
                # :80 for http or :443 for https
                port = rd.port if rd.derive_port is None else (self.port if rd.derive_port == "FROM_REQUEST_PORT" else 0)
                scheme = rd.scheme or "http"
                if port and not ((port == 80 and scheme == "http") or (port == 443 and scheme == "https")):
                    red["port_redirect"] = port
            red["response_code"] = _REDIRECT_CODES.get(rd.redirect_code or 301, "MOVED_PERMANENTLY")
            r["redirect"] = red
        elif rule.direct_response is not None:
            dr_ = rule.direct_response
            resp: dict[str, Any] = {"status": int(dr_.get("status", 200))}
            body = dr_.get("body") or {}
            if "string" in body:
                resp["body"] = {"inline_string": str(body["string"])}
            elif "bytes" in body:
                resp["body"] = {"inline_bytes": str(body["bytes"])}
            r["direct_response"] = resp
        elif rule.route:
            r["route"], per_dest = self._route_action(rule, vs_ns, where)
            if uses_gateway_semantics(vs):
                # applyHTTPRouteDestination: a backend the route names but istiod has no cluster for
                # answers 500, as the Gateway API requires (Envoy's own default is 503)
                r["route"]["cluster_not_found_response_code"] = "INTERNAL_SERVER_ERROR"
        else:
            if rule.delegate is not None:
                self.reg.warnings.append(f"{where}: delegate VirtualServices are not modelled locally; "
                                         "the rule is left out")
            else:
                self.reg.warnings.append(f"{where}: rule has no route, redirect or directResponse; "
                                         "left out")
            return None
        r.update(_header_ops(rule.headers))
        if rule.route:
            # a single destination's header operations belong to the route itself
            for key, ops in per_dest.items():
                r[key] = r.get(key, []) + ops
        fault = self._fault(rule, where)
        if fault:
            r["typed_per_filter_config"] = {FAULT_FILTER: fault}
        if rule.cors_policy:
            cors = self._cors(rule.cors_policy, where)
            if cors:
                r.setdefault("typed_per_filter_config", {})[CORS_FILTER] = cors
        r["metadata"] = {"filter_metadata": {"istio": {
            "config": f"/apis/networking.istio.io/v1/namespaces/{vs_ns}/virtual-service/{vs.name}"}}}
        return r

    def _route_action(self, rule: HTTPRoute, vs_ns: str,
                      where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(RouteAction, header operations of a lone destination)."""
        assert rule.route
        action: dict[str, Any] = {}
        dests = rule.route
        hashes: list[dict[str, Any]] = []
        consistent = False
        dest_authority = ""
        if len(dests) == 1:
            name, svc, port, subset = self.dest_cluster(dests[0].destination, vs_ns)
            action["cluster"] = name
            h = self.consistent_hash(dests[0].destination, vs_ns)
            consistent = h is not None
            hashes += [hp] if (hp := hash_policy(h)) else []
            per_dest = _header_ops(dests[0].headers)
            dest_authority = _authority(dests[0].headers)
        else:
            clusters = []
            for d in dests:
                if not d.weight:
                    continue  # weight 0 (or unset next to others) is dropped, as istiod does
                name, svc, port, subset = self.dest_cluster(d.destination, vs_ns)
                wc: dict[str, Any] = {"name": name, "weight": d.weight}
                wc.update(_header_ops(d.headers))
                if _authority(d.headers):
                    wc["host_rewrite_literal"] = _authority(d.headers)
                clusters.append(wc)
                # istiod appends every weighted destination's hash policy, duplicates included;
                # Envoy hashes once per request, then each destination's cluster maps the hash
                hashes += [hp] if (hp := hash_policy(self.consistent_hash(d.destination, vs_ns))) else []
            per_dest = {}
            if not clusters:
                self.reg.warnings.append(f"{where}: every destination has weight 0")
                name, svc, port, subset = self.dest_cluster(dests[0].destination, vs_ns)
                clusters = [{"name": name, "weight": 1}]
            if len(clusters) == 1:
                only = clusters[0]
                action["cluster"] = only.pop("name")
                only.pop("weight")
                dest_authority = only.pop("host_rewrite_literal", "")
                per_dest = only
            else:
                action["weighted_clusters"] = {"clusters": clusters}
        action["timeout"] = duration(rule.timeout, f"{where} timeout") if rule.timeout else "0s"
        # Istio writes the deprecated max_grpc_timeout (not max_stream_duration, whose
        # grpc_timeout_header_max would make Envoy ignore the route timeout for plain HTTP)
        action["max_grpc_timeout"] = action["timeout"]
        # previous_hosts stays unless a single destination hashes (retry.ConvertPolicy)
        retry = self._retry(rule, where, hashed=consistent)
        if retry is not None:
            action["retry_policy"] = retry
        if hashes:
            action["hash_policy"] = hashes
        if rule.rewrite is not None:
            if rule.rewrite.uri is not None:
                action["prefix_rewrite"] = rule.rewrite.uri
            if rule.rewrite.uri_regex_rewrite is not None:
                rr = rule.rewrite.uri_regex_rewrite
                action["regex_rewrite"] = {"pattern": {"regex": rr.match or ""},
                                           "substitution": rr.rewrite or ""}
        # the route's own Host (headers, then rewrite.authority) wins over a lone destination's
        authority = (rule.rewrite.authority if rule.rewrite is not None and rule.rewrite.authority else "") \
            or _authority(rule.headers) or dest_authority
        if authority:
            action["host_rewrite_literal"] = authority
        mirrors = self._mirrors(rule, vs_ns)
        if mirrors:
            action["request_mirror_policies"] = mirrors
        return action, per_dest

    def _retry(self, rule: HTTPRoute, where: str, *, hashed: bool) -> dict[str, Any] | None:
        """VS `retries` → Envoy's retry policy (retry.ConvertPolicy,
        pilot/pkg/networking/core/route/retry/retry.go)."""
        rp = rule.retries
        if rp is None:
            return default_retry_policy(hashed=hashed)
        if not rp.attempts:
            return None  # attempts 0 (or unset in a retries block) disables retries altogether
        policy: dict[str, Any] = {"num_retries": rp.attempts, "retry_on": DEFAULT_RETRY_ON,
                                  "host_selection_retry_max_attempts": "5"}
        if rp.retry_on:
            policy["retry_on"], codes = parse_retry_on(rp.retry_on)
            if codes:
                if "retriable-status-codes" not in policy["retry_on"]:
                    policy["retry_on"] += ",retriable-status-codes"
                policy["retriable_status_codes"] = codes
        if rp.per_try_timeout:
            policy["per_try_timeout"] = duration(rp.per_try_timeout, f"{where} retries.perTryTimeout")
        predicate = not hashed if rp.retry_ignore_previous_hosts is None else rp.retry_ignore_previous_hosts
        if predicate:
            policy["retry_host_predicate"] = _previous_hosts()
        if rp.retry_remote_localities:
            policy["retry_priority"] = {
                "name": "envoy.retry_priorities.previous_priorities",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.priority."
                                          "previous_priorities.v3.PreviousPrioritiesConfig",
                                 "update_frequency": 2}}
        if rp.backoff:
            policy["retry_back_off"] = {"base_interval": duration(rp.backoff, f"{where} retries.backoff")}
        return policy

    def _fault(self, rule: HTTPRoute, where: str) -> dict[str, Any] | None:
        f = rule.fault
        if f is None:
            return None
        out: dict[str, Any] = {"@type": _FAULT_TYPE}
        if f.delay is not None:
            if f.delay.fixed_delay:
                pct = f.delay.percentage.value if f.delay.percentage else float(f.delay.percent or 0)
                out["delay"] = {"fixed_delay": duration(f.delay.fixed_delay, f"{where} fault.delay"),
                                "percentage": _fraction(pct)}
            elif f.delay.exponential_delay:
                self.reg.warnings.append(f"{where}: fault.delay.exponentialDelay is dropped, as "
                                         "istiod drops it")
        if f.abort is not None:
            pct = f.abort.percentage.value if f.abort.percentage else 0.0
            abort: dict[str, Any] = {"percentage": _fraction(pct)}
            if f.abort.http_status:
                abort["http_status"] = f.abort.http_status
            elif f.abort.grpc_status:
                abort["grpc_status"] = _grpc_code(f.abort.grpc_status)
            else:
                self.reg.warnings.append(f"{where}: fault.abort needs httpStatus (http2Error is not "
                                         "modelled locally)")
                abort = {}
            if abort:
                out["abort"] = abort
        return out if len(out) > 1 else None

    def _cors(self, c: dict[str, Any], where: str) -> dict[str, Any] | None:
        """VS corsPolicy → the CORS filter's per-route CorsPolicy (as istiod translates it)."""
        out: dict[str, Any] = {"@type": _CORS_TYPE}
        origins = []
        for o in c.get("allowOrigins") or []:
            sm = _string_match(StringMatch.model_validate(o)) if isinstance(o, dict) else None
            if sm:
                origins.append(sm)
        for o in c.get("allowOrigin") or []:  # deprecated list of exact origins
            origins.append({"exact": o} if o != "*" else {"prefix": "*"})
        if origins:
            out["allow_origin_string_match"] = origins
        for key, dst in (("allowMethods", "allow_methods"), ("allowHeaders", "allow_headers"),
                         ("exposeHeaders", "expose_headers")):
            if c.get(key):
                out[dst] = ",".join(c[key])
        if c.get("maxAge"):
            duration(str(c["maxAge"]), f"{where} corsPolicy.maxAge")   # names the field when it is not one
            out["max_age"] = str(int(duration_seconds(str(c["maxAge"]))))
        if c.get("allowCredentials") is not None:
            out["allow_credentials"] = bool(c["allowCredentials"])
        return out

    def _mirrors(self, rule: HTTPRoute, vs_ns: str) -> list[dict[str, Any]]:
        out = []
        items: list[tuple[Destination, float]] = []
        if rule.mirror is not None:
            pct = (rule.mirror_percentage.value if rule.mirror_percentage is not None
                   else float(rule.mirror_percent) if rule.mirror_percent is not None else 100.0)
            items.append((rule.mirror, pct))
        for m in rule.mirrors or []:
            items.append((m.destination, m.percentage.value if m.percentage is not None else 100.0))
        for dest, pct in items:
            if pct <= 0:
                continue
            name, *_ = self.dest_cluster(dest, vs_ns)
            out.append({"cluster": name, "runtime_fraction": {"default_value": _fraction(pct)}})
        return out

    # ---- whole VirtualService ----------------------------------------------------------------
    def vs_routes(self, vs: VirtualService, *, gateway_names: set[str] | None) -> list[dict[str, Any]]:
        """Envoy routes of one VS for this port and proxy (gateway_names: None for a sidecar)."""
        vs_ns = vs.namespace or "default"
        routes: list[dict[str, Any]] = []
        proxy = self.reg.proxy
        for i, rule in enumerate(vs.spec.http):
            where = f"{where_obj(vs)} http[{i}]"
            action = None
            for m in (rule.match or [None]):
                if m is not None:
                    if m.port and m.port != self.port:
                        continue
                    if m.source_labels and not labels_match(m.source_labels, proxy.labels):
                        continue
                    if m.source_namespace and m.source_namespace != proxy.namespace:
                        continue
                    if m.gateways:
                        gws = {gateway_ref(g, vs_ns) for g in m.gateways}
                        if gateway_names is None and MESH_GATEWAY not in gws:
                            continue
                        if gateway_names is not None and not (gws & gateway_names):
                            continue
                if action is None:
                    try:
                        action = self.rule_action(rule, vs, where)
                    except ValueError as e:  # e.g. a duration validation let through
                        self.reg.warnings.append(f"{e}; the rule is left out")
                        action = None
                    if action is None:
                        break
                gateway_semantics = uses_gateway_semantics(vs)
                match = translate_match(m, where, self.reg.warnings, gateway_semantics=gateway_semantics)
                name = rule.name or ""
                if m is not None and m.name:
                    name = f"{name}.{m.name}"
                route = {"name": name, "match": match, **action}
                if gateway_semantics and rule.rewrite is not None and rule.rewrite.uri == "/" and "route" in route:
                    # ReplacePrefixMatch "/" removes the matched prefix (route.go, applyHTTPRouteDestination)
                    route["route"] = {k: v for k, v in route["route"].items() if k != "prefix_rewrite"}
                    route["route"]["regex_rewrite"] = {
                        "pattern": {"regex": f"^{quote_meta(match.get('path_separated_prefix', ''))}(/?)(.*)"},
                        "substitution": "/\\2"}
                routes.append(route)
                if is_catch_all(match):
                    return routes  # nothing after a catch-all is emitted (BuildHTTPRoutesForVirtualService)
            if not rule.match:
                return routes      # a rule without match ends the VS even when it gave no route
        return routes

    def default_route(self, svc: ServiceInfo) -> dict[str, Any]:
        """The route of a Service no VirtualService covers (BuildDefaultHTTPOutboundRoute): the
        default retry policy — previous_hosts kept even when it hashes — and the Service's hash."""
        action: dict[str, Any] = {"cluster": cluster_name(self.port, None, svc.hostname),
                                  "timeout": "0s",
                                  "max_grpc_timeout": "0s",
                                  "retry_policy": default_retry_policy()}
        hp = hash_policy(self.service_hash(svc))
        if hp:
            action["hash_policy"] = [hp]
        return {"name": "default", "match": {"prefix": "/", "case_sensitive": True}, "route": action}


def _route_config(name: str, vhosts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "virtual_hosts": vhosts, "validate_clusters": False,
            "ignore_port_in_host_matching": True,
            "max_direct_response_body_size_bytes": MAX_DIRECT_RESPONSE_BODY}


def _claim(domains: list[str], used: set[str]) -> list[str]:
    """A domain already claimed by an earlier virtual host is dropped (Envoy forbids duplicates)."""
    out = []
    for d in domains:
        if d not in used:
            used.add(d)
            out.append(d)
    return out


def build_routes(reg: Registry, targets: list[RouteTarget]) -> dict[str, dict[str, Any]]:
    out = {}
    for t in targets:
        if t.servers:
            out[t.name] = _gateway_route_config(reg, t)
        else:
            out[t.name] = _sidecar_route_config(reg, t)
    return out


def vhost_domains(svc: ServiceInfo, client_namespace: str) -> list[str]:
    """Domains istiod gives a Service's virtual host for a proxy in `client_namespace`
    (core/httproute.go generateVirtualHostDomains, GenerateAltVirtualHosts).

    The host, and with a trailing dot (since 1.27) unless it is a wildcard. The host's name, not
    its registry, decides the short forms: for `<name>.<ns>.svc.cluster.local` (a Kubernetes
    Service's, or a ServiceEntry's that names one) `name`, `name.ns.svc`, `name.ns` for a proxy in
    `ns`, else `name.ns`, `name.ns.svc`; other hosts get none. A headless Kubernetes Service
    (Passthrough) adds a `*.` twin of each for per-pod names. Then the ClusterIP or the
    ServiceEntry's addresses. No `:port` twins: route configs ignore the port in host matching.
    """
    host = svc.hostname
    domains = [host] if host.startswith("*") else [host, host + "."]
    svc_at = host.find(".svc.")
    dot = host.find(".")
    if svc_at > 0 and host.endswith(CLUSTER_DOMAIN) and dot + 1 <= svc_at:
        if host[dot + 1:svc_at] == client_namespace:
            domains += [host[:dot], host[:svc_at] + ".svc", host[:svc_at]]
        else:
            domains += [host[:svc_at], host[:svc_at] + ".svc"]
    if svc.is_k8s and svc.resolution == "NONE":
        domains += ["*." + d for d in domains]
    addresses = [svc.cluster_ip] if svc.is_k8s else svc.addresses
    return domains + [a for a in addresses if a and "/" not in a]


def _sidecar_route_config(reg: Registry, t: RouteTarget) -> dict[str, Any]:
    """Route configuration `"<port>"` (every HTTP Service on the port, by Host), or for a sniffed
    port `"<host>:<port>"`: that Service's one virtual host with domain `*`, since its listener
    already chose the Service by destination address (core/httproute.go)."""
    rb = RouteBuilder(reg, t.port, sidecar=True)
    if t.service is not None:
        services = [t.service]
    else:
        # every HTTP or sniffed Service on the port, a sniffed one with a ClusterIP too, although
        # its own listener routes it by address (route.go BuildSidecarVirtualHostWrapper: IsHTTPOrSniffed)
        services = [s for s in reg.services if (p := s.port(t.port)) is not None
                    and (p.protocol in HTTP_FAMILY or p.protocol == UNSUPPORTED)]
    vss = [vs for vs in reg.virtual_services() if not vs.spec.gateways or MESH_GATEWAY in vs.spec.gateways]
    claimed: dict[str, tuple[VirtualService, list[dict[str, Any]]]] = {}
    unknown_hosts: list[tuple[str, VirtualService, list[dict[str, Any]]]] = []
    wildcard_owner = _wildcard_owners(reg, vss, services)
    on_port = [sv for sv in reg.services if sv.port(t.port) is not None]
    for vs in vss:
        hosts = reg.vs_hosts(vs)
        routes: list[dict[str, Any]] | None = None
        for svc in services:
            if svc.hostname in claimed:
                continue
            if svc.hostname not in hosts and wildcard_owner.get(svc.hostname) is not vs:
                continue
            if uses_gateway_semantics(vs) and svc.namespace != vs.namespace and reg.proxy.namespace != vs.namespace:
                continue    # a mesh HTTPRoute applies to its namespace's clients, or to its own Services'

            if routes is None:
                routes = rb.vs_routes(vs, gateway_names=None)
            if routes:  # a VS that yields no route for this proxy/port leaves the default route
                claimed[svc.hostname] = (vs, routes)
        if vs.spec.tcp or vs.spec.tls:
            reg.warnings.append(f"{where_obj(vs)}: tcp/tls rules are not "
                                "modelled by the local backend (ignored)")
        # VS hosts that are no Service on this port get their own virtual host here when the VS
        # matches an HTTP (or sniffed) Service on this port — or, when it matches none, in route
        # config "80" only (core/route/route.go buildSidecarVirtualHostsForVirtualService and
        # separateVSHostsAndServices: the registry there holds the Services of this port only)
        if t.service is None:
            unknown = [h for h in hosts if h != "*" and (
                not any(host_matches(h, sv.hostname) for sv in on_port) if is_wildcard(h)
                else not any(sv.hostname == h for sv in on_port))]
            # the VS's HTTP or sniffed Services here (`services`): those it names exactly, and those
            # its wildcard is the most specific for (a Service some VS names exactly has no owner)
            owns_one = any(sv.hostname in hosts or wildcard_owner.get(sv.hostname) is vs for sv in services)
            if unknown and (owns_one or t.port == 80):
                if routes is None:
                    routes = rb.vs_routes(vs, gateway_names=None)
                if routes:
                    unknown_hosts.extend((h, vs, routes) for h in unknown)
    used: set[str] = set()
    vhosts = []
    ordered = [s for s in services if s.hostname in claimed] + \
              [s for s in services if s.hostname not in claimed]
    for svc in ordered:
        if t.service is not None:
            domains = ["*"]
        else:
            domains = vhost_domains(svc, reg.proxy.namespace)
        domains = _claim(domains, used)
        if not domains:
            continue
        routes = claimed[svc.hostname][1] if svc.hostname in claimed else [rb.default_route(svc)]
        vhosts.append(_vhost(f"{svc.hostname}:{t.port}", domains, routes))
    for h, vs, routes in unknown_hosts:
        domains = _claim([h], used)
        if domains:
            vhosts.append(_vhost(f"{h}:{t.port}", domains, routes))
    vhosts.sort(key=lambda v: v["name"])  # istiod sorts virtual hosts by name
    if t.service is None:
        vhosts.append(_allow_any())
    return _route_config(t.name, vhosts)


def _wildcard_owners(reg: Registry, vss: list[VirtualService], services: list[ServiceInfo]) -> dict[str, VirtualService]:
    """The VirtualService a wildcard host gives each Service to (model/sidecar.go
    computeWildcardHostVirtualServiceIndex): none when some VS names the Service exactly, else
    the one with the most specific (longest) matching wildcard, the first in order among equals."""
    exact = {h for vs in vss for h in reg.vs_hosts(vs) if not is_wildcard(h)}
    out: dict[str, VirtualService] = {}
    for svc in services:
        if svc.hostname in exact:
            continue
        best: tuple[int, VirtualService] | None = None
        for vs in vss:
            for h in reg.vs_hosts(vs):
                if is_wildcard(h) and host_subset_of(svc.hostname, h) and (best is None or len(h) > best[0]):
                    best = (len(h), vs)
        if best is not None:
            out[svc.hostname] = best[1]
    return out


def _vhost(name: str, domains: list[str], routes: list[dict[str, Any]]) -> dict[str, Any]:
    # include_request_attempt_count: Istio's default proxy headers send x-envoy-attempt-count
    return {"name": name, "domains": domains, "routes": routes, "include_request_attempt_count": True}


def _allow_any() -> dict[str, Any]:
    """ALLOW_ANY catch-all (core/httproute.go buildCatchAllVirtualHost): a Host no Service claims
    goes to PassthroughCluster, i.e. to the connection's original destination."""
    passthrough = {"cluster": "PassthroughCluster", "timeout": "0s", "max_grpc_timeout": "0s"}
    return {"name": "allow_any", "domains": ["*"], "include_request_attempt_count": True, "routes": [
        {"name": "allow_any", "match": {"prefix": "/"}, "route": passthrough}]}


def _gateway_route_config(reg: Registry, t: RouteTarget) -> dict[str, Any]:
    """Route configuration `http.<port>` of the gateway, as istiod's buildGatewayHTTPRouteConfig
    (pilot/pkg/networking/core/gateway.go) builds it: server by server, each bound VirtualService's
    routes go to the virtual host of every host the server and the VS share (the more specific of
    the two); a server with `tls.httpsRedirect` marks its hosts' virtual hosts `require_tls: ALL`
    and adds a route-less one for each host of its own no VS covers (named and matched by the host
    as written, `ns/` prefix included, as istiod does); virtual hosts with the very same routes are
    merged into the first by host specificity (collapseDuplicateRoutes); none → `blackhole:<port>`."""
    builders: dict[int, RouteBuilder] = {}
    vhosts_by_host: dict[str, dict[str, Any]] = {}
    route_lists: dict[tuple[int, str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for gw, server in t.servers:
        gref = f"{gw.namespace}/{gw.name}"
        # each server builds routes and names virtual hosts by its own port number, even where
        # servers of several ports share this listener (gateway.go: port := server.Port.Number)
        port = server.port.number
        rb = builders.setdefault(port, RouteBuilder(reg, port))
        redirect = bool(server.tls and server.tls.get("httpsRedirect"))
        server_hosts = []
        for h in server.hosts:
            ns, _, host = h.rpartition("/")
            server_hosts.append(({"": "*", ".": gw.namespace or "default"}.get(ns, ns), host))
        for vs in reg.virtual_services():
            vs_ns = vs.namespace or "default"
            if gref not in {gateway_ref(g, vs_ns) for g in vs.spec.gateways}:
                continue
            shared: list[str] = []
            for h in reg.vs_hosts(vs):
                for sns, shost in server_hosts:
                    if sns != "*" and sns != vs_ns:
                        continue
                    eff = h if host_subset_of(h, shost) else shost if host_subset_of(shost, h) else None
                    if eff is not None and eff not in shared:
                        shared.append(eff)
            if not shared:
                continue
            key = (port, gref, vs.key)
            if key not in route_lists:
                route_lists[key] = rb.vs_routes(vs, gateway_names={gref})
            routes = route_lists[key]
            if not routes:
                continue
            for eff in shared:
                eff = eff.lower()
                vh = vhosts_by_host.get(eff)
                if vh is None:
                    vh = vhosts_by_host[eff] = _vhost(f"{eff}:{port}", [eff], [])
                vh["routes"] = vh["routes"] + routes
                if redirect:
                    vh["require_tls"] = "ALL"
        if redirect:
            for h in server.hosts:
                h = h.lower()
                if h in vhosts_by_host:
                    vhosts_by_host[h]["require_tls"] = "ALL"
                else:
                    vhosts_by_host[h] = {**_vhost(f"{h}:{port}", [h], []), "require_tls": "ALL"}
    if not vhosts_by_host:
        return _route_config(t.name, [{"name": f"blackhole:{t.port}", "domains": ["*"], "routes": []}])
    merged: list[dict[str, Any]] = []
    for host in sorted(vhosts_by_host, key=_specificity):
        vh = vhosts_by_host[host]
        twin = next((m for m in merged if m.get("require_tls") == vh.get("require_tls")
                     and len(m["routes"]) == len(vh["routes"])
                     and all(a is b for a, b in zip(m["routes"], vh["routes"]))), None)
        if twin is not None:
            twin["domains"] = twin["domains"] + vh["domains"]
        else:
            merged.append(vh)
    for vh in merged:     # catch-all routes go last, the rest keep VS order (route.SortVHostRoutes)
        vh["routes"] = [r for r in vh["routes"] if not is_catch_all(r["match"])] + \
                       [r for r in vh["routes"] if is_catch_all(r["match"])]
    merged.sort(key=lambda v: v["name"])          # util.SortVirtualHosts
    return _route_config(t.name, merged)


def _specificity(h: str) -> tuple[bool, int, str]:
    """istiod's host.MoreSpecific order (pkg/config/host/names.go): exact names before wildcards,
    longer before shorter, then alphabetically."""
    return (h.startswith("*"), -len(h), h)


def _grpc_code(name: str) -> int:
    codes = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
             "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
             "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
             "UNAUTHENTICATED"]
    return codes.index(name.upper()) if name.upper() in codes else 2
