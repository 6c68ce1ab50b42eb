"""What Istio's validating webhook refuses on top of the CRD schema (pkg/config/validation), for
the fields meshlab models — and the few values Istio passes on but Envoy then refuses (NACKs),
which on a real cluster fail silently in istiod's log.

Without these a value would pass `load()` and fail later, in Envoy, where the error no longer
names the object or the field: durations finer than Envoy's millisecond timers, negative pool
limits, unknown retryOn policies, regexes RE2 will not compile (`re2.py`), a redirect with a
route, hosts that are no DNS names, header values Envoy's formatter cannot parse, line breaks in
a header or a redirect, and so on. Sources, in istio/istio: pkg/config/validation/validation.go
(ValidateVirtualService, validateDestination, ValidateHTTPHeaderValue, …),
pkg/config/validation/virtualservice.go (validateHTTPRoute), header_value_validator.go
(validateHeaderValue: Envoy's header_parser.cc ported to Go), pkg/config/validation/agent/
validation.go (ValidateWildcardDomain); in envoyproxy/envoy: api/envoy/config/route/v3/
route_components.proto and cluster.proto (the constraints Envoy checks on what istiod sends).
"""

from __future__ import annotations

import re
from typing import Any

from ..names import HTTP_STATUS_NAMED, is_ip
from ..objects import (
    Destination, DestinationRule, HTTPRoute, K8sObject, ServiceEntry, StringMatch, VirtualService, duration_ns,
)
from .apiserver import DNS1123_LABEL, valid
from .messages import Where, clip, describe
from .re2 import RE2_SYNTAX, re2_problem

_MS = 1_000_000
_S = 1_000_000_000
#: gRPC status names the webhook takes for fault.abort.grpcStatus (grpc-go's codes)
_GRPC_STATUS = frozenset("""OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS
    PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED INTERNAL
    UNAVAILABLE DATA_LOSS UNAUTHENTICATED""".split())
#: retryOn policies the webhook knows (Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on)
_RETRY_ON = frozenset("""5xx gateway-error reset reset-before-request connect-failure retriable-4xx refused-stream
    retriable-status-codes retriable-headers envoy-ratelimited http3-post-connect-failure cancelled
    deadline-exceeded internal resource-exhausted unavailable""".split())
_CORS_METHODS = frozenset("GET HEAD POST PUT PATCH DELETE CONNECT OPTIONS TRACE *".split())
_MAX_REGEX = 1024          # the webhook's limit on a regex's length
_MAX_DIRECT_BODY = 1 << 20
_U32 = 4294967295
#: Envoy's RingHashLbConfig.minimum_ring_size `lte: 8388608` (cluster.proto)
_MAX_RING_SIZE = 8388608

# ----------------------------------------------------------------------------- hosts (DNS names)
# pkg/config/labels/instance.go: dns1123LabelFmt and wildcardPrefix, matched whole (Go's `$` is
# the end of the text; Python's would also match before a final newline: hence \Z)
_DNS1123_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?\Z")
_WILDCARD_LABEL = re.compile(r"(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)\Z")


def wildcard_domain_problem(host: str) -> str | None:
    """Istio's ValidateWildcardDomain (pkg/config/validation/agent/validation.go): a DNS name of at
    most 255 characters whose labels are RFC 1123 labels (letters, digits, '-'; at most 63) — so
    no port, no '_', no non-ASCII letter — a wildcard only as the whole leftmost label or its
    prefix (`*`, `*.example.com`, `*-svc.example.com`), and a top-level label that is not all
    digits. Returns why not, or None."""
    if not host:
        return "empty domain name not allowed"
    if len(host) > 255:
        return f"domain name {clip(host)} too long (max 255)"
    first, _, rest = host.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.fullmatch(first):
        return f"domain name {clip(host)} invalid (label {clip(first, 40)} invalid)"
    return _dns1123_labels_problem(rest, host) if rest else None


def _dns1123_labels_problem(labels_text: str, shown: str) -> str | None:
    """Istio's ValidateDNS1123Labels: RFC 1123 labels, a trailing dot allowed (`istio.io.`), a
    top-level label that is not all digits; `shown` is the name the message gives."""
    labels = labels_text.split(".")
    if labels[-1].isdigit():
        return f"domain name {clip(shown)} invalid (top level domain {clip(labels[-1], 40)} cannot be all-numeric)"
    for i, label in enumerate(labels):
        if i == len(labels) - 1 and label == "":          # a trailing dot: `istio.io.`
            break
        if len(label) > 63 or not _DNS1123_LABEL.fullmatch(label):
            return f"domain name {clip(shown)} invalid (label {clip(label, 40)} invalid)"
    return None


