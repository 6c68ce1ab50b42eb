"""meshlab's mini control plane: Kubernetes + Istio objects → Envoy config, shaped as istiod shapes it.

Entry point: `meshlab.istiod.translate.build_config(state, ProxyIdentity(...)) -> ProxyConfig`.
"""

from .translate import ProxyConfig, ProxyIdentity, build_config

__all__ = ["ProxyConfig", "ProxyIdentity", "build_config"]
