"""The local backend: a real Envoy mesh on loopback, no cluster needed (what Binder runs).

- `backend.py`: `LocalBackend`, the `Backend` a `Lab` delegates to;
- `reconcile.py`: every state change → pod processes, kube-proxy table, Envoy pushes (one path);
- `dns.py`: cluster DNS, and where a probe's request goes (`via` sidecar, none or gateway);
- `addresses.py`: the lab's own 127.A.0.0/16 block (no two labs collide);
- `pods.py`: one demo-app process per pod; `kubeproxy.py`: the ClusterIP data plane.
"""

from .backend import LocalBackend

__all__ = ["LocalBackend"]
