"""Envoy's admin API of a pod's `istio-proxy`, reached through the API server.

Why through `pilot-agent request` (what `istioctl proxy-config` uses too): nothing but the API
server is dialled, so it works on any cluster the lab can reach, behind any network policy.
The methods are the local Envoy's (`meshlab.envoy.admin.AdminClient`): only the transport differs.
"""

from __future__ import annotations

from ...envoy.admin import AdminClient
from ...errors import EnvoyAdminError
from .kube import Kube


class ProxyAdmin(AdminClient):
    """The admin API of the `istio-proxy` container of pod `namespace/pod`."""

    def __init__(self, kube: Kube, namespace: str, pod: str) -> None:
        self.kube, self.namespace, self.pod = kube, namespace, pod

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.pod}"

    def get(self, path: str) -> str:
        path = path.lstrip("/")
        out, err = self.kube.exec(self.namespace, self.pod, "istio-proxy", ["pilot-agent", "request", "GET", path],
                                  timeout=60)
        if not out.strip():
            raise EnvoyAdminError(f"Envoy admin /{path} of {self.where} failed: {err.strip()[:300]}")
        return out