def _fqdn_problem(name: str) -> str | None:
    """Istio's ValidateFQDN (pkg/config/validation/agent/validation.go): like a host, without
    wildcards."""
    if not name:
        return "empty domain name not allowed"
    if len(name) > 255:
        return f"domain name {clip(name)} too long (max 255)"
    return _dns1123_labels_problem(name, name)


def _check_gateway_names(names: list[str] | None, path: list[str | int], p: Any) -> None:
    """Istio's validateGatewayNames (pkg/config/validation/validation.go): `<namespace>/<name>`,
    each an RFC 1123 label; a name without `/` (`mesh`, `gw`, legacy `gw.ns`) must be a DNS name,
    and, as in Istio, ends the check of the list."""
    for i, name in enumerate(names or []):
        ns, slash, gw = name.partition("/")
        if not slash:
            if (why := _fqdn_problem(name)):
                p([*path, i], why)
            return
        if not ns or not gw:
            p([*path, i], "config namespace and gateway name cannot be empty")
        if len(ns) > 63 or not _DNS1123_LABEL.fullmatch(ns):
            p([*path, i], f"invalid value for namespace: {clip(ns)} (write `<namespace>/<gateway>`; "
              "a Gateway in the VirtualService's own namespace needs no prefix)")
        if len(gw) > 63 or not _DNS1123_LABEL.fullmatch(gw):
            p([*path, i], f"invalid value for gateway name: {clip(gw)}")


def _check_authority_once(route: HTTPRoute, path: list[str | int], p: Any) -> None:
    """Istio's validateAuthorityRewrite (pkg/config/validation/virtualservice.go): a rule rewrites
    the authority in one place only: `rewrite.authority`, or one `:authority`/`host` header in
    `headers.request.set` or `.add`."""
    req = route.headers.request if route.headers is not None else None
    places = [["rewrite", "authority"]] if route.rewrite is not None and route.rewrite.authority else []
    for op in ("set", "add"):
        places += [["headers", "request", op, k] for k in (getattr(req, op, None) or {})
                   if k.lower() in (":authority", "host")]
    if len(places) > 1:
        p([*path, *places[1]], "authority header cannot be set multiple times: "
          f"{'.'.join(str(x) for x in places[0])} already sets it (keep one of them)")


def subset_name_problem(name: str) -> str | None:
    """validateSubsetName (validation.go): labels.IsDNS1123Label — Istio's own pattern, which, unlike
    the API server's, takes upper-case letters (`V1` is a valid subset name; `v1_a`, `v1.0` are not)."""
    if len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
        return (f"{clip(name)} is not a valid subset name: an RFC 1123 label (letters, digits and '-', starting and "
                f"ending with a letter or digit, at most 63)")
    return None


def _host_hint(host: str) -> str:
    if ":" in host and not is_ip(host):
        return " — a host has no port here: route by port with match.port or destination.port"
    if any(ord(c) > 127 for c in host):
        return " — write an internationalised name in its ASCII (punycode) form"
    if "*" in host[1:]:
        return " — a wildcard may only stand at the start: *.example.com"
    return ""


