"""The cluster backend: the same objects on real Kubernetes, where real istiod translates.

- `backend.py`: `KindBackend` (the course's kind cluster) and `ClusterBackend` (one attendee's
  namespace on an existing cluster), the `Backend` a `Lab` delegates to;
- `workloads.py`: what a learner's manifest becomes there (the demo app, meshlab's label);
- `probe.py`: a probe from the client pod, rows streamed back and joined with Envoy's log;
- `admin.py`: Envoy's admin API of a pod, through `pilot-agent request`;
- `kube.py`: the API client and the one-context guard;
- `config.py`: what the course cluster is and the exact kind/istioctl commands that build it;
- `image.py`: the demo image's build context, made from this package.
"""

from .backend import ClusterBackend, KindBackend

__all__ = ["ClusterBackend", "KindBackend"]
