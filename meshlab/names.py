"""The names Kubernetes and Istio use, read one way everywhere: the course's vocabulary.

Why one module: the loader, the translator, the analyzers, explain and the probe all read host
names, cluster names, durations, label selectors and port names. When each kept its own reading
they disagreed (a `1m30s` timeout loaded, then the translator dropped the rule), so every rule
here is written once, after the Istio or Kubernetes code that defines it, and imported by all.

- host names: short-name expansion to an FQDN, Istio's wildcard matching (`host.Name`);
- Istio cluster names `outbound|9080|v2|reviews.default.svc.cluster.local`, built and parsed;
- Go durations (`1m30s`, `1.5s`, `300ms`), exactly as Go's `time.ParseDuration` reads them;
- references between Istio objects: a VirtualService's `gateways` entries, `exportTo`;
- equality-based label selection and its `k=v,k2=v2` spelling;
- a Service port's protocol from its name or appProtocol (Istio's `kube.ConvertProtocol`);
- the names of Istio's default install (istio-system, the ingress gateway's labels).

Standard library only, and imports nothing of meshlab: everything else may import it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import NamedTuple

# ------------------------------------------------------------------------------------------ hosts

#: Kubernetes' cluster domain with the `svc` label: `<service>.<namespace>.svc.cluster.local`.
CLUSTER_DOMAIN = "svc.cluster.local"
_FQDN_SUFFIX = "." + CLUSTER_DOMAIN


def fqdn(name: str, namespace: str) -> str:
    """`reviews`, `prod` → `reviews.prod.svc.cluster.local` (a Service's cluster-local name)."""
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def is_ip(host: str) -> bool:
    """An IPv4 or IPv6 address literal (not a name)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def to_fqdn(host: str, namespace: str) -> str:
    """A host as Istio reads it in an object of `namespace` (istiod's ResolveShortnameToFQDN).

    Only a name without a dot is expanded — in the namespace of the VirtualService or
    DestinationRule that names it, not the client's: `reviews` → `reviews.<ns>.svc.cluster.local`.
    `reviews.prod` is taken as already fully qualified (and matches no Service); `*`, wildcards and
    IP addresses are left alone. (istioctl's ConvertHostToFQDN agrees except that it would expand
    an IPv6 literal without dots; no course manifest names one.)
    """
    if not host or host.startswith("*") or "." in host or is_ip(host):
        return host
    return fqdn(host, namespace)


def split_fqdn(host: str) -> tuple[str, str] | None:
    """`reviews.prod.svc.cluster.local` → (`reviews`, `prod`); None for any other form.

    The namespace is the last label before `.svc.cluster.local` and the name everything before it
    (istioctl's GetResourceNameFromHost pattern `^(.+)\\.(.+)\\.svc\\.cluster\\.local$`); a name
    holding a dot is no Service name, which callers that want a Service check themselves.
    """
    if not host.endswith(_FQDN_SUFFIX):
        return None
    name, dot, namespace = host[: -len(_FQDN_SUFFIX)].rpartition(".")
    if not dot or not name or not namespace:
        return None
    return name, namespace


def service_of(host: str) -> tuple[str, str] | None:
    """The (name, namespace) of the Kubernetes Service an FQDN names, or None (not `a.b.ns.svc…`)."""
    parts = split_fqdn(host)
    return parts if parts is not None and "." not in parts[0] else None


def cluster_dns(name: str, client_namespace: str) -> tuple[str, str] | None:
    """The Service (name, namespace) cluster DNS answers for `name` asked from a pod in
    `client_namespace`, or None (NXDOMAIN as far as Services go).

    The pod's search path is `<ns>.svc.cluster.local svc.cluster.local cluster.local`, so
    `reviews`, `reviews.prod`, `reviews.prod.svc` and the FQDN all resolve; a trailing dot makes
    the name absolute (no search path): only `reviews.prod.svc.cluster.local.` resolves then.
    """
    if name.endswith("."):
        return service_of(name[:-1])
    parts = name.split(".")
    if len(parts) == 1:
        return (parts[0], client_namespace) if parts[0] else None
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        return parts[0], parts[1]
    return service_of(name)


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def host_matches(a: str, b: str) -> bool:
    """Istio's `host.Name.Matches`: the two names overlap (either may be a wildcard).

    `*.com` ~ `foo.com`, `bar.com` ~ `*.com`, `*` ~ anything; `*.foo.com` does not match `foo.com`.
    """
    if is_wildcard(a):
        if is_wildcard(b):
            return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
        return b.endswith(a[1:])
    if is_wildcard(b):
        return a.endswith(b[1:])
    return a == b


def host_subset_of(host: str, pattern: str) -> bool:
    """Istio's `host.Name.SubsetOf`: `host` is covered by `pattern` (one direction of Matches).

    `foo.com` ⊂ `*.com`, `*.a.com` ⊂ `*.com`, anything ⊂ `*`; `*.com` ⊄ `foo.com`.
    """
    if is_wildcard(host):
        return is_wildcard(pattern) and len(host) >= len(pattern) and host[1:].endswith(pattern[1:])
    if is_wildcard(pattern):
        return host.endswith(pattern[1:])
    return host == pattern


# ---------------------------------------------------------------------------------- cluster names

class ClusterName(NamedTuple):
    """The four fields of an Istio cluster name (pilot/pkg/model BuildSubsetKey)."""

    direction: str          # "outbound" | "inbound"
    port: int | None        # the Service port (None when the field is not a number)
    subset: str             # "" when the cluster is not a subset's
    host: str               # the FQDN (or ServiceEntry host)

    def __str__(self) -> str:
        return cluster_name(self.port or 0, self.subset, self.host, self.direction)


def cluster_name(port: int, subset: str | None, host: str, direction: str = "outbound") -> str:
    """Istio's cluster name: `outbound|9080|v2|reviews.default.svc.cluster.local` (Service port)."""
    return f"{direction}|{port}|{subset or ''}|{host}"


def parse_cluster_name(name: str | None) -> ClusterName | None:
    """`outbound|9080|v2|reviews.default.svc.cluster.local` → its fields; None for any other name
    (`PassthroughCluster`, `BlackHoleCluster`, an empty access-log field)."""
    if not name:
        return None
    parts = name.split("|")
    if len(parts) != 4 or parts[0] not in ("outbound", "inbound"):
        return None
    try:
        port: int | None = int(parts[1])
    except ValueError:
        port = None
    return ClusterName(parts[0], port, parts[2], parts[3])


def subset_of_cluster(name: str | None) -> str:
    """The subset field of an outbound cluster name (`outbound|9080|v2|…` → `v2`), else ''."""
    parsed = parse_cluster_name(name)
    return parsed.subset if parsed is not None and parsed.direction == "outbound" else ""


# ------------------------------------------------------------------- references between Istio objects

#: The reserved `gateways` entry that means "every sidecar" (Istio's constants.IstioMeshGateway).
MESH_GATEWAY = "mesh"


def gateway_ref(name: str, namespace: str) -> str:
    """A VirtualService's `gateways` entry (or a match's) as istiod resolves it: the
    `<namespace>/<name>` of the Gateway it binds to; `mesh` stays `mesh`.

    istiod's resolveGatewayName (pilot/pkg/model/config.go), applied to every VirtualService by
    ResolveVirtualServiceShortnames (pilot/pkg/model/virtualservice.go), with `namespace` the
    VirtualService's own:

    - `ns/name` is taken as written; `./name` is `<namespace>/name`;
    - a short `name` (no dot) is `<namespace>/name` — a Gateway in the VirtualService's namespace,
      whatever namespace a Gateway of that name really lives in;
    - a dotted `name.ns[.svc.cluster.local]` is the legacy FQDN form: `ns/name`.
    """
    if name == MESH_GATEWAY:
        return name
    if "/" in name:
        before, _, after = name.partition("/")
        return f"{namespace}/{after}" if before == "." else name
    if "." not in name:
        return f"{namespace}/{name}"
    first, _, rest = name.partition(".")
    return f"{rest.split('.', 1)[0]}/{first}"


def exported_to(export_to: Iterable[str], obj_namespace: str, client_namespace: str) -> bool:
    """Whether an object's `exportTo` makes it visible to proxies in `client_namespace`: unset
    means everywhere (`*`, the default of Istio's mesh config), `.` its own namespace, `*` every
    namespace, any other entry that namespace (`~`, Istio's "nowhere", names none). Istio's
    visibility rules for VirtualService, DestinationRule and ServiceEntry (pilot/pkg/model
    push_context.go, `exportToDefaults`)."""
    entries = list(export_to)
    if not entries:
        return True
    return any(e == "*" or e == client_namespace or (e == "." and obj_namespace == client_namespace)
               for e in entries)


# -------------------------------------------------------------------------------------- durations

#: Go's time units in nanoseconds (time.unitMap): µ is U+00B5, μ is U+03BC; both mean micro.
_GO_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_NS_PER_S = 1_000_000_000
_MAX = 1 << 63


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration string, read exactly as Go's `time.ParseDuration` reads it.

    A possibly signed sequence of decimal numbers, each with an optional fraction and a unit:
    `300ms`, `-1.5h`, `2h45m`, `1m30s`, `.5s`; units ns, us (µs, μs), ms, s, m, h; `0` alone
    needs no unit. This is what Istio's CRDs take for every duration field. Raises ValueError
    with Go's own wording (`time: missing unit in duration "1"`) otherwise, or on overflow
    (more than about 290 years).
    """
    if not isinstance(text, str):
        raise ValueError(f"time: invalid duration {text!r}")
    orig, s = text, text

    def invalid(what: str = "invalid duration") -> ValueError:
        return ValueError(f"time: {what} {_go_quote(orig)}")

    neg = False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid()
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid()
        i = 0                                    # [0-9]*
        v = 0
        while i < len(s) and "0" <= s[i] <= "9":
            if v > _MAX // 10:
                raise invalid()
            v = v * 10 + ord(s[i]) - 48
            if v > _MAX:
                raise invalid()
            i += 1
        pre = i > 0
        s = s[i:]
        f, scale, post = 0, 1.0, False           # (\.[0-9]*)?
        if s[:1] == ".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:
                    if f > (_MAX - 1) // 10:
                        overflow = True
                    else:
                        y = f * 10 + ord(s[i]) - 48
                        if y > _MAX:
                            overflow = True
                        else:
                            f, scale = y, scale * 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:                 # no digits, e.g. ".s"
            raise invalid()
        i = 0                                    # the unit: up to the next digit or dot
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise invalid("missing unit in duration")
        unit_name, s = s[:i], s[i:]
        unit = _GO_UNITS.get(unit_name)
        if unit is None:
            raise invalid(f"unknown unit {_go_quote(unit_name)} in duration")
        if v > _MAX // unit:
            raise invalid()
        v *= unit
        if f > 0:
            # Go: float64 so that fractions of hours stay nanosecond-accurate, truncated
            v += int(float(f) * (float(unit) / scale))
            if v > _MAX:
                raise invalid()
        total += v
        if total > _MAX:
            raise invalid()
    if neg:
        return -total
    if total > _MAX - 1:
        raise invalid()
    return total


def _go_quote(s: str) -> str:
    """Go's strconv.Quote for the strings a duration error shows (close enough: JSON escaping)."""
    import json
    return json.dumps(s, ensure_ascii=False)


def duration_seconds(text: str) -> float:
    """Seconds in a Go duration (`1m30s` → 90.0); ValueError as `parse_duration`."""
    return parse_duration(text) / _NS_PER_S


def proto_duration(text: str) -> str:
    """A Go duration as protobuf's JSON Duration, the form Envoy's config takes, written shortest:
    `1m30s` → `90s`, `1500ms` → `1.5s`, `1us` → `0.000001s`. ValueError as `parse_duration`."""
    ns = parse_duration(text)
    sign = "-" if ns < 0 else ""
    secs, frac = divmod(abs(ns), _NS_PER_S)
    return f"{sign}{secs}" + (f".{frac:09d}".rstrip("0") if frac else "") + "s"


# ------------------------------------------------------------------------------- label selection

def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Equality-based selection: every `key: value` of the selector is among the labels (an empty
    selector selects everything; a Service *without* a selector selects nothing — callers that hold
    an optional selector say so: `selector is not None and labels_match(selector, labels)`)."""
    return all(labels.get(k) == v for k, v in selector.items())


def selector_string(selector: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Kubernetes' `labels.Set(…).String()`: `k=v` pairs sorted and joined by commas, the form
    `kubectl get -l` and the API's `labelSelector` take."""
    pairs = selector.items() if isinstance(selector, Mapping) else selector
    return ",".join(f"{k}={v}" for k, v in sorted(pairs))


# -------------------------------------------------------------------------------- port protocols

#: Istio's protocol names (pkg/config/protocol), keyed by the lower-case port-name prefix.
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS",
              "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL"}
#: Ports Istio treats as TCP when the name says nothing (SMTP, DNS, MySQL, MongoDB).
_WELL_KNOWN_TCP = frozenset({25, 53, 3306, 27017})
#: What Istio answers when neither appProtocol nor the name says: it sniffs the protocol.
UNSUPPORTED = "UnsupportedProtocol"
HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"})
TCP_FAMILY = frozenset({"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"})


def protocol_from_name(name: str | None) -> str:
    """Istio's `protocol.Parse` of a declared protocol (`http`, `HTTP2`, …), case-insensitive;
    `UnsupportedProtocol` for anything else (ServiceEntry and Gateway ports declare theirs)."""
    return _PROTOCOLS.get((name or "").lower(), UNSUPPORTED)


def port_protocol(number: int, name: str | None, transport: str = "TCP", app_protocol: str | None = None) -> str:
    """Istio's protocol for a Kubernetes Service port (kube.ConvertProtocol).

    UDP ports are UDP; otherwise appProtocol when set (with Kubernetes' `kubernetes.io/h2c`,
    `…/ws`, `…/wss`), else the port name up to its first '-' (`http-web` → HTTP, `grpc-web…` →
    GRPC-Web); an unknown prefix is TCP on well-known TCP ports, else `UnsupportedProtocol`.
    """
    if transport == "UDP":
        return "UDP"
    label = name or ""
    if app_protocol is not None:
        label = app_protocol
        special = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
        if label in special:
            return special[label]
    if label[:8].lower() == "grpc-web":
        return "GRPC-Web"
    found = protocol_from_name(label.split("-", 1)[0])
    if found == UNSUPPORTED and number in _WELL_KNOWN_TCP:
        return "TCP"
    return found


# -------------------------------------------------------------------------- Istio's default install

#: Where Istio's control plane and ingress gateway live; also the mesh's root namespace.
ISTIO_NAMESPACE = "istio-system"
#: The ingress gateway of Istio's default profile: its Deployment/Service name and pod labels (what
#: a course Gateway's `selector: {istio: ingressgateway}` selects).
INGRESS_GATEWAY = "istio-ingressgateway"
INGRESS_GATEWAY_LABELS: Mapping[str, str] = {"istio": "ingressgateway", "app": INGRESS_GATEWAY}
#: That gateway's Service ports → the container ports it listens on (the default profile's
#: `istio-ingressgateway` Service: http2 80→8080, https 443→8443, status-port 15021).
INGRESS_GATEWAY_PORTS: Mapping[int, int] = {80: 8080, 443: 8443}


__all__ = [
    "CLUSTER_DOMAIN", "ClusterName", "HTTP_FAMILY", "INGRESS_GATEWAY", "INGRESS_GATEWAY_LABELS",
    "INGRESS_GATEWAY_PORTS", "ISTIO_NAMESPACE",
    "MESH_GATEWAY", "TCP_FAMILY", "UNSUPPORTED", "cluster_dns", "cluster_name", "duration_seconds", "exported_to",
    "fqdn", "gateway_ref", "host_matches",
    "host_subset_of", "is_ip", "is_wildcard", "labels_match", "parse_cluster_name", "parse_duration",
    "port_protocol", "protocol_from_name", "proto_duration", "selector_string", "service_of", "split_fqdn",
    "subset_of_cluster", "to_fqdn",
]


def zone_of(locality: str) -> str:
    """The zone of a `region/zone/subzone` locality ('' when it has none)."""
    parts = locality.split("/")
    return parts[1] if len(parts) > 1 else ""


#: The status codes Go's net/http names (http.StatusText): Istio's webhook takes them as retryOn
#: policies, and istiod turns them into retriable status codes (retry.parseRetryOn).
HTTP_STATUS_NAMED = frozenset([100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308,
                               *range(400, 419), *range(421, 427), 428, 429, 431, 451, *range(500, 509), 510, 511])