# ----------------------------------------------------------------------------- header values
#: protoc-gen-validate's HTTP_HEADER_VALUE (strict) as Istio copies it: no control characters but tab
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_value_problem(value: str) -> str | None:
    """Istio's ValidateHTTPHeaderValue: no control characters, and `%` only as `%%` or around an
    Envoy formatter command (`%HOSTNAME%`, `%REQ(x-foo)%`), as Envoy's header parser reads it
    (header_value_validator.go, a port of Envoy's source/common/router/header_parser.cc)."""
    if _CONTROL.search(value):
        return (f"header value {clip(value)} contains a control character (a line break?): Envoy and Istio refuse "
                f"it, since it would split the header")
    i, n, state = 0, len(value), "literal"
    while i < n:
        ch = value[i]
        if state == "literal":
            if ch == "%":
                if i + 1 >= n:
                    return (f"header value {clip(value)}: a lone '%' — Envoy reads % as the start of a command such "
                            f"as %HOSTNAME%; write %% for a percent sign")
                if value[i + 1] == "%":
                    i += 1
                else:
                    state = "name"
        elif state == "name":
            if ch == "%":
                state = "literal"
            elif ch == "(":
                state = "array"
        elif state == "array":
            if ch == "[":
                state = "expect_string"
            elif ch != " ":
                state = "string"
        elif state == "delim":
            if ch == ",":
                state = "expect_string"
            elif ch == "]":
                state = "args_end"
            elif ch != " ":
                return f"header value {clip(value)}: expecting ',', ']' or a space in the command's arguments"
        elif state == "expect_string":
            if ch == '"':
                state = "string"
            elif ch != " ":
                return f"header value {clip(value)}: expecting '\"' in the command's arguments"
        elif state == "string":
            if ch == "\\":
                if i + 1 >= n:
                    return f"header value {clip(value)}: an unterminated backslash in the command's arguments"
                i += 1
            elif ch == ")":
                state = "var_end"
            elif ch == '"':
                state = "delim"
        elif state == "args_end":
            if ch == ")":
                state = "var_end"
            elif ch != " ":
                return f"header value {clip(value)}: expecting ')' after the command's arguments"
        elif state == "var_end":
            if ch == "%":
                state = "literal"
            elif ch != " ":
                return f"header value {clip(value)}: expecting '%' to close the command"
        i += 1
    if state != "literal":
        return (f"header value {clip(value)}: an unterminated command — Envoy reads % as the start of a command such "
                f"as %HOSTNAME%; write %% for a percent sign")
    return None


def _check_headers(headers: Any, path: list[str | int], p: Any) -> None:
    """`headers.request`/`headers.response` set, add and remove, as validateHTTPRoute and
    validateHTTPRouteDestinations check them (names: ValidateHTTPHeaderWithAuthorityOperationName,
    ValidateHTTPHeaderOperationName; values: ValidateHTTPHeaderValue)."""
    if headers is None:
        return
    for side in ("request", "response"):
        ops = getattr(headers, side)
        if ops is None:
            continue
        for op in ("set", "add"):
            for name, value in (getattr(ops, op) or {}).items():
                where = [*path, side, op, name]
                why = _header_name_problem(name, side, removing=False)
                if why:
                    p(where, why, at_key=True)
                why = header_value_problem(value) if isinstance(value, str) else None
                if why:
                    p(where, why)
        for j, name in enumerate(ops.remove or []):
            why = _header_name_problem(name, side, removing=True)
            if why:
                p([*path, side, "remove", j], why)


#: RFC 7230 token characters, as validation.go's validHeaderNameRegex spells them: its class holds
#: `+-.`, a range in Go's regexp, so `,` passes too (as it does through Istio)
_HEADER_NAME = re.compile(r"[!#$%&'*+,\-.^_`|~A-Za-z0-9]+\Z")
#: the pseudo-headers a match may name (validation.go pseudoHeaders)
_PSEUDO_HEADERS = frozenset((":method", ":scheme", ":authority", ":path", ":status"))
#: JWT claim routing (pkg/jwt/routing.go HeaderJWTClaim)
_JWT_CLAIM = "@request.auth.claims"


def header_match_name_problem(name: str) -> str | None:
    """Istio's ValidateHTTPHeaderNameOrJwtClaimRoute (pkg/config/validation/validation.go) for
    `match[].headers` and `withoutHeaders` keys: a token (RFC 7230: letters, digits and
    !#$%&'*+-.^_`|~ — no space, no ':'), one of the pseudo-headers :method :scheme :authority
    :path :status, or a JWT claim `@request.auth.claims.<claim>` / `@request.auth.claims[<claim>]`."""
    if name == "":
        return "header name cannot be empty"
    lowered = name.lower()
    if lowered.startswith(_JWT_CLAIM):
        rest = name[len(_JWT_CLAIM):]
        if (rest.startswith(".") and len(rest) > 1) or (rest.startswith("[") and rest.endswith("]") and len(rest) > 2):
            return None
    if name in _PSEUDO_HEADERS:
        return None
    if not _HEADER_NAME.match(name):
        hint = ""
        if name.startswith(":"):
            hint = (" — the only pseudo-headers a match may name are " + ", ".join(sorted(_PSEUDO_HEADERS))
                    + " (match the path with uri:)")
        elif " " in name:
            hint = " — a header name has no spaces"
        return f"header name {clip(name)} is not a valid header name{hint}"
    return None


