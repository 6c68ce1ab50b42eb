"""Joining what the in-pod prober saw with what the real Envoy wrote, by request id.

Why: on a real cluster the prober only sees status, timing and the answering pod; the Envoy
columns (flags, details, route, cluster, upstream) exist only in the `istio-proxy` access log
(JSON on stdout, keys as in meshlab.envoy.accesslog / Istio's default JSON format). Each request
carries its own `x-request-id`, Envoy logs it, and the row takes Envoy's own words — never guessed.
A request Envoy never saw (DNS failure in the client) keeps empty Envoy columns.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..names import subset_of_cluster
from .base import PROBE_COLUMNS


def parse_log(text: str) -> dict[str, dict[str, Any]]:
    """request_id → access-log entry, from `kubectl logs -c istio-proxy` output. The same stream
    carries pilot-agent's and Envoy's own text logs; only JSON objects with a request_id count.
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


def _text(v: Any) -> str:
    """Envoy prints unset values as `-` (text format) or null (JSON); the schema wants ''."""
    return "" if v is None or v == "-" else str(v)


def join(rows: Iterable[dict[str, Any]], log: dict[str, dict[str, Any]], proxy: str) -> list[dict[str, Any]]:
    """Probe rows (from meshlab._probe_pod) + access-log entries → rows with PROBE_COLUMNS."""
    out = []
    for r in rows:
        e = log.get(r.get("request_id", "")) if proxy != "none" else None
        row = {
            "seq": int(r["seq"]), "t": float(r["t"]), "status": int(r["status"]), "error": r.get("error", ""),
            "flags": "", "details": "", "proxy": proxy, "route": "", "cluster": "", "subset": "",
            "upstream": "", "pod": r.get("pod", ""), "version": r.get("version", ""),
            "latency_ms": float(r["latency_ms"]), "conn": int(r["conn"]), "attempts": 0,
        }
        if e is not None:
            cluster = _text(e.get("upstream_cluster"))
            row.update(flags=_text(e.get("response_flags")) or "-", details=_text(e.get("response_code_details")),
                       route=_text(e.get("route_name")), cluster=cluster, subset=subset_of_cluster(cluster),
                       upstream=_text(e.get("upstream_host")),
                       attempts=int(str(e.get("upstream_request_attempt_count") or 0).strip("-") or 0))
            if not row["pod"]:
                row["pod"], row["version"] = _text(e.get("pod")), _text(e.get("version"))
        out.append(row)
    out.sort(key=lambda x: x["seq"])
    return [{c: row[c] for c in PROBE_COLUMNS} for row in out]


def missing(rows: Iterable[dict[str, Any]], log: dict[str, dict[str, Any]]) -> list[str]:
    """Request ids Envoy should have logged but has not (yet): every request that got an HTTP
    answer passed through the proxy. Envoy flushes its log file periodically, so callers poll."""
    return [r["request_id"] for r in rows if r.get("status", 0) and r.get("request_id") not in log]
