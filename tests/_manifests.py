"""Builders for the Kubernetes/Istio YAML that many tests and benchmarks stand on.

Why: the same Deployment-per-version, Service and DestinationRule-with-subsets were written out
again in every test file. A builder returns the YAML text a learner would write (flow style, so a
failing test still prints something readable), and `docs()` joins documents with `---`. The object
a test is *about* (a table of bad inputs, an analyzer case, a seed manifest) stays inline in that
test: only the surroundings come from here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable


def _meta(name: str, namespace: str | None) -> str:
    return f"{{name: {name}, namespace: {namespace}}}" if namespace else f"{{name: {name}}}"


def _flow_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{i}'" if i.startswith("*") else i for i in items) + "]"


def docs(*documents: str) -> str:
    """One multi-document YAML text."""
    return "---\n".join(d if d.endswith("\n") else d + "\n" for d in documents)


def namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


def deployment(app: str, version: str | None = None, *, replicas: int | None = 1, port: int | None = 9080,
               port_name: str | None = None, namespace: str | None = None, image: str = "meshlab/app",
               container: str = "app", name: str | None = None) -> str:
    """A Deployment `<app>-<version>` whose pods carry `app` (and `version`) labels.

    `replicas=None` leaves the field out (Kubernetes' default of 1); `port=None` declares no
    container port."""
    labels = f"{{app: {app}, version: {version}}}" if version else f"{{app: {app}}}"
    name = name or (f"{app}-{version}" if version else app)
    ports = ""
    if port is not None:
        ports = f", ports: [{{containerPort: {port}, name: {port_name}}}]" if port_name \
            else f", ports: [{{containerPort: {port}}}]"
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {_meta(name, namespace)}\nspec:\n"
            + (f"  replicas: {replicas}\n" if replicas is not None else "")
            + f"  selector: {{matchLabels: {labels}}}\n"
              f"  template:\n    metadata: {{labels: {labels}}}\n"
              f"    spec: {{containers: [{{name: {container}, image: {image}{ports}}}]}}\n")


def service(app: str, port: int = 9080, *, target_port: int | str | None = None, port_name: str = "http",
            namespace: str | None = None) -> str:
    """A one-port Service `<app>` selecting `app: <app>`."""
    target = f", targetPort: {target_port}" if target_port is not None else ""
    return (f"apiVersion: v1\nkind: Service\nmetadata: {_meta(app, namespace)}\nspec:\n"
            f"  selector: {{app: {app}}}\n  ports: [{{name: {port_name}, port: {port}{target}}}]\n")


def destination_rule(host: str, subsets: Iterable[str] = (), *, name: str | None = None,
                     namespace: str | None = None, traffic_policy: str | None = None) -> str:
    """A DestinationRule for `host`; each subset `vN` selects `version: vN`; `traffic_policy` is
    the policy's YAML in flow style, e.g. `"{loadBalancer: {simple: ROUND_ROBIN}}"`."""
    name = name or host.split(".")[0]
    text = (f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {_meta(name, namespace)}\n"
            f"spec:\n  host: {host}\n")
    if traffic_policy:
        text += f"  trafficPolicy: {traffic_policy}\n"
    subsets = list(subsets)
    if subsets:
        text += "  subsets:\n" + "".join(f"  - {{name: {s}, labels: {{version: {s}}}}}\n" for s in subsets)
    return text


def virtual_service(name: str, hosts: Iterable[str], http: str, *, namespace: str | None = None,
                    gateways: Iterable[str] | None = None) -> str:
    """A VirtualService; `http` is the YAML list under `spec.http`, at any indentation."""
    body = textwrap.indent(textwrap.dedent(http).strip("\n"), "  ")
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {_meta(name, namespace)}\n"
            f"spec:\n  hosts: {_flow_list(hosts)}\n"
            + (f"  gateways: {_flow_list(gateways)}\n" if gateways is not None else "")
            + f"  http:\n{body}\n")


def gateway(name: str = "gw", hosts: Iterable[str] = ("*",), *, port: int = 80,
            namespace: str | None = None) -> str:
    """An HTTP Gateway on the default ingress gateway (`istio: ingressgateway`)."""
    return (f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {_meta(name, namespace)}\nspec:\n"
            f"  selector: {{istio: ingressgateway}}\n"
            f"  servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: {_flow_list(hosts)}}}]\n")


#: The learner's question (`/work/shared/seed/`): its VirtualService and DestinationRule as asked,
#: placed in namespace `prod`.
SEED_VS_DR = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews-route, namespace: prod}
spec:
  hosts:
  - reviews.prod.svc.cluster.local
  http:
  - name: "reviews-v2-routes"
    match:
    - uri:
        prefix: "/wpcatalog"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v2
  - name: "reviews-v1-route"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v1
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews-destination, namespace: prod}
spec:
  host: reviews.prod.svc.cluster.local
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
"""