def _header_name_problem(name: str, side: str, *, removing: bool) -> str | None:
    if name == "":
        return "header name cannot be empty"
    if re.search(r"[\x00\r\n]", name):           # Envoy: HeaderValue.key is HTTP_HEADER_NAME (not strict)
        return f"header name {clip(name)} contains a line break or NUL (Envoy refuses it)"
    if name.startswith(":") and not (side == "request" and not removing and name.lower() == ":authority"):
        return f'invalid header {clip(name)}: header cannot have ":" prefix'
    if (removing or side == "response") and name.lower() == "host":
        return f'invalid header {clip(name)}: cannot set Host header'
    return None


def _no_line_breaks(value: str | None, path: list[str | int], p: Any, what: str) -> None:
    """Envoy's HTTP_HEADER_VALUE rule on a redirect's or rewrite's path and host (route_components.proto:
    RedirectAction.path_redirect/host_redirect/prefix_rewrite, RouteAction.prefix_rewrite/
    host_rewrite_literal): what becomes a header must not hold a NUL, CR or LF."""
    if isinstance(value, str) and re.search(r"[\x00\r\n]", value):
        p(path, f"{what} {clip(value)} contains a line break or NUL: it would become part of a response header "
          f"(Envoy refuses it)")


def check_object(obj: K8sObject, where: Where) -> None:
    """The webhook's rules for the kinds meshlab models (VirtualService, DestinationRule,
    ServiceEntry)."""
    if isinstance(obj, VirtualService):
        _check_virtual_service(obj, where.problem)
    elif isinstance(obj, DestinationRule):
        _check_destination_rule(obj, where.problem)
    elif isinstance(obj, ServiceEntry):
        _check_service_entry(obj, where.problem)


def _check_service_entry(se: ServiceEntry, p: Any) -> None:
    """ValidateServiceEntry (validation.go): with resolution DNS or DNS_ROUND_ROBIN and no endpoints,
    Envoy resolves the hosts themselves, so each must be a full DNS name (agent.ValidateFQDN: no
    wildcard label)."""
    if se.spec.resolution not in ("DNS", "DNS_ROUND_ROBIN") or se.spec.endpoints:
        return
    for i, host in enumerate(se.spec.hosts):
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        bad = next((label for label in labels if len(label) > 63 or not _DNS1123_LABEL.fullmatch(label)), None)
        if bad is not None or len(host) > 255:
            p(["spec", "hosts", i], f"hosts must be FQDN or contain only prefix wildcards if no endpoints are provided "
              f"for resolution mode {se.spec.resolution}: {clip(host)} has the label {clip(bad or host, 40)} — "
              f"Envoy must resolve this name itself; give endpoints, or use resolution NONE for a wildcard")


def _check_virtual_service(vs: VirtualService, p: Any) -> None:
    """Rules Istio's validating webhook adds to the CRD schema (pkg/config/validation)."""
    for i, host in enumerate(vs.spec.hosts):
        why = None if is_ip(host) else wildcard_domain_problem(host)
        if why:       # (a mesh-bound `*` is `analyze`'s IST0106, as istioctl reports it)
            p(["spec", "hosts", i], why + _host_hint(host))
    for i, route in enumerate(vs.spec.http):
        dests = route.route or []
        if len(dests) > 1 and sum(d.weight or 0 for d in dests) == 0:
            p(["spec", "http", i, "route"], "with more than one destination the weights must add up to more "
              "than 0 (Istio's webhook refuses a total weight of 0)")
        if sum(d.weight or 0 for d in dests) > _U32:
            p(["spec", "http", i, "route"], f"the weights add up to {sum(d.weight or 0 for d in dests)}, more than "
              f"Envoy takes ({_U32}: RouteAction.WeightedCluster); Istio passes it on and Envoy rejects the routes. "
              f"Weights are relative: 90 and 10 split like 900 and 100")
        _check_http_route(route, ["spec", "http", i], p)
    _check_gateway_names(vs.spec.gateways, ["spec", "gateways"], p)


