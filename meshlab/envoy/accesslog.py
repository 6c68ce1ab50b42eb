"""Envoy's JSON access log: the format every meshlab HCM writes.

Why a file and JSON: the probe joins each request it sent to the line Envoy wrote for it (by
`x-request-id`, `meshlab.probe.rows`), so the flags, details, cluster and upstream columns are
Envoy's own words, never guessed. `json_format` renders numbers as numbers and unset values as
null. The probe tails the file itself (`meshlab.probe.LogTail`).
"""

from __future__ import annotations

import os
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
