"""Envoy's JSON access log: the format every meshlab HCM writes, and a tail reader.

Why a file and JSON: the probe joins each request it sent to the line Envoy wrote for it (by
`x-request-id`), so the flags, details, cluster and upstream columns are Envoy's own words, never
guessed. `json_format` renders numbers as numbers and unset values as null.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Keys follow Istio's own JSON access-log keys where one exists (model/telemetry_logging.go), so a
# learner sees the same names in `kubectl logs istio-proxy` on the kind backend.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "request_duration": "%REQUEST_DURATION%",
    "response_duration": "%RESPONSE_DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "upstream_request_attempt_count": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "route_name": "%ROUTE_NAME%",
    "pod": "%RESP(X-MESHLAB-POD)%",
    "version": "%RESP(X-MESHLAB-VERSION)%",
}


def access_log_config(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The `access_log` list for an HTTP connection manager (or tcp_proxy) writing JSON to `path`."""
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(path),
            "log_format": {"json_format": dict(ACCESS_LOG_FIELDS), "omit_empty_values": False},
        },
    }]


class AccessLogReader:
    """Reads the lines appended to an access log since the last call.

    Keeps a byte offset; a partial last line (Envoy flushes in chunks) is kept for the next call.
    A truncated or replaced file (smaller than the offset) is read again from the start.
    """

    def __init__(self, path: str | os.PathLike[str], *, from_start: bool = False) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        if not from_start and self.path.exists():
            self._offset = self.path.stat().st_size

    def read_new(self) -> list[dict[str, Any]]:
        """Parsed JSON objects for every complete line written since the previous call."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:
                    self._offset, self._partial = 0, b""
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        rows: list[dict[str, Any]] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # not one of ours (should not happen); never let one line break a probe
        return rows
