"""meshlab: see Kubernetes and Istio traffic management with a real Envoy."""

__version__ = "0.1.0"
