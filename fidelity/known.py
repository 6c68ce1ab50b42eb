"""Known differences: where meshlab deliberately differs from Istio, cannot model something, or
the oracle itself cannot answer as Envoy would. Each has a stable code and its reason.

A call or a config line that one of these explains is counted as **unmodelled** (never as
agreement) and listed by code in the runner's report with its count, so a difference is always
named, never skipped. Everything not listed here is a divergence to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

#: A host as an HTTP/1.1 `Host` may carry it (RFC 3986 reg-name or IPv4, optional port).
_VALID_AUTHORITY = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=%-]+(:[0-9]*)?$")


@dataclass(frozen=True)
class Known:
    code: str
    reason: str
    #: (golden entry, Call, the lab's rows, the proxy's ProxyConfig from meshlab's translator)
    call: Callable[[dict[str, Any], Any, list[dict[str, Any]], Any], bool] | None = None
    #: (what, name, warnings): `name` is a cluster, listener or route configuration (`what`) that
    #: only Istio builds for a proxy whose translation gave `warnings`
    config: Callable[[str, str, list[str]], bool] | None = None


def _invalid_authority(entry: dict[str, Any], call: Any, rows: list[dict[str, Any]], cfg: Any) -> bool:
    authority = call.authority if call is not None else ""
    return bool(authority) and not _VALID_AUTHORITY.match(authority)


def _unmodelled_gateway_listeners(warnings: list[str]) -> set[str]:
    """The gateway listeners (`0.0.0.0_<target port>`) of servers the translator left out."""
    from meshlab.names import INGRESS_GATEWAY_PORTS
    ports = {int(m.group(1)) for w in warnings if (m := re.search(r"server port (\d+): protocol \S+ is not modelled", w))}
    return {f"0.0.0.0_{INGRESS_GATEWAY_PORTS.get(p, p)}" for p in ports}


def _gateway_tls(entry: dict[str, Any], call: Any, rows: list[dict[str, Any]], cfg: Any) -> bool:
    return call is not None and call.via == "gateway" and cfg is not None \
        and entry.get("listener", "") in _unmodelled_gateway_listeners(cfg.warnings)


def _local_replies(entry: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(o["outcome"].get("status"), o["outcome"].get("flags", "-")) for o in entry.get("outcomes") or []
            if o["outcome"].get("kind") == "local_reply"}


def _http2_upstream(entry: dict[str, Any], call: Any, rows: list[dict[str, Any]], cfg: Any) -> bool:
    """The lab's pod answered Envoy's HTTP/2 with a protocol error on a cluster istiod makes HTTP/2
    (the other rows being Envoy's own replies Istio expects, e.g. a partial fault)."""
    upe = [r for r in rows if r.get("status") == 502 and "UPE" in str(r.get("flags"))]
    rest = [r for r in rows if r not in upe]
    if cfg is None or not upe or any((r.get("status"), r.get("flags")) not in _local_replies(entry) for r in rest):
        return False
    rows = upe
    h2 = {c["name"] for c in cfg.clusters
          if "http2_protocol_options" in str(c.get("typed_extension_protocol_options", {}))
          and "use_downstream_protocol_config" not in str(c.get("typed_extension_protocol_options", {}))}
    istio = {o["outcome"].get("cluster") for o in entry.get("outcomes") or [] if o["outcome"].get("kind") == "upstream"}
    return {r.get("cluster") for r in rows} <= h2 & istio


def _gateway_tls_config(what: str, name: str, warnings: list[str]) -> bool:
    if what == "listeners":
        return name in _unmodelled_gateway_listeners(warnings)
    return what == "route configs" and name.split(".", 1)[0] in ("https", "tls", "tcp") and bool(_unmodelled_gateway_listeners(warnings))


def _inbound(what: str, name: str, warnings: list[str]) -> bool:
    return name in ("virtualInbound", "InboundPassthroughCluster") or (what == "clusters" and name.startswith("inbound|"))


def _passthrough_to_nothing(entry: dict[str, Any], call: Any, rows: list[dict[str, Any]], cfg: Any) -> bool:
    outcomes = [o["outcome"] for o in entry.get("outcomes") or []] or ([entry["decided"]] if "decided" in entry else [])
    return bool(outcomes) and all(o.get("kind") == "passthrough" for o in outcomes) \
        and bool(rows) and all(r.get("error") in ("reset", "refused") for r in rows)


def _external_name_alias(what: str, name: str, warnings: list[str]) -> bool:
    """A domain of an ExternalName Service (the lab warns it is not modelled) that istiod adds to
    the virtual host of the Service it names, as an alias (generateVirtualHostDomains, Aliases)."""
    if not what.endswith(": domains"):
        return False
    host = name.lstrip("*.").rstrip(".")
    for w in warnings:
        m = re.match(r"Service (\S+)/(\S+)(?: \(.*\))?: type ExternalName is not modelled", w)
        if m:
            ns, svc = m.groups()
            if host in (svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"):
                return True
    return False


KNOWN: list[Known] = [
    Known("inbound",
          "The local lab's pods are plain processes without an inbound sidecar: Istio's virtualInbound, "
          "InboundPassthroughCluster and inbound|… clusters of a sidecar have no counterpart "
          "(meshlab/istiod/translate.py; README, what the local backend models).",
          config=_inbound),
    Known("gateway-tls",
          "Gateway servers of protocol HTTPS, TLS or TCP are not modelled by the local gateway (no "
          "certificates, HTTP only); the lab warns and leaves the server out, so its listener, route "
          "configuration and calls differ (meshlab/istiod/listeners.py).",
          call=_gateway_tls, config=_gateway_tls_config),
    Known("invalid-authority",
          "The request's Host is no valid host (e.g. '/a', a generated authority regex's example): "
          "real Envoy refuses it before routing (400, DPE), while Istio's request simulation "
          "(pilot/pkg/simulation) routes any string. The lab's answer is Envoy's own.",
          call=_invalid_authority),
    Known("passthrough-to-nothing",
          "Istio passes the connection through to the address the app dialled (PassthroughCluster) and "
          "its simulation cannot say what answers there; in the lab nothing listens on that address and "
          "port (the Service has no such port), so the connection is reset, as it would be in a cluster.",
          call=_passthrough_to_nothing),
    Known("http1-pods",
          "On a port Istio makes HTTP/2 upstream (named grpc, http2, or appProtocol saying so) Envoy "
          "speaks HTTP/2 to the pod; the lab's demo pods speak HTTP/1.1 only (meshlab/app.py, the "
          "standard library), so Envoy answers 502 UPE where Istio's simulation, which has no pods, "
          "answers the route's cluster. The route and cluster agree.",
          call=_http2_upstream),
    Known("external-name",
          "A Service of type ExternalName is not modelled by the local lab (a named warning); where it "
          "names another Service of the mesh, istiod adds its names to that Service's virtual host "
          "as aliases (core/httproute.go generateVirtualHostDomains).",
          config=_external_name_alias),
]


def explain_call(entry: dict[str, Any], call: Any, rows: list[dict[str, Any]], cfg: Any) -> Known | None:
    """The known difference that explains a disagreeing call, if any (`cfg`: meshlab's ProxyConfig
    for the call's proxy, or None)."""
    return next((k for k in KNOWN if k.call is not None and k.call(entry, call, rows, cfg)), None)


def explain_config(what: str, name: str, warnings: list[str]) -> Known | None:
    """The known difference that explains why only Istio builds `name` (a `what` of
    `compare.config_diff`), if any."""
    return next((k for k in KNOWN if k.config is not None and k.config(what, name, warnings)), None)