def _webhook_duration(value: str | None, path: list[str | int], p: Any, *, zero_ok: bool = False,
                      unit: int = _MS) -> None:
    """The webhook's duration rule: at least 1ms and a whole number of milliseconds (Envoy's
    timers count milliseconds; `unit=_S` where whole seconds are asked); `zero_ok` for
    tcp.idleTimeout, where 0 switches the timeout off."""
    if value is None:
        return
    if not isinstance(value, str):
        p(path, f"expected a duration string such as \"30s\", found {describe(value)}")
        return
    try:
        ns = duration_ns(value)
    except ValueError as e:
        p(path, str(e))
        return
    if zero_ok and int(ns / _MS) == 0 and ns >= 0:
        return
    if ns < _MS:
        p(path, f"must be a duration of at least 1ms, found {clip(value)}")
    elif ns % _MS:
        p(path, f"must be a whole number of milliseconds (Istio's webhook refuses finer durations), "
          f"found {clip(value)}")
    elif ns % unit:
        p(path, f"must be a whole number of seconds (Istio's webhook refuses finer), found {clip(value)}")


def _non_negative(value: int | None, path: list[str | int], p: Any) -> None:
    if value is not None and value < 0:
        p(path, f"must be >= 0 (Istio's webhook refuses a negative value), found {describe(value)}")


def _percent_0_100(value: int | float | None, path: list[str | int], p: Any) -> None:
    if value is not None and not 0 <= value <= 100:
        p(path, f"must be a percentage between 0 and 100, found {describe(value)}")


def _check_regex(regex: str, path: list[str | int], p: Any) -> None:
    if regex == "":
        p(path, "a regex match must not be empty (Istio's webhook refuses it); leave the field out to match anything")
    elif len(regex) > _MAX_REGEX:
        p(path, f"regex too long: at most {_MAX_REGEX} characters (Istio's webhook limit), found {len(regex)}")
    else:
        why = re2_problem(regex)
        if why:
            p(path, f"not a valid RE2 regular expression ({why}); Istio and Envoy use RE2 syntax, not "
              f"Perl's or Python's: {RE2_SYNTAX} — found {describe(regex)}")


def _check_string_match(sm: StringMatch | None, path: list[str | int], p: Any, *, empty_prefix_ok: bool = False) -> None:
    if sm is None:
        return
    if sm.prefix == "" and not empty_prefix_ok:
        p([*path, "prefix"], "a prefix match must not be empty (Istio's webhook refuses it; only uri takes an "
          "empty prefix)")
    if sm.regex is not None:
        _check_regex(sm.regex, [*path, "regex"], p)


def _check_destination(dest: Destination | None, path: list[str | int], p: Any) -> None:
    if dest is None:
        return
    if dest.host == "*":
        p([*path, "host"], 'a destination host cannot be "*": name a service')
    elif (why := wildcard_domain_problem(dest.host)) is not None:
        p([*path, "host"], why + _host_hint(dest.host))
    if dest.subset and (why := subset_name_problem(dest.subset)):
        p([*path, "subset"], why)
    if dest.port is not None and not 1 <= dest.port.number <= 65535:
        p([*path, "port", "number"], f"must be between 1 and 65535, found {describe(dest.port.number)}")


