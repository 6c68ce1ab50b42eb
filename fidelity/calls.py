"""Requests that exercise a state: every Service port, and a request that hits each rule.

For each VirtualService that applies to sidecars, each host is dialled (a Service it names, or —
for a host that is no Service — some Service's port with that `Host`), and for each rule and each
match one request is built that satisfies the match (uri, headers, authority, query parameters,
port), plus one that misses every rule. For each Gateway server the ingress gateway gets a request
per host (wildcards filled in) and per rule of the VirtualServices bound to it. Requests are GET
from the `sleep` client of the default namespace unless a `sourceNamespace` asks for another.
"""

from __future__ import annotations

import functools
from typing import Any

from meshlab.names import INGRESS_GATEWAY_LABELS, host_subset_of, is_wildcard, labels_match, service_of, to_fqdn
from meshlab.objects import Gateway, HTTPMatchRequest, Service, StringMatch, VirtualService
from meshlab.state import ClusterState

from .scenario import CLIENT_LABELS, Call

MAX_CALLS = 24


@functools.lru_cache(maxsize=512)
def _regex_example(regex: str, path: bool) -> str | None:
    """A short string the regex matches as a whole (RE2 and Python agree on what the generated
    patterns use), found by hypothesis's deterministic search; None if none is found."""
    try:
        from hypothesis import HealthCheck, find, settings, strategies as st
        from hypothesis.errors import NoSuchExample
    except ImportError:
        return None

    def ok(s: str) -> bool:
        return s.isascii() and s.isprintable() and " " not in s and "?" not in s and "#" not in s \
            and (not path or (s.startswith("/") and "//" not in s and "/." not in s and "%" not in s))
    try:
        return find(st.from_regex(regex, fullmatch=True), ok,
                    settings=settings(database=None, derandomize=True, max_examples=400,
                                      suppress_health_check=list(HealthCheck)))
    except (NoSuchExample, Exception):
        return None


def _satisfy(m: StringMatch | None, *, path: bool = False, default: str = "") -> str | None:
    if m is None:
        return default
    if m.exact is not None:
        return m.exact
    if m.prefix is not None:
        return m.prefix + ("x" if path and m.prefix.endswith("/") else "")
    if m.regex is not None:
        return _regex_example(m.regex, path)
    return default or "x"


def _match_request(m: HTTPMatchRequest | None) -> dict[str, Any] | None:
    """Path, headers and authority of a GET request that satisfies one match, or None."""
    if m is None:
        return {"path": "/", "headers": {}}
    if m.method is not None and _satisfy(m.method) != "GET":
        return None
    if m.scheme is not None and _satisfy(m.scheme) not in ("http",):
        return None
    path = _satisfy(m.uri, path=True, default="/")
    if path is None or not path.startswith("/"):
        return None
    if m.ignore_uri_case and path != path.upper():
        path = path.upper()                       # shows the match ignores case
    headers: dict[str, str] = {}
    for name, sm in (m.headers or {}).items():
        if name.startswith("@"):
            return None
        value = _satisfy(sm, default="x")
        if value is None or not value.isprintable():
            return None
        headers[name.lower()] = value
    query = []
    for name, sm in (m.query_params or {}).items():
        value = _satisfy(sm, default="x")
        if value is None or any(c in value for c in "&#= %+"):
            return None
        query.append(f"{name}={value}")
    if query:
        path += ("&" if "?" in path else "?") + "&".join(query)
    out: dict[str, Any] = {"path": path, "headers": headers}
    if m.authority is not None:
        auth = _satisfy(m.authority)
        if not auth:
            return None
        out["authority"] = auth
    if m.port:
        out["port"] = m.port
    return out


def _http_ports(svc: Service) -> list[int]:
    return [p.port for p in svc.spec.ports if p.protocol == "TCP"]


