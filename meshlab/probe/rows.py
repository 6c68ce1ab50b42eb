"""One row per request, the same on every backend: the schema, and the join that fills it.

The client knows what it saw (status, client-side error, latency, connection, the pod and version
headers the app answered with); only Envoy knows its response flags, details, route, cluster,
upstream host and attempts. Each request carries its own `x-request-id`, Envoy writes it in its
JSON access log (keys of `meshlab.envoy.accesslog.ACCESS_LOG_FIELDS`, Istio's own names), and the
row takes Envoy's words for its columns — never guessed. Locally the log is a file the probe
tails; on a cluster it is the `istio-proxy` container's stdout. Both end here.

Columns (DESIGN.md): `seq, t, status, error, flags, details, proxy, route, cluster, subset,
upstream, pod, version, latency_ms, conn, attempts` — status 0 when no HTTP answer came; error is
the client-side failure (`dns`, `refused`, `reset`, `timeout`); flags `-` when Envoy set none and
empty when no Envoy was on the path (then every Envoy column is empty and attempts 0).

Standard library only (the cluster's in-pod prober imports this module); pandas is imported
only to build the DataFrame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..names import subset_of_cluster

#: The probe schema: one row per request, the same columns on every backend.
PROBE_COLUMNS: tuple[str, ...] = (
    "seq", "t", "status", "error", "flags", "details", "proxy", "route", "cluster",
    "subset", "upstream", "pod", "version", "latency_ms", "conn",
    # Envoy's %UPSTREAM_REQUEST_ATTEMPT_COUNT% (retries show as > 1); 0 when no Envoy answered.
    "attempts",
)
#: What the client itself records for each request (and the in-pod prober streams back).
CLIENT_COLUMNS: tuple[str, ...] = ("seq", "t", "status", "error", "pod", "version", "latency_ms", "conn")
#: Probe column → the access-log key Envoy writes it under.
ENVOY_FIELDS: dict[str, str] = {
    "flags": "response_flags", "details": "response_code_details", "route": "route_name",
    "cluster": "upstream_cluster", "upstream": "upstream_host",
}
_ATTEMPTS = "upstream_request_attempt_count"
_INT_COLUMNS = ("seq", "status", "conn", "attempts")


def _text(v: Any) -> str:
    """Envoy prints an unset value as `-` (text) or null (JSON); the schema wants ''."""
    return "" if v is None or v == "-" else str(v)


def join(client: Mapping[str, Any], entry: Mapping[str, Any] | None, proxy: str) -> dict[str, Any]:
    """One request: the client's row (`CLIENT_COLUMNS`) and Envoy's access-log entry for the same
    request id (None when Envoy did not log it, or no Envoy was on the path) → a schema row."""
    row: dict[str, Any] = {
        "seq": int(client["seq"]), "t": float(client["t"]), "status": int(client["status"]),
        "error": client.get("error") or "", "flags": "", "details": "", "proxy": proxy, "route": "",
        "cluster": "", "subset": "", "upstream": "", "pod": client.get("pod") or "",
        "version": client.get("version") or "", "latency_ms": float(client["latency_ms"]),
        "conn": int(client["conn"]), "attempts": 0,
    }
    if entry is not None and proxy != "none":
        row.update({col: _text(entry.get(key)) for col, key in ENVOY_FIELDS.items()})
        row["flags"] = row["flags"] or "-"
        row["subset"] = subset_of_cluster(row["cluster"])
        row["attempts"] = int(_text(entry.get(_ATTEMPTS)).strip("-") or 0)
        if not row["pod"]:   # an answer the client could not read (e.g. a reset) still names its pod
            row["pod"], row["version"] = _text(entry.get("pod")), _text(entry.get("version"))
    return row


def frame(rows: Iterable[Mapping[str, Any]], attrs: Mapping[str, Any] | None = None) -> Any:
    """Schema rows → the probe DataFrame (sorted by seq; `attrs` such as url, via, namespace)."""
    import pandas as pd

    ordered = sorted(rows, key=lambda r: r["seq"])
    df = pd.DataFrame([{c: r[c] for c in PROBE_COLUMNS} for r in ordered], columns=list(PROBE_COLUMNS))
    if ordered:
        df = df.astype({c: "int64" for c in _INT_COLUMNS})
    df.attrs.update(attrs or {})
    return df


def parse_access_log(text: str) -> dict[str, dict[str, Any]]:
    """request id → access-log entry, from log text (`kubectl logs -c istio-proxy`). The same stream
    carries pilot-agent's and Envoy's own text logs; only JSON objects with a request id count.
    With retries Envoy still writes one line per downstream request."""
    entries: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        rid = e.get("request_id") if isinstance(e, dict) else None
        if rid and rid != "-":
            entries[rid] = e
    return entries


def unlogged(clients: Iterable[Mapping[str, Any]], log: Mapping[str, Any],
             by_connection: Mapping[str, Any] | None = None) -> list[str]:
    """Request ids Envoy should have logged but has not (yet): every request that got an HTTP
    answer passed through the proxy, and so did one the client gave up on (`timeout`: Envoy logs
    it with flag DC once the client has closed), or one sent on a connection the proxy accepted
    (`local`, the client's ip:port) — logged by its request id (HTTP), or by its connection
    (`by_connection`: a tcp_proxy's line). Envoy flushes its log periodically, so callers poll."""
    conns = by_connection or {}
    return [r["request_id"] for r in clients
            if (r.get("status", 0) or r.get("error") == "timeout" or r.get("local"))
            and r.get("request_id") not in log and not (r.get("local") and r["local"] in conns)]
