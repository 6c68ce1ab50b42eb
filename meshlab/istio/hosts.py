"""Host names as Istio reads them: short-name expansion, wildcards, virtual-host domain lists.

Why separate: every other part (clusters, routes, gateway) must agree on one spelling of a host,
and Istio's rules (a dotted name is never expanded; the bare short name is offered only to
clients in the Service's own namespace) are easy to get subtly wrong when repeated.
"""

from __future__ import annotations

CLUSTER_DOMAIN = "svc.cluster.local"


def resolve_short_name(host: str, namespace: str) -> str:
    """`reviews` in namespace `prod` → `reviews.prod.svc.cluster.local`.

    Only names without a dot are expanded (relative to the namespace of the VirtualService or
    DestinationRule that names them, not the client's); `reviews.prod` is taken as already fully
    qualified and matches no Kubernetes Service. `*` and IP addresses are left alone.
    """
    if host == "*" or "." in host or not host or host[0].isdigit():
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def host_matches(pattern: str, host: str) -> bool:
    """Does `pattern` (maybe `*` or `*.example.com`) cover `host` (maybe itself a wildcard)?"""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        if host.startswith("*"):
            return host[1:].endswith(suffix)
        return host.endswith(suffix)
    return False


def hosts_overlap(a: str, b: str) -> bool:
    return host_matches(a, b) or host_matches(b, a)


def cluster_name(port: int, subset: str | None, host: str, direction: str = "outbound") -> str:
    """Istio's cluster name: `outbound|9080|v2|reviews.default.svc.cluster.local` (Service port)."""
    return f"{direction}|{port}|{subset or ''}|{host}"


def k8s_vhost_domains(name: str, namespace: str, client_namespace: str,
                      cluster_ip: str | None, headless: bool = False) -> list[str]:
    """Domains istiod gives a Kubernetes Service's virtual host for a client in `client_namespace`.

    FQDN, FQDN with the trailing dot (since 1.27), the short name only for clients in the same
    namespace, `name.ns.svc`, `name.ns` (in istiod's order) and the ClusterIP. No `:port` twins
    (since 1.15 route configs ignore the port in host matching).
    """
    fqdn = f"{name}.{namespace}.{CLUSTER_DOMAIN}"
    domains = [fqdn, fqdn + "."]
    if client_namespace == namespace:
        domains += [name, f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    else:
        domains += [f"{name}.{namespace}", f"{name}.{namespace}.svc"]
    if headless:  # Passthrough resolution: wildcard twins for per-pod names
        domains += ["*." + d for d in domains]
    if cluster_ip:
        domains.append(cluster_ip)
    return domains


def external_vhost_domains(host: str, addresses: list[str]) -> list[str]:
    """Domains for a ServiceEntry host: the host itself (with trailing dot) and its addresses."""
    domains = [host]
    if not host.startswith("*"):
        domains.append(host + ".")
    return domains + [a for a in addresses if "/" not in a]