def _dial(st: ClusterState, host: str) -> tuple[str, int, str | None] | None:
    """(name to dial, port, Host header or None) for a VirtualService host."""
    parts = service_of(host)
    if parts is not None:
        svc = st.get(Service, parts[0], parts[1])
        if svc is not None and svc.spec.type != "ExternalName" and _http_ports(svc):
            return f"{svc.name}.{svc.namespace}", _http_ports(svc)[0], None
    candidates = [s for s in st.services() if s.spec.type != "ExternalName" and _http_ports(s)]
    if is_wildcard(host):
        for s in candidates:
            fq = f"{s.name}.{s.namespace}.svc.cluster.local"
            if host_subset_of(fq, host):
                return f"{s.name}.{s.namespace}", _http_ports(s)[0], None
        covered = "x" + host[1:] if host != "*" else None
        if covered is None:
            return None
        host = covered
    if not candidates:
        return None
    on80 = [s for s in candidates if 80 in _http_ports(s)]
    s = (on80 or candidates)[0]
    return f"{s.name}.{s.namespace}", 80 if on80 else _http_ports(s)[0], host


def derive(st: ClusterState) -> list[Call]:
    """Calls that exercise the state (see the module docstring), at most `MAX_CALLS`."""
    calls: list[Call] = []

    def add(c: Call) -> None:
        if c not in calls:
            calls.append(c)

    for svc in st.services():
        if svc.spec.type == "ExternalName":
            continue
        for port in _http_ports(svc)[:2]:
            add(Call(f"http://{svc.name}.{svc.namespace}:{port}/"))
    for vs in st.list(VirtualService):
        ns = vs.namespace or "default"
        gateways = vs.spec.gateways or ["mesh"]
        if "mesh" in gateways:
            for host in vs.spec.hosts:
                dial = _dial(st, to_fqdn(host, ns))
                if dial is None:
                    continue
                name, port, host_header = dial
                for rule in vs.spec.http:
                    for m in rule.match or [None]:
                        req = _match_request(m)
                        if req is None:
                            continue
                        client = m.source_namespace if m is not None and m.source_namespace else "default"
                        if m is not None and m.source_labels and not labels_match(m.source_labels, CLIENT_LABELS):
                            continue
                        hdrs = dict(req["headers"])
                        if "authority" in req:
                            hdrs["host"] = req["authority"]
                        elif host_header:
                            hdrs["host"] = host_header
                        add(Call(f"http://{name}:{req.get('port', port)}{req['path']}", namespace=client,
                                 headers=tuple(sorted(hdrs.items()))))
                miss = {"host": host_header} if host_header else {}
                add(Call(f"http://{name}:{port}/zz-miss", headers=tuple(miss.items())))
    for gw in st.list(Gateway):
        if gw.spec.selector and not labels_match(gw.spec.selector, INGRESS_GATEWAY_LABELS):
            continue
        ref = f"{gw.namespace}/{gw.name}"
        bound = [vs for vs in st.list(VirtualService)
                 if any(g == ref or (g == gw.name and vs.namespace == gw.namespace) for g in vs.spec.gateways)]
        for server in gw.spec.servers:
            port = server.port.number
            for h in server.hosts:
                shost = h.rpartition("/")[2]
                hosts = [shost] if not is_wildcard(shost) else \
                    [vh for vs in bound for vh in vs.spec.hosts if not is_wildcard(vh) and host_subset_of(vh, shost)] \
                    or ["x" + shost[1:] if shost != "*" else "anything.example"]
                for host in hosts[:2]:
                    authority = host if port == 80 else f"{host}:{port}"
                    add(Call(f"http://{authority}/", via="gateway"))
                    for vs in bound:
                        if not any(host_subset_of(host, to_fqdn(vh, vs.namespace or "default")) or vh == "*"
                                   for vh in vs.spec.hosts):
                            continue
                        for rule in vs.spec.http:
                            for m in rule.match or [None]:
                                req = _match_request(m)
                                if req is None or req.get("authority"):
                                    continue
                                add(Call(f"http://{authority}{req['path']}", via="gateway",
                                         headers=tuple(sorted(req["headers"].items()))))
    return calls[:MAX_CALLS]
