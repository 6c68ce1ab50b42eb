"""Run real Envoy processes and drive them the way istiod does, through filesystem xDS.

Usage (the local backend)::

    from meshlab.envoy import Envoy, EnvoyConfigRejected, proxy_config_view
    from meshlab.istiod.translate import build_config, ProxyIdentity
    from meshlab.probe import LogTail

    proxy = ProxyIdentity(kind="sidecar", namespace="default", labels={"app": "sleep"},
                          ip="127.5.0.1")
    envoy = Envoy("sidecar", workdir / "sidecar")   # admin API on workdir/sidecar/admin.sock (0600)
    envoy.start(build_config(state, proxy))        # blocks until /ready; raises if rejected
    log = LogTail(envoy.access_log_path)            # remembers the end of the file
    ...                                             # send requests to 127.5.0.1:<service port>
    rows = log.read_new()                           # [{"request_id", "response_flags", ...}]
    envoy.push(build_config(state, proxy))          # istiod order; returns changed names per type
    envoy.push(cfg, order=("rds", "lds", "eds", "cds"), gap_s=0.5)  # make-before-break window
    envoy.config_dump(); envoy.admin_get("/clusters"); envoy.stats("outlier")
    proxy_config_view(envoy.config_dump())          # like `istioctl proxy-config all`
    envoy.stop()

`push` raises `EnvoyConfigRejected` (`.envoy_message` is Envoy's own text) and leaves Envoy, and
the files on disk, on the last accepted config. Envoy runs as a child that dies with this
process (`meshlab._processes.spawn`).
"""

from ..errors import EnvoyAdminError, EnvoyConfigRejected, EnvoyError
from .accesslog import ACCESS_LOG_FIELDS, access_log_config
from .admin import AdminClient, proxy_config, proxy_config_view
from .process import Envoy, envoy_binary
from .xds import ISTIOD_ORDER, ProxyConfig

__all__ = [
    "ACCESS_LOG_FIELDS", "AdminClient", "Envoy", "EnvoyAdminError",
    "EnvoyConfigRejected", "EnvoyError", "ISTIOD_ORDER", "ProxyConfig", "access_log_config",
    "envoy_binary", "proxy_config", "proxy_config_view",
]