def _check_http_route(route: HTTPRoute, path: list[str | int], p: Any) -> None:
    """One `http[]` rule, as the webhook's validateHTTPRoute checks it."""
    for k, m in enumerate(route.match or []):
        mp = [*path, "match", k]
        _check_string_match(m.uri, [*mp, "uri"], p, empty_prefix_ok=True)
        for name in ("scheme", "method", "authority"):
            _check_string_match(getattr(m, name), [*mp, name], p)
        for field_name, alias in (("headers", "headers"), ("query_params", "queryParams"),
                                  ("without_headers", "withoutHeaders")):
            for key, sm in (getattr(m, field_name) or {}).items():
                if alias != "queryParams" and (why := header_match_name_problem(key)):
                    p([*mp, alias, key], why, at_key=True)
                if alias == "withoutHeaders" and sm.regex == "*":   # Istio's "header absent" spelling
                    continue
                _check_string_match(sm, [*mp, alias, key], p)
        if m.port and not 1 <= m.port <= 65535:
            p([*mp, "port"], f"must be between 1 and 65535, found {describe(m.port)}")
        _check_gateway_names(m.gateways, [*mp, "gateways"], p)
        if m.source_namespace and not valid(m.source_namespace, DNS1123_LABEL, 63):
            p([*mp, "sourceNamespace"], f'{clip(m.source_namespace)} is not a valid namespace name (an RFC 1123 label)')
    for j, rd in enumerate(route.route or []):
        _check_destination(rd.destination, [*path, "route", j, "destination"], p)
        _check_headers(rd.headers, [*path, "route", j, "headers"], p)
    _check_headers(route.headers, [*path, "headers"], p)
    _check_authority_once(route, path, p)
    _check_destination(route.mirror, [*path, "mirror"], p)
    for j, mirror in enumerate(route.mirrors or []):
        _check_destination(mirror.destination, [*path, "mirrors", j, "destination"], p)
    if route.mirror is not None and route.mirrors:
        p([*path, "mirrors"], "only one of mirror or mirrors may be set")
    for alias, value in (("mirrorPercent", route.mirror_percent), ("mirror_percent", route.mirror_percent_legacy)):
        if value is not None and value > 100:
            p([*path, alias], f"must be at most 100, found {describe(value)}")
    _webhook_duration(route.timeout, [*path, "timeout"], p)
    if route.redirect is not None:
        _check_redirect(route, [*path, "redirect"], p)
    if route.rewrite is not None:
        _check_rewrite(route.rewrite, [*path, "rewrite"], p)
    if route.retries is not None:
        _check_retries(route.retries, [*path, "retries"], p)
    if route.fault is not None:
        _check_fault(route.fault, [*path, "fault"], p)
    if route.cors_policy is not None:
        _check_cors(route.cors_policy, [*path, "corsPolicy"], p)
    if route.direct_response is not None:
        status = route.direct_response["status"]
        if not 200 <= status <= 599:
            p([*path, "directResponse", "status"], f"must be an HTTP status from 200 to 599, found {describe(status)}")
        body = next(iter((route.direct_response.get("body") or {}).values()), "")
        if len(body.encode()) > _MAX_DIRECT_BODY:
            p([*path, "directResponse", "body"], "a direct response body must be less than 1MB (Istio's webhook limit)")
    for other in ("route", "fault", "rewrite"):
        for action, value in (("redirect", route.redirect), ("directResponse", route.direct_response)):
            if value is not None and getattr(route, other):
                p([*path, other], f"a rule with {action} cannot also have {other}")
    if route.redirect is not None and route.direct_response is not None:
        p([*path, "directResponse"], "a rule cannot have both redirect and directResponse")


def _check_cors(cors: dict[str, Any], path: list[str | int], p: Any) -> None:
    """corsPolicy is kept as a dict; the webhook checks its origins (RE2), methods and maxAge."""
    origins = cors.get("allowOrigins")
    for k, origin in enumerate(origins if isinstance(origins, list) else []):
        if not isinstance(origin, dict):
            continue
        kinds = [key for key in ("exact", "prefix", "regex") if key in origin]
        if not kinds or not origin.get(kinds[0]):
            p([*path, "allowOrigins", k], "an allowed origin needs a non-empty exact, prefix or regex")
        elif kinds[0] == "regex" and isinstance(origin["regex"], str):
            _check_regex(origin["regex"], [*path, "allowOrigins", k, "regex"], p)
    methods = cors.get("allowMethods")
    for k, method in enumerate(methods if isinstance(methods, list) else []):
        if method not in _CORS_METHODS:
            p([*path, "allowMethods", k], f"not an HTTP method Istio allows here ({', '.join(sorted(_CORS_METHODS))}), "
              f"found {describe(method)}")
    _webhook_duration(cors.get("maxAge"), [*path, "maxAge"], p, unit=_S)


def _check_redirect(route: HTTPRoute, path: list[str | int], p: Any) -> None:
    rd = route.redirect
    assert rd is not None
    if rd.uri and rd.prefix_rewrite:
        p(path, "only one of uri or prefixRewrite may be set")
    if rd.prefix_rewrite and any(m.uri is not None and m.uri.prefix is None for m in route.match or []):
        p([*path, "prefixRewrite"], "prefixRewrite needs every uri match of the rule to be a prefix match")
    if not (rd.uri or rd.prefix_rewrite or rd.authority or rd.scheme or rd.port is not None or rd.derive_port):
        p(path, "a redirect must set at least one of uri, prefixRewrite, authority, scheme or port")
    if rd.redirect_code and not 300 <= rd.redirect_code <= 399:
        p([*path, "redirectCode"], f"must be a 3xx redirect code, 300 to 399 (use 301, 302, 303, 307 or 308: "
          f"istiod drops the redirect for other codes), found {describe(rd.redirect_code)}")
    if rd.scheme and rd.scheme not in ("http", "https"):
        p([*path, "scheme"], f'must be "http" or "https", found {describe(rd.scheme)}')
    if rd.port and not 1 <= rd.port <= 65535:
        p([*path, "port"], f"must be between 1 and 65535, found {describe(rd.port)}")
    for name, value in (("uri", rd.uri), ("authority", rd.authority), ("prefixRewrite", rd.prefix_rewrite)):
        _no_line_breaks(value, [*path, name], p, f"redirect {name}")


