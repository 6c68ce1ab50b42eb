"""Traffic: real HTTP requests from a client, one row per request, the same on every backend.

- `client.py`: the sending loop (`run` → `ProbeRun`), URL and argument checks, the access-log tail;
- `rows.py`: the row schema and the join of client rows with Envoy's access log (both backends);
- `in_pod.py`: the prober a cluster's client pod runs (`python -m meshlab.probe.in_pod`).

Standard library only until a DataFrame is built, so the cluster's demo image carries this package.
"""

from .client import (
    LogTail, ParsedURL, ProbeError, ProbeRun, Target, check_args, parse_header, parse_url, probe_direct, run,
)
from .rows import PROBE_COLUMNS

__all__ = ["LogTail", "PROBE_COLUMNS", "ParsedURL", "ProbeError", "ProbeRun", "Target", "check_args", "parse_header",
           "parse_url", "probe_direct", "run"]
