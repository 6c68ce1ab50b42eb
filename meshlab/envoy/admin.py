"""A small client for Envoy's admin API, on a UNIX socket only its owner can open.

Why a UNIX socket: Envoy's admin API can change what the proxy does (`/runtime_modify`,
`/drain_listeners`, `/quitquitquit`) and shows its whole config; on a TCP port every user of a
shared host could reach it. Envoy binds it as `admin.address.pipe` with a file mode
(envoy/config/core/v3/address.proto `Pipe.mode`), and meshlab puts it in the lab's own 0700
work folder as well.

Why our own client: the few endpoints a teaching tool needs (`/config_dump`, `/clusters`,
`/stats`, `/ready`) are plain HTTP GETs; `http.client` over an AF_UNIX socket keeps it
dependency-free and fast enough to poll every few milliseconds while a push settles.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
from typing import Any
from urllib.parse import quote

from ..errors import EnvoyAdminError
from ..names import parse_cluster_name


#: The longest path a UNIX socket address takes on Linux (`sun_path` is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107


class UnixHTTPConnection(http.client.HTTPConnection):
    """`http.client.HTTPConnection` to a UNIX socket (the Host header says `localhost`)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = os.fspath(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """GET/POST against one Envoy's admin API on the UNIX socket `path`. Thread-safe (one
    connection per thread).

    Every read goes through `get(path)`, the transport: a pod's Envoy reached another way
    (`meshlab.backends.kind.admin.ProxyAdmin`, through `pilot-agent request`) replaces only that.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path, self.timeout = os.fspath(path), timeout
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []     # every thread's, for close()
        self._conns_lock = threading.Lock()

    @property
    def where(self) -> str:
        """Which Envoy this is, for messages."""
        return self.path

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = UnixHTTPConnection(self.path, timeout=self.timeout)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's keep-alive connection (the Envoy is stopping); a later request
        opens a new one."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        """One request; retried once on a stale keep-alive connection."""
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._local.conn = None
                with self._conns_lock:
                    if conn in self._conns:
                        self._conns.remove(conn)
                if attempt:
                    raise EnvoyAdminError(f"Envoy admin {self.where} {path}: {e}") from e
        raise AssertionError("unreachable")

    def get(self, path: str) -> str:
        """Body of a GET as text; raises EnvoyAdminError on a non-2xx status."""
        status, body = self.request("GET", path)
        if status >= 300:
            raise EnvoyAdminError(f"GET {path} -> {status}: {body[:200]!r}")
        return body.decode("utf-8", "replace")

    def post(self, path: str) -> str:
        status, body = self.request("POST", path)
        if status >= 300:
            raise EnvoyAdminError(f"POST {path} -> {status}: {body[:200]!r}")
        return body.decode("utf-8", "replace")

    def get_json(self, path: str) -> Any:
        text = self.get(path)
        try:
            return json.loads(text)
        except ValueError:
            raise EnvoyAdminError(f"Envoy admin {path.lstrip('/')} of {self.where} failed: {text.strip()[:300]}") \
                from None

    def ready(self) -> bool:
        """True once Envoy has finished initialising (`/ready` answers 200 LIVE)."""
        try:
            status, _ = self.request("GET", "/ready")
        except EnvoyAdminError:
            return False
        return status == 200

    def config_dump(self, *, include_eds: bool = True, resource: str | None = None) -> dict[str, Any]:
        q = []
        if include_eds:
            q.append("include_eds")
        if resource:
            q.append(f"resource={quote(resource)}")
        return self.get_json("/config_dump" + ("?" + "&".join(q) if q else ""))

    def clusters(self) -> dict[str, Any]:
        """`/clusters?format=json`: per-host counters and health flags (outlier ejection etc.)."""
        return self.get_json("/clusters?format=json")

    def stats(self, filter_regex: str | None = None) -> dict[str, int | str]:
        """Counters, gauges and text readouts as {name: value} (histograms left out).

        Text format is parsed: it is much cheaper than JSON and lists text readouts (version_text).
        """
        path = "/stats"
        if filter_regex:
            path += "?filter=" + quote(filter_regex, safe="")
        out: dict[str, int | str] = {}
        for line in self.get(path).splitlines():
            name, sep, value = line.partition(": ")
            if not sep:
                continue
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                out[name] = value[1:-1]
            elif _INT.fullmatch(value):
                out[name] = int(value)
            # histograms ("P0(...)" lines) are skipped
        return out


_INT = re.compile(r"-?\d+")


def _sections(config_dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for sec in config_dump.get("configs", []):
        out[sec.get("@type", "").rsplit(".", 1)[-1]] = sec
    return out


def _istio_config(meta_holder: dict[str, Any]) -> str:
    """The Istio object a resource came from (`metadata.filter_metadata.istio.config`), short."""
    path = meta_holder.get("metadata", {}).get("filter_metadata", {}).get("istio", {}).get("config", "")
    # "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews" -> "reviews.default"
    parts = path.strip("/").split("/")
    if len(parts) >= 6:
        return f"{parts[-1]}.{parts[-3]}"
    return path


def _limits(cluster: dict[str, Any]) -> dict[str, Any]:
    """A cluster's circuit breakers (default priority; `-` when unset: Envoy's own defaults) and
    outlier detection (its fields as Envoy holds them, or `-`)."""
    thresholds = (cluster.get("circuit_breakers") or {}).get("thresholds") or [{}]
    t = next((x for x in thresholds if x.get("priority", "DEFAULT") == "DEFAULT"), {})
    od = cluster.get("outlier_detection")
    return {"max_connections": t.get("max_connections", "-"),
            "max_pending_requests": t.get("max_pending_requests", "-"),
            "max_requests": t.get("max_requests", "-"),
            "outlier_detection": json.dumps(od, sort_keys=True) if od else "-"}


def proxy_config(admin: Any) -> dict[str, list[dict[str, Any]]]:
    """`proxy_config_view` of a live Envoy: its config dump and its `/clusters` health, read
    through any admin handle with `config_dump()` and `clusters()` (a local process or a pod's)."""
    return proxy_config_view(admin.config_dump(), admin.clusters())


def proxy_config_view(config_dump: dict[str, Any],
                      clusters_status: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Summarise a live `/config_dump?include_eds` like `istioctl proxy-config all` does.

    Returns {"clusters", "listeners", "routes", "endpoints"}, each a list of flat rows.
    `clusters_status` (`/clusters?format=json`) adds per-endpoint health and outlier state;
    endpoints also carry their `locality` (`region/zone/subzone`) and failover `priority`.
    """
    sec = _sections(config_dump)
    clusters = []
    cd = sec.get("ClustersConfigDump", {})
    for state, key in (("active", "dynamic_active_clusters"), ("warming", "dynamic_warming_clusters"),
                       ("static", "static_clusters")):
        for item in cd.get(key, []):
            c = item.get("cluster", {})
            name = c.get("name", "")
            parsed = parse_cluster_name(name)
            fqdn, port, subset, direction = (name, "-", "-", "-") if parsed is None else \
                (parsed.host, "-" if parsed.port is None else str(parsed.port), parsed.subset, parsed.direction)
            typ = c.get("type") or ("ORIGINAL_DST" if "cluster_type" not in c else
                                    c["cluster_type"].get("name", "-"))
            clusters.append({"name": name, "service_fqdn": fqdn, "port": port, "subset": subset,
                             "direction": direction, "type": typ,
                             "lb_policy": c.get("lb_policy", "ROUND_ROBIN"),
                             "destination_rule": _istio_config(c), "state": state,
                             "version": item.get("version_info", ""),
                             **_limits(c)})
    listeners = []
    for item in sec.get("ListenersConfigDump", {}).get("dynamic_listeners", []):
        active = item.get("active_state", {}).get("listener", {})
        sa = active.get("address", {}).get("socket_address", {})
        for chain in active.get("filter_chains", []):
            for flt in chain.get("filters", []):
                tc = flt.get("typed_config", {})
                if "rds" in tc:
                    dest = f"Route: {tc['rds'].get('route_config_name')}"
                elif "cluster" in tc:
                    dest = f"Cluster: {tc['cluster']}"
                else:
                    dest = flt.get("name", "")
                listeners.append({"name": item.get("name"), "address": sa.get("address"),
                                  "port": sa.get("port_value"),
                                  "match": (json.dumps(chain["filter_chain_match"])
                                            if chain.get("filter_chain_match") else "ALL"),
                                  "destination": dest,
                                  "error": item.get("error_state", {}).get("details", "")})
    routes = []
    for item in sec.get("RoutesConfigDump", {}).get("dynamic_route_configs", []):
        rc = item.get("route_config", {})
        for vh in rc.get("virtual_hosts", []):
            for r in vh.get("routes", []) or [{}]:
                match = r.get("match", {})
                m = next((f"{k}={match[k]}" for k in ("prefix", "path", "safe_regex",
                                                       "path_separated_prefix") if k in match), "")
                if isinstance(match.get("safe_regex"), dict):
                    m = f"regex={match['safe_regex'].get('regex')}"
                if match.get("headers"):
                    m += " " + " ".join(f"{h.get('name')}" for h in match["headers"])
                action = r.get("route", {})
                if "cluster" in action:
                    dest = action["cluster"]
                elif "weighted_clusters" in action:
                    dest = ", ".join(f"{w['name']} {w.get('weight')}"
                                     for w in action["weighted_clusters"].get("clusters", []))
                elif "redirect" in r:
                    dest = "redirect"
                elif "direct_response" in r:
                    dest = f"direct {r['direct_response'].get('status')}"
                else:
                    dest = "" if not r else "-"
                retry = action.get("retry_policy") or {}
                routes.append({"route_config": rc.get("name"), "virtual_host": vh.get("name"),
                               "domains": vh.get("domains", []), "match": m,
                               "route_name": r.get("name", ""), "destination": dest,
                               "virtual_service": _istio_config(r),
                               "version": item.get("version_info", ""),
                               # the route's timeout and retry policy (`-`: none on this route)
                               "timeout": action.get("timeout", "-") if action else "-",
                               "num_retries": retry.get("num_retries", "-"),
                               "retry_on": retry.get("retry_on", "-"),
                               "retriable_status_codes": retry.get("retriable_status_codes", "-"),
                               "per_try_timeout": retry.get("per_try_timeout", "-")})
    health: dict[tuple[str, str], dict[str, Any]] = {}
    if clusters_status:
        for cs in clusters_status.get("cluster_statuses", []):
            for hs in cs.get("host_statuses", []):
                sa = hs.get("address", {}).get("socket_address", {})
                addr = f"{sa.get('address')}:{sa.get('port_value')}"
                health[(cs.get("name", ""), addr)] = hs.get("health_status", {})
    endpoints = []
    for item in sec.get("EndpointsConfigDump", {}).get("dynamic_endpoint_configs", []):
        cla = item.get("endpoint_config", {})
        cname = cla.get("cluster_name", "")
        for group in cla.get("endpoints", []):
            loc = group.get("locality") or {}
            locality = "/".join(x for x in (loc.get("region", ""), loc.get("zone", ""), loc.get("sub_zone", ""))
                                if x) if loc else ""
            for lb in group.get("lb_endpoints", []):
                sa = lb.get("endpoint", {}).get("address", {}).get("socket_address", {})
                addr = f"{sa.get('address')}:{sa.get('port_value')}"
                hs = health.get((cname, addr), {})
                endpoints.append({
                    "endpoint": addr, "cluster": cname,
                    "status": hs.get("eds_health_status", lb.get("health_status", "HEALTHY")),
                    "outlier_check": "FAILED" if hs.get("failed_outlier_check") else "OK",
                    "pod": lb.get("metadata", {}).get("filter_metadata", {}).get("meshlab", {})
                    .get("pod", ""),
                    # where istiod placed it relative to this proxy: locality, failover priority
                    "locality": locality, "priority": int(group.get("priority", 0)),
                })
    return {"clusters": clusters, "listeners": listeners, "routes": routes, "endpoints": endpoints}