def _check_rewrite(rw: Any, path: list[str | int], p: Any) -> None:
    for name, value in (("uri", rw.uri), ("authority", rw.authority)):
        _no_line_breaks(value, [*path, name], p, f"rewrite {name}")
    if rw.uri and rw.uri_regex_rewrite is not None:
        p(path, "only one of uri or uriRegexRewrite may be set")
    if not rw.uri and rw.uri_regex_rewrite is None and not rw.authority:
        p(path, "a rewrite must set at least one of uri, uriRegexRewrite or authority")
    rr = rw.uri_regex_rewrite
    if rr is not None:
        if not rr.match or not rr.rewrite:
            p([*path, "uriRegexRewrite"], "uriRegexRewrite needs both match and rewrite")
        if rr.match:
            _check_regex(rr.match, [*path, "uriRegexRewrite", "match"], p)


def _check_retries(rt: Any, path: list[str | int], p: Any) -> None:
    _non_negative(rt.attempts, [*path, "attempts"], p)
    if not rt.attempts and (rt.per_try_timeout is not None or rt.retry_on or rt.retry_remote_localities is not None):
        p([*path, "attempts"], "retries are switched off by attempts 0 (the default), so perTryTimeout, retryOn and "
          "retryRemoteLocalities may not be set; give attempts > 0")
    _webhook_duration(rt.per_try_timeout, [*path, "perTryTimeout"], p)
    _webhook_duration(rt.backoff, [*path, "backoff"], p)
    for policy in (rt.retry_on or "").split(",") if rt.retry_on else []:
        if policy not in _RETRY_ON and not (policy.isdigit() and int(policy) in HTTP_STATUS_NAMED):
            p([*path, "retryOn"], f'{clip(policy)} is not a retryOn policy: a comma-separated list (no spaces) of '
              f"{', '.join(sorted(_RETRY_ON))} or HTTP status codes")


def _check_fault(fault: Any, path: list[str | int], p: Any) -> None:
    if fault.abort is None and fault.delay is None:
        p(path, "a fault needs an abort, a delay or both")
    for part, value in (("abort", fault.abort), ("delay", fault.delay)):
        pct = value.percentage if value is not None else None
        if pct is not None and 0 < pct.value < 0.0001:
            p([*path, part, "percentage", "value"], f"must be 0 or between 0.0001 and 100, found {describe(pct.value)}")
    if fault.abort is not None:
        a = fault.abort
        if a.http_status is not None and not 200 <= a.http_status <= 599:
            p([*path, "abort", "httpStatus"], f"must be an HTTP status from 200 to 599, found {describe(a.http_status)}")
        if a.grpc_status is not None and a.grpc_status not in _GRPC_STATUS:
            p([*path, "abort", "grpcStatus"], f"not a gRPC status name (e.g. UNAVAILABLE, NOT_FOUND), "
              f"found {describe(a.grpc_status)}")
        if a.http2_error is not None:
            p([*path, "abort", "http2Error"], "HTTP/2 abort faults are not supported by Istio; use httpStatus")
    if fault.delay is not None:
        _webhook_duration(fault.delay.fixed_delay, [*path, "delay", "fixedDelay"], p)
        if fault.delay.exponential_delay is not None:
            p([*path, "delay", "exponentialDelay"], "exponentialDelay is not supported by Istio; use fixedDelay")


