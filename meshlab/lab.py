"""`Lab`: the one object a notebook holds — the same calls on every backend.

It loads whatever the learner hands it (paths, YAML strings, dicts, objects) with
`meshlab.load`, so bad input is rejected with a message naming file/object/field before anything
changes, then delegates to a Backend (`meshlab.backends.base.Backend`). Notebooks never branch on
the backend: `Lab()` is local unless `MESHLAB_BACKEND` says otherwise (so the very same notebooks
run on kind), and `Lab(backend="kind")` asks for a real cluster with real Istio explicitly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import pandas  # noqa: F401  (imported up front so the first probe does not pay for it)

from .backends.base import ProxyName, Via

if TYPE_CHECKING:
    import pandas as pd

    from .explanation import Explanation
    from .objects import K8sObject


def _backend(name: str, **kw: Any) -> Any:
    if name == "local":
        from .backends.local import LocalBackend
        return LocalBackend(**kw)
    if name in ("kind", "cluster"):
        from .backends.kind import KindBackend   # imported lazily: needs the kubernetes client
        return KindBackend(backend=name, **kw)
    raise ValueError(f"unknown backend {name!r}: use 'local', 'kind' or 'cluster'")


class Lab:
    """A lab: apply manifests, turn pod knobs, send traffic, read Envoy's view.

    ``with Lab() as lab: lab.apply("manifests/"); df = lab.probe("http://reviews:9080/")``
    """

    def __init__(self, backend: str | None = None, **kw: Any) -> None:
        self.backend = _backend(backend or os.environ.get("MESHLAB_BACKEND") or "local", **kw)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def warnings(self) -> list[str]:
        """What the backend could not honour in the manifests (e.g. a field the local Envoy
        translation does not implement), in words."""
        return list(getattr(self.backend, "warnings", []))

    # ---- objects -------------------------------------------------------------------------------
    @staticmethod
    def _load(x: Any) -> list[K8sObject]:
        from .manifests import load
        return load(x)

    def apply(self, x: Any, order: Sequence[str] | None = None, **kw: Any) -> list[K8sObject]:
        """Create or update objects (paths, YAML strings, dicts, objects, or lists of them).

        `order=["VirtualService", "DestinationRule"]` applies kinds one at a time in that order
        (the make-before-break window); backend options such as ``gap=`` pass through.
        Returns the objects applied."""
        objs = self._load(x)
        if isinstance(order, str):        # order="VirtualService": one kind, not its letters
            order = [order]
        self.backend.apply(objs, order=list(order) if order else None, **kw)
        return objs

    def delete(self, x: Any) -> list[K8sObject]:
        """Delete objects (missing ones are ignored, like ``kubectl delete --ignore-not-found``)."""
        objs = self._load(x)
        self.backend.delete(objs)
        return objs

    def objects(self) -> list[K8sObject]:
        return self.backend.objects()

    # ---- pods ----------------------------------------------------------------------------------
    def pods(self) -> pd.DataFrame:
        return self.backend.pods()

    def set_pod(self, name: str, *, namespace: str = "default", latency_ms: float | None = None,
                error_rate: float | None = None, ready: bool | None = None, **kw: Any) -> None:
        self.backend.set_pod(name, namespace=namespace, latency_ms=latency_ms, error_rate=error_rate,
                             ready=ready, **kw)

    def kill_pod(self, name: str, *, namespace: str = "default", **kw: Any) -> None:
        self.backend.kill_pod(name, namespace=namespace, **kw)

    def restart_pod(self, name: str, *, namespace: str = "default") -> None:
        self.backend.restart_pod(name, namespace=namespace)

    # ---- traffic -------------------------------------------------------------------------------
    def probe(self, url: str, *, n: int = 100, concurrency: int = 1, keepalive: bool = True,
              headers: dict[str, str] | None = None, via: Via = "sidecar", namespace: str = "default",
              seed: int | None = None, **kw: Any) -> pd.DataFrame:
        """Send `n` requests as a client pod in `namespace` would; one row per request."""
        df = self.backend.probe(url, n=n, concurrency=concurrency, keepalive=keepalive,
                                headers=headers, via=via, namespace=namespace, seed=seed, **kw)
        df.attrs.update(url=url, via=via, namespace=namespace)   # what explain() needs for dns/refused rows
        return df

    def probing(self, url: str, **kw: Any) -> Any:
        """Traffic in the background while you change things::

            with lab.probing("http://reviews:9080/", rate=200) as p:
                lab.apply(vs, order=["VirtualService", "DestinationRule"])
            df = p.result()
        """
        if not hasattr(self.backend, "probing"):
            raise NotImplementedError(f"the {self.name} backend cannot probe in the background")
        return self.backend.probing(url, **kw)

    # ---- views ---------------------------------------------------------------------------------
    def envoy_config(self, proxy: ProxyName = "sidecar") -> dict[str, Any]:
        """The live proxy config, like ``istioctl proxy-config all -o json``."""
        return self.backend.envoy_config(proxy)

    def explain(self, probe_df: pd.DataFrame) -> Explanation:
        """Name the misconfiguration behind what a probe saw: `meshlab.explain(df, lab)`
        reads this lab's objects, pods and live Envoy config."""
        from .explanation import explain
        return explain(probe_df, self)

    # ---- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Re-running `lab = Lab()` in a notebook drops the old lab: free its processes and
        # addresses now rather than at kernel exit (Binder has 1-2 GB).
        try:
            backend = self.__dict__.get("backend")
            if backend is not None:
                backend.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Lab({self.backend!r})"
