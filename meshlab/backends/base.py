"""The one interface both backends implement, so notebooks never branch on the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from ..objects import K8sObject

Via = Literal["sidecar", "none", "gateway"]
ProxyName = Literal["sidecar", "gateway"]


class Backend(Protocol):
    """What `meshlab.Lab` delegates to. Objects are already loaded and validated."""

    name: str

    def apply(self, objects: list[K8sObject], *, order: list[str] | None = None) -> None:
        """Create or update objects. `order` (kinds, e.g. ["VirtualService", "DestinationRule"])
        pushes them one kind at a time in that order instead of istiod's single push."""

    def delete(self, objects: list[K8sObject]) -> None: ...

    def objects(self) -> list[K8sObject]:
        """Everything the lab holds now (what analyze/explain read)."""

    def pods(self) -> pd.DataFrame:
        """name, namespace, ip, labels, version, ready, phase."""

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None) -> None: ...

    def kill_pod(self, name: str, *, namespace: str = "default") -> None: ...

    def restart_pod(self, name: str, *, namespace: str = "default") -> None: ...

    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar",
              namespace: str = "default", seed: int | None = None) -> pd.DataFrame: ...

    def envoy_config(self, proxy: ProxyName = "sidecar") -> dict[str, Any]:
        """Live config like `istioctl proxy-config all -o json`: clusters, listeners, routes, endpoints."""

    def close(self) -> None: ...