def _check_traffic_policy(tp: Any, path: list[str | int], p: Any, *, port_level: bool = False) -> None:
    """A trafficPolicy (or one of its portLevelSettings), as the webhook's validateTrafficPolicy does."""
    if tp is None:
        return
    fields = ("outlier_detection", "connection_pool", "load_balancer", "tls") + (
        () if port_level else ("port_level_settings", "tunnel", "proxy_protocol", "retry_budget"))
    if all(getattr(tp, f) is None for f in fields):
        p(path, "a traffic policy must set at least one field")
    if not port_level and tp.tunnel is not None and tp.proxy_protocol is not None:
        p(path, "only one of tunnel or proxyProtocol may be set")
    if port_level and tp.port is None:
        p([*path, "port"], "required field port is missing")
    _check_outlier_detection(tp.outlier_detection, [*path, "outlierDetection"], p)
    _check_connection_pool(tp.connection_pool, [*path, "connectionPool"], p)
    lb = tp.load_balancer
    if lb is not None and lb.consistent_hash is not None and lb.consistent_hash.http_cookie is not None \
            and not lb.consistent_hash.http_cookie.get("name"):
        p([*path, "loadBalancer", "consistentHash", "httpCookie", "name"], "required field name is missing")
    if lb is not None and lb.consistent_hash is not None:
        ch, chp = lb.consistent_hash, [*path, "loadBalancer", "consistentHash"]
        for where, size in ((["minimumRingSize"], ch.minimum_ring_size),
                            (["ringHash", "minimumRingSize"], (ch.ring_hash or {}).get("minimumRingSize"))):
            if isinstance(size, int) and size > _MAX_RING_SIZE:
                p([*chp, *where], f"must be at most {_MAX_RING_SIZE} (Envoy's RingHashLbConfig limit; Istio passes "
                  f"it on and Envoy rejects the cluster), found {size}")
    if not port_level:
        for i, plp in enumerate(tp.port_level_settings or []):
            _check_traffic_policy(plp, [*path, "portLevelSettings", i], p, port_level=True)


def _check_outlier_detection(od: Any, path: list[str | int], p: Any) -> None:
    if od is None:
        return
    _webhook_duration(od.interval, [*path, "interval"], p)
    _webhook_duration(od.base_ejection_time, [*path, "baseEjectionTime"], p)
    _percent_0_100(od.max_ejection_percent, [*path, "maxEjectionPercent"], p)
    _percent_0_100(od.min_health_percent, [*path, "minHealthPercent"], p)
    if od.consecutive_local_origin_failures and not od.split_external_local_origin_errors:
        p([*path, "consecutiveLocalOriginFailures"], "needs splitExternalLocalOriginErrors: true (local origin "
          "failures are only counted apart when split)")


def _check_connection_pool(cp: Any, path: list[str | int], p: Any) -> None:
    if cp is None:
        return
    if cp.tcp is None and cp.http is None:
        p(path, "a connection pool must set tcp, http or both")
    if cp.tcp is not None:
        t, tp = cp.tcp, [*path, "tcp"]
        _non_negative(t.max_connections, [*tp, "maxConnections"], p)
        _webhook_duration(t.connect_timeout, [*tp, "connectTimeout"], p)
        _webhook_duration(t.max_connection_duration, [*tp, "maxConnectionDuration"], p)
        _webhook_duration(t.idle_timeout, [*tp, "idleTimeout"], p, zero_ok=True)
        for key in ("time", "interval"):
            _webhook_duration((t.tcp_keepalive or {}).get(key), [*tp, "tcpKeepalive", key], p)
    if cp.http is not None:
        h, hp = cp.http, [*path, "http"]
        for field_name in ("http1_max_pending_requests", "http2_max_requests", "max_requests_per_connection",
                           "max_retries", "max_concurrent_streams"):
            _non_negative(getattr(h, field_name), [*hp, type(h).model_fields[field_name].alias or field_name], p)
        _webhook_duration(h.idle_timeout, [*hp, "idleTimeout"], p)
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            p([*hp, "useClientProtocol"], "must not be true when h2UpgradePolicy is UPGRADE")
        if h.http2_keep_alive is not None:
            for key in ("interval", "timeout"):
                if h.http2_keep_alive.get(key) is None:
                    p([*hp, "http2KeepAlive", key], f"required field {key} is missing")
                _webhook_duration(h.http2_keep_alive.get(key), [*hp, "http2KeepAlive", key], p)


def _check_destination_rule(dr: DestinationRule, p: Any) -> None:
    """Rules Istio's validating webhook adds to the CRD schema for a DestinationRule."""
    why = wildcard_domain_problem(dr.spec.host)
    if why:
        p(["spec", "host"], why + _host_hint(dr.spec.host))
    _check_traffic_policy(dr.spec.traffic_policy, ["spec", "trafficPolicy"], p)
    for i, subset in enumerate(dr.spec.subsets):
        if subset.name and (why := subset_name_problem(subset.name)):
            p(["spec", "subsets", i, "name"], why)
        _check_traffic_policy(subset.traffic_policy, ["spec", "subsets", i, "trafficPolicy"], p)
