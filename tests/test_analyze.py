"""meshlab.analyze: istioctl-equivalent findings (codes, levels, targets) and meshlab's own traps.

Each case is a small cluster (a Service `reviews` with v1/v2 pods is always there) plus the YAML
under test, and the exact set of (code, target) findings expected — clean cases expect none.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from meshlab.analysis import Finding, analyze, format_findings
from meshlab.cli import commands
from meshlab.cli import main

from _manifests import deployment, destination_rule, docs, service

BASE = docs(
    service("reviews", namespace="default"),
    deployment("reviews", "v1", namespace="default"),
    deployment("reviews", "v2", replicas=2, namespace="default"),
)

DR_V1_V2 = destination_rule("reviews", ["v1", "v2"], namespace="default")


def vs(name: str = "reviews", ns: str = "default", hosts: str = "[reviews]", http: str = "", extra: str = "") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  hosts: {hosts}\n{extra}  http:\n" + textwrap.indent(textwrap.dedent(http).strip("\n"), "  ") + "\n")


def svc(name: str, ns: str = "default", ports: str = "[{name: http, port: 9080}]", selector: str = "{app: x}",
        annotations: str = "{}") -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, annotations: {annotations}}}\n"
            f"spec:\n  selector: {selector}\n  ports: {ports}\n")


def deploy(name: str, ns: str, labels: str, replicas: int = 1) -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n"
            f"  replicas: {replicas}\n  selector: {{matchLabels: {labels}}}\n"
            f"  template:\n    metadata: {{labels: {labels}}}\n    spec: {{containers: [{{name: app, image: app}}]}}\n")


def ns(name: str) -> str:
    """A namespace labelled for sidecar injection, as the course's are (else Istio says IST0102)."""
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{istio-injection: enabled}}}}\n"


ROUTE_V1 = "- route:\n  - destination: {host: reviews, subset: v1}"


def run(*docs: str, base: bool = True, **kw) -> set[tuple[str, str]]:
    text = "\n---\n".join(([BASE] if base else []) + list(docs))
    return {(f.code, f.origin) for f in analyze(text, **kw)}


VS_DEF = "VirtualService default/reviews"
#: A second Service selecting reviews' pods, reaching targetPort 9080 from another port than BASE's
#: 9080: Istio's deployment analyzer warns on both Deployments (IST0137).
IST0137_REVIEWS = {("IST0137", "Deployment default/reviews-v1"), ("IST0137", "Deployment default/reviews-v2")}
DR_DEF = "DestinationRule default/reviews"
#: A Service `web` on ports 80 and 9080 (both HTTP), with its pods; `reviews` (BASE) has 9080 only.
WEB = (svc("web", ports="[{name: http, port: 80, targetPort: 8080}, {name: http-alt, port: 9080}]",
           selector="{app: web}") + "---\n" + deploy("web", "default", "{app: web}"))
GW = ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
      "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}")

CASES: list[tuple[str, list[str], set[tuple[str, str]]]] = [
    # ---------------------------------------------------------------- clean configurations stay silent
    ("clean: subsets defined and selecting pods", [vs(http=ROUTE_V1), DR_V1_V2], set()),
    ("clean: weighted split v1/v2", [vs(http="""
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 80}
          - {destination: {host: reviews, subset: v2}, weight: 20}"""), DR_V1_V2], set()),
    ("clean: FQDN host of another namespace", [ns("other"), vs(ns="other", hosts="[reviews.default.svc.cluster.local]",
        http="- route:\n  - destination: {host: reviews.default.svc.cluster.local}")], set()),
    ("clean: ServiceEntry and wildcard ServiceEntry hosts", [
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: default}\n"
        "spec: {hosts: [api.example.com, '*.eu.example.com'], ports: [{number: 80, name: http, protocol: HTTP}], "
        "resolution: NONE}",
        vs(name="ext", hosts="[api.example.com]", http="- route:\n  - destination: {host: api.example.com}"),
        vs(name="eu", hosts="[shop.eu.example.com]", http="- route:\n  - destination: {host: shop.eu.example.com}")],
     set()),
    ("multi-port service with destination port (IST0137: two ports to one targetPort)", [
        svc("two", ports="[{name: http, port: 80, targetPort: 9080}, {name: grpc, port: 9000, targetPort: 9080}]",
            selector="{app: reviews}"),
        vs(name="two", hosts="[two]", http="- route:\n  - destination: {host: two, port: {number: 80}}")], set() | IST0137_REVIEWS),
    ("clean: fault with percentage, timeout and retries", [vs(http="""
        - fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
          timeout: 2s
          retries: {attempts: 2, perTryTimeout: 500ms, retryOn: "gateway-error,connect-failure"}
          match: [{method: {exact: GET}}]
          route:
          - destination: {host: reviews}""")], set()),
    ("clean: gateway on Bookinfo's port 8080 with host served", [
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}",
        vs(name="front", hosts="['*']", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}")],
     set()),
    ("clean: same host in two namespaces, exportTo '.'", [ns("a"), ns("b"),
        vs(name="r", ns="a", hosts="[reviews.default.svc.cluster.local]", extra="  exportTo: ['.']\n",
           http="- route:\n  - destination: {host: reviews.default.svc.cluster.local}"),
        vs(name="r", ns="b", hosts="[reviews.default.svc.cluster.local]", extra="  exportTo: ['.']\n",
           http="- route:\n  - destination: {host: reviews.default.svc.cluster.local}")], set()),
    ("conventional port names, well-known port, appProtocol (IST0137 only)", [
        svc("db", ports="[{port: 3306, targetPort: 9080}]", selector="{app: reviews}"),
        svc("api", ports="[{name: web, port: 8080, targetPort: 9080, appProtocol: http}, "
                         "{name: grpc-api, port: 9000, targetPort: 9080}]", selector="{app: reviews}")], set() | IST0137_REVIEWS),
    # ---------------------------------------------------------------- IST0101 (VirtualService)
    ("IST0101 destination host not found", [vs(http="- route:\n  - destination: {host: reviews-bogus}")],
     {("IST0101", VS_DEF)}),
    ("IST0101 host+subset not defined", [vs(http="- route:\n  - destination: {host: reviews, subset: v9}"), DR_V1_V2],
     {("IST0101", VS_DEF)}),
    ("IST0101 quiet for a subset defined in another namespace (by FQDN)", [ns("shared"),
        vs(http="- route:\n  - destination: {host: reviews.default.svc.cluster.local, subset: v1}"),
        DR_V1_V2.replace("namespace: default", "namespace: shared").replace("host: reviews", "host: reviews.default.svc.cluster.local")],
     {("MLB0011", VS_DEF)}),   # istioctl is satisfied; a sidecar in default would not use that DR
    ("IST0101 mirror host and mirror subset", [vs(http="""
        - route:
          - destination: {host: reviews, subset: v1}
          mirror: {host: shadow}
        - match: [{uri: {prefix: /x}}]
          route:
          - destination: {host: reviews, subset: v1}"""), DR_V1_V2,
        vs(name="m2", hosts="[other]", http="- route:\n  - destination: {host: reviews}\n  mirror: {host: reviews, subset: v7}")],
     {("IST0101", VS_DEF), ("IST0101", "VirtualService default/m2"), ("MLB0005", "VirtualService default/m2"),
      ("IST0130", VS_DEF)}),
    ("IST0101 host:port not on the Service", [vs(http="- route:\n  - destination: {host: reviews, port: {number: 80}}")],
     {("IST0101", VS_DEF)}),
    ("IST0101 ServiceEntry exported only to its own namespace", [ns("other"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: other}\n"
        "spec: {hosts: [api.example.com], exportTo: ['.'], ports: [{number: 80, name: http, protocol: HTTP}]}",
        vs(name="ext", hosts="[reviews]", http="- route:\n  - destination: {host: api.example.com}")],
     {("IST0101", "VirtualService default/ext")}),
    ("IST0101 Service hidden by networking.istio.io/exportTo", [ns("hidden"), ns("client"),
        svc("secret", ns="hidden", annotations="{networking.istio.io/exportTo: '.'}"),
        vs(name="s", ns="client", hosts="[secret.hidden.svc.cluster.local]",
           http="- route:\n  - destination: {host: secret.hidden.svc.cluster.local}")],
     {("IST0101", "VirtualService client/s"), ("MLB0005", "VirtualService client/s"), ("MLB0007", "Service hidden/secret")}),
    ("IST0101 + MLB0004: reviews.prod is not expanded", [ns("prod"), svc("reviews", ns="prod", selector="{app: reviews}"),
        deploy("reviews", "prod", "{app: reviews}"),
        vs(hosts="[reviews]", http="- route:\n  - destination: {host: reviews.prod}")],
     {("IST0101", VS_DEF), ("MLB0004", VS_DEF)}),
    ("IST0112 multi-port service without destination port", [
        svc("two", ports="[{name: http, port: 80, targetPort: 9080}, {name: grpc, port: 9000, targetPort: 9080}]",
            selector="{app: reviews}"),
        vs(name="two", hosts="[two]", http="- route:\n  - destination: {host: two}")],
     {("IST0112", "VirtualService default/two")} | IST0137_REVIEWS),
    # ---------------------------------------------------------------- gateways
    ("IST0101 gateway not found (and IST0132)", [vs(name="front", hosts="['*']", extra="  gateways: [nope]\n",
                                                   http="- route:\n  - destination: {host: reviews}")],
     {("IST0101", "VirtualService default/front"), ("IST0132", "VirtualService default/front")}),
    # Istio's GatewayAnalyzer looks for an Istio Gateway (gvk.Gateway) only: a Gateway API Gateway of the name
    # is another object, istiod binds no VirtualService to it (its listeners become Gateways named
    # <name>-istio-autogenerated-k8s-gateway-<listener>), and the oracle reports both codes here
    ("IST0101 a Gateway API Gateway of the name is not the gateway (and IST0132)", [
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
        "spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}",
        vs(name="front", hosts="['*']", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}")],
     {("IST0101", "VirtualService default/front"), ("IST0132", "VirtualService default/front")}),
    ("IST0132 host not served by the gateway", [
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com]}]}",
        vs(name="front", hosts="[books.example.com]", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}")],
     {("IST0132", "VirtualService default/front")}),
    ("IST0101 gateway selector matches no pod; IST0162 port not on gateway service", [
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: lost, namespace: default}\n"
        "spec: {selector: {istio: my-ingress}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: odd, namespace: default}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 9999, name: http, protocol: HTTP}, hosts: ['*']}]}"],
     {("IST0101", "Gateway default/lost"), ("IST0162", "Gateway default/odd")}),
    ("IST0140 gateway route without subset while a mesh VS splits by subset", [vs(http=ROUTE_V1), DR_V1_V2,
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}",
        vs(name="front", hosts="['*']", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}")],
     {("IST0140", "VirtualService default/front")}),
    # ---------------------------------------------------------------- IST0109
    ("IST0109 two mesh VirtualServices for one host", [vs(http=ROUTE_V1), DR_V1_V2,
        vs(name="reviews-2", hosts="[reviews.default.svc.cluster.local]", http="- route:\n  - destination: {host: reviews, subset: v2}")],
     {("IST0109", VS_DEF), ("IST0109", "VirtualService default/reviews-2")}),
    # ---------------------------------------------------------------- DestinationRules
    ("IST0174 DestinationRule host matches no service", [DR_V1_V2.replace("host: reviews", "host: ratings")],
     {("IST0174", DR_DEF)}),
    ("IST0173 subset selects no pod", [DR_V1_V2 + "  - {name: v3, labels: {version: v3}}\n"], {("IST0173", DR_DEF)}),
    ("IST0173: a Deployment with replicas 0 makes no pods", [deploy("reviews-v3", "default", "{app: reviews, version: v3}", 0),
        DR_V1_V2 + "  - {name: v3, labels: {version: v3}}\n"], {("IST0173", DR_DEF)}),
    ("MLB0006 (not IST0173): subset labels only on pods outside the Service", [
        deploy("ratings-v3", "default", "{app: ratings, version: v3}"),
        DR_V1_V2 + "  - {name: v3, labels: {version: v3}}\n"], {("MLB0006", DR_DEF)}),
    # ---------------------------------------------------------------- Service ports
    ("IST0118 unconventional and missing port names", [svc("web", ports="[{name: web, port: 8080, targetPort: 9080}]",
                                                          selector="{app: reviews}"),
                                                      svc("bare", ports="[{port: 9080}]", selector="{app: reviews}")],
     {("IST0118", "Service default/web"), ("IST0118", "Service default/bare")} | IST0137_REVIEWS),
    # ---------------------------------------------------------------- validation (IST0106/0130/0131)
    ("IST0106 duplicate subset name, mesh wildcard host", [vs(name="any", hosts="['*']", http="""
        - route:
          - destination: {host: reviews}"""),
        DR_V1_V2 + "  - {name: v1, labels: {version: v1}}\n"],
     {("IST0106", "VirtualService default/any"), ("IST0106", DR_DEF)}),
    ("IST0130 rule after a rule without match", [vs(http="""
        - route:
          - destination: {host: reviews, subset: v1}
        - match: [{headers: {end-user: {exact: jason}}}]
          route:
          - destination: {host: reviews, subset: v2}"""), DR_V1_V2], {("IST0130", VS_DEF)}),
    ("IST0131 + IST0130 duplicate match, IST0131 overlapping prefix", [vs(http="""
        - match: [{uri: {prefix: /api}}]
          route:
          - destination: {host: reviews, subset: v1}
        - match: [{uri: {prefix: /api}}]
          route:
          - destination: {host: reviews, subset: v2}
        - match: [{uri: {prefix: /api/v2}}]
          route:
          - destination: {host: reviews, subset: v2}
        - route:
          - destination: {host: reviews, subset: v1}"""), DR_V1_V2],
     {("IST0130", VS_DEF), ("IST0131", VS_DEF)}),
    # ---------------------------------------------------------------- meshlab's own traps
    ("MLB0001 rule after a prefix '/' catch-all", [vs(http="""
        - match: [{uri: {prefix: /}}]
          route:
          - destination: {host: reviews, subset: v1}
        - match: [{headers: {end-user: {exact: jason}}}]
          route:
          - destination: {host: reviews, subset: v2}"""), DR_V1_V2], {("MLB0001", VS_DEF)}),
    ("MLB0002 http rules on a tcp-named port", [svc("db", ports="[{name: tcp-db, port: 5432, targetPort: 9080}]", selector="{app: reviews}"),
        vs(name="db", hosts="[db]", http="- timeout: 1s\n  route:\n  - destination: {host: db}")],
     {("MLB0002", "VirtualService default/db")} | IST0137_REVIEWS),
    ("MLB0003 abort and delay without percentage never fire", [vs(http="""
        - fault:
            abort: {httpStatus: 503}
            delay: {fixedDelay: 2s}
          route:
          - destination: {host: reviews}""")], {("MLB0003", VS_DEF)}),
    ("MLB0005 mesh VirtualService host matches nothing", [vs(hosts="[reviewz]", http="- route:\n  - destination: {host: reviews}")],
     {("MLB0005", VS_DEF)}),
    ("MLB0007 Service selector matches no pod", [svc("orphan", selector="{app: nobody}")],
     {("MLB0007", "Service default/orphan")}),
    ("MLB0008 VirtualService bound to a gateway only", [
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}",
        vs(hosts="[reviews]", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}")],
     {("MLB0008", VS_DEF)}),
    ("MLB0009 + MLB0010 ignored weight, perTryTimeout >= timeout", [vs(http="""
        - timeout: 1s
          retries: {attempts: 3, perTryTimeout: 2s, retryOn: gateway-error}
          match: [{method: {exact: GET}}]
          route:
          - {destination: {host: reviews}, weight: 50}""")], {("MLB0009", VS_DEF), ("MLB0010", VS_DEF)}),
    ("MLB0011 subset only in a DestinationRule of an unrelated namespace", [ns("prod"),
        vs(http=ROUTE_V1), DR_V1_V2.replace("namespace: default", "namespace: prod")
        .replace("host: reviews", "host: reviews.default.svc.cluster.local")],
     {("MLB0011", VS_DEF)}),
    ("MLB0012 targetPort not among the pods' container ports (number and name)", [
        svc("wrongport", ports="[{name: http, port: 80, targetPort: 8080}]", selector="{app: reviews}"),
        svc("wrongname", ports="[{name: http, port: 80, targetPort: web}]", selector="{app: reviews}")],
     {("MLB0012", "Service default/wrongport"), ("MLB0012", "Service default/wrongname")}),
    # ---------------------------------------------------------------- resilience traps (chapters 5-8)
    ("MLB0013 outlier detection at the default 10 % on 3 pods ejects nothing",
     [DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\n")],
     {("MLB0013", DR_DEF)}),
    ("MLB0013 quiet when maxEjectionPercent lets one of 3 pods go",
     [DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 50}}\n")
      .replace("- {name: v1, labels: {version: v1}}", "- {name: v1, labels: {version: v1}, trafficPolicy: "
                                                        "{outlierDetection: {maxEjectionPercent: 100}}}")], set()),
    ("IST0133 locality failover without outlierDetection in the top-level trafficPolicy",
     [DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {loadBalancer: {localityLbSetting: "
                                   "{failover: [{from: eu-west, to: us-east}]}}}\n")],
     {("IST0133", DR_DEF)}),       # Istio's validation warns (pkg/config/validation/agent/validation.go)
    ("MLB0014 a subset's own locality failover without outlierDetection (istioctl is silent below the top level)",
     [DR_V1_V2.replace("- {name: v1, labels: {version: v1}}", "- {name: v1, labels: {version: v1}, trafficPolicy: "
                       "{loadBalancer: {localityLbSetting: {failover: [{from: eu-west, to: us-east}]}}}}")],
     {("MLB0014", DR_DEF)}),
    ("MLB0014 a port's locality failover without the port's own outlierDetection",
     [DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 100}, portLevelSettings: "
                                   "[{port: {number: 9080}, loadBalancer: {localityLbSetting: {failoverPriority: "
                                   "[topology.kubernetes.io/zone]}}}]}\n")],
     {("MLB0014", DR_DEF)}),
    ("IST0133 quiet with outlierDetection next to the failover",
     [DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 100}, "
                                   "loadBalancer: {localityLbSetting: {failoverPriority: [topology.kubernetes.io/zone]}}}\n")],
     set()),
    ("MLB0015 the app's keep-alive is shorter than Envoy's: without and with a DestinationRule", [
        svc("ka", selector="{app: ka}"), svc("kb", selector="{app: kb}"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ka, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: ka}}\n  template:\n    metadata: {labels: {app: ka}}\n"
        "    spec: {containers: [{name: app, image: app, env: [{name: KEEPALIVE_TIMEOUT_MS, value: '20'}]}]}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: kb, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: kb}}\n  template:\n    metadata: {labels: {app: kb}}\n"
        "    spec: {containers: [{name: app, image: app, env: [{name: KEEPALIVE_TIMEOUT_MS, value: '20'}]}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: kb, namespace: default}\n"
        "spec: {host: kb, trafficPolicy: {connectionPool: {http: {idleTimeout: 30ms}}}}\n"],
     {("MLB0015", "Service default/ka"), ("MLB0015", "DestinationRule default/kb")}),
    ("MLB0015 quiet with an idleTimeout below the app's", [
        svc("ka", selector="{app: ka}"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ka, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: ka}}\n  template:\n    metadata: {labels: {app: ka}}\n"
        "    spec: {containers: [{name: app, image: app, env: [{name: KEEPALIVE_TIMEOUT_MS, value: '20'}]}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ka, namespace: default}\n"
        "spec: {host: ka, trafficPolicy: {connectionPool: {http: {idleTimeout: 10ms}}}}\n"], set()),
    ("MLB0015 an idleTimeout below the app's but not by the network's round trip (chapter 7's lab)", [
        svc("ka", selector="{app: ka}"), svc("kb", selector="{app: kb}"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ka, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: ka}}\n  template:\n    metadata: {labels: {app: ka}}\n"
        "    spec: {containers: [{name: app, image: app, env: [{name: KEEPALIVE_TIMEOUT_MS, value: '100'}, "
        "{name: NETWORK_DELAY_MS, value: '25'}]}]}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: kb, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: kb}}\n  template:\n    metadata: {labels: {app: kb}}\n"
        "    spec: {containers: [{name: app, image: app, env: [{name: KEEPALIVE_TIMEOUT_MS, value: '100'}, "
        "{name: NETWORK_DELAY_MS, value: '25'}]}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ka, namespace: default}\n"
        "spec: {host: ka, trafficPolicy: {connectionPool: {http: {idleTimeout: 60ms}}}}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: kb, namespace: default}\n"
        "spec: {host: kb, trafficPolicy: {connectionPool: {http: {idleTimeout: 25ms}}}}\n"],
     {("MLB0015", "DestinationRule default/ka")}),
    ("MLB0016 retryOn 5xx on a rule any method takes; quiet on a GET-only rule", [vs(http="""
        - match: [{method: {exact: GET}}]
          retries: {attempts: 3, retryOn: 5xx}
          route: [{destination: {host: reviews}}]
        - retries: {attempts: 3, retryOn: "gateway-error,503"}
          route: [{destination: {host: reviews}}]""")], {("MLB0016", VS_DEF)}),
    ("MLB0017 consistent hash across a weighted split", [
        DR_V1_V2.replace("spec:\n", "spec:\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n"),
        vs(http="""
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 50}
          - {destination: {host: reviews, subset: v2}, weight: 50}""")], {("MLB0017", VS_DEF)}),
    ("MLB0018 a perTryTimeout the default retryOn never retries", [vs(http="""
        - retries: {attempts: 2, perTryTimeout: 100ms}
          route: [{destination: {host: reviews}}]""")], {("MLB0018", VS_DEF)}),
    ("MLB0019 a mesh route to a Service without the host's port 80, no destination port; quiet on 9080, which it has",
     [WEB, vs(name="web", hosts="[web]", http="""
        - match: [{port: 9080}]
          route: [{destination: {host: reviews}}]
        - route: [{destination: {host: reviews}}]""")], {("MLB0019", "VirtualService default/web")}),
    ("MLB0019 quiet: destination port given, gateway-only VirtualService, Service with the host's port", [
        WEB, GW, svc("ratings", selector="{app: reviews}"),
        vs(name="web", hosts="[web]", http="- route:\n  - destination: {host: reviews, port: {number: 9080}}"),
        vs(name="edge", hosts="[web]", extra="  gateways: [gw]\n", http="- route:\n  - destination: {host: reviews}"),
        vs(name="reviews", hosts="[reviews]", http="- route:\n  - destination: {host: ratings}")],
     {("MLB0008", "VirtualService default/edge")}),
]


@pytest.mark.parametrize("docs,expected", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_analyzer_cases(docs: list[str], expected: set[tuple[str, str]]) -> None:
    assert run(*docs) == expected


def test_mlb0019_names_the_field_the_port_the_missing_cluster_and_resolves_short_names_in_the_vs_namespace() -> None:
    """Each destination without a port whose Service lacks a port the VirtualService's hosts are
    served on (a rule matching only port 9080 is not served on 80); a short name is the
    VirtualService's namespace's Service (`reviews` in `other` is none: IST0101, not MLB0019)."""
    web = vs(name="web", hosts="[web]", http="""
        - match: [{port: 9080}]
          route: [{destination: {host: reviews}}]
        - match: [{headers: {x-v: {exact: "1"}}}]
          route:
          - {destination: {host: reviews, subset: v1}, weight: 50}
          - {destination: {host: reviews, subset: v2}, weight: 50}
        - route: [{destination: {host: reviews}}]""")
    other = vs(name="web", ns="other", hosts="[web.default.svc.cluster.local]", http="""
        - match: [{headers: {x-v: {exact: "1"}}}]
          route: [{destination: {host: reviews}}]
        - route: [{destination: {host: reviews.default.svc.cluster.local}}]""")
    found = [f for f in analyze("\n---\n".join([BASE, WEB, DR_V1_V2, web, ns("other"), other]))
             if f.code == "MLB0019"]
    assert [(f.namespace, f.field) for f in found] == [
        ("default", "spec.http[1].route[0].destination"), ("default", "spec.http[1].route[1].destination"),
        ("default", "spec.http[2].route[0].destination"), ("other", "spec.http[1].route[0].destination")]
    assert {f.level for f in found} == {"Warning"}
    for f, cluster in zip(found, ["outbound|80|v1|reviews.default.svc.cluster.local",
                                  "outbound|80|v2|reviews.default.svc.cluster.local",
                                  "outbound|80||reviews.default.svc.cluster.local",
                                  "outbound|80||reviews.default.svc.cluster.local"]):
        assert cluster in f.message and "port 80" in f.message and "outbound|9080|" not in f.message
        assert f"{f.field}.port.number" in f.fix and "9080" in f.fix


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_messages_read_like_istioctl() -> None:
    found = analyze("\n---\n".join([BASE, DR_V1_V2, vs(http="- route:\n  - destination: {host: reviews, subset: v9}")]))
    assert [str(f) for f in found] == [
        'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v9"']
    assert found[0].field == "spec.http[0].route[0].destination" and "v9" in found[0].fix
    assert found[0].source.startswith("<string>")


def test_ist0112_and_ist0118_texts() -> None:
    found = analyze("\n---\n".join([BASE, svc("two", ports="[{name: web, port: 80, targetPort: 8080}, {name: grpc, port: 9000}]",
                                                 selector="{app: reviews}"),
                                     vs(name="two", hosts="[two]", http="- route:\n  - destination: {host: two}")]))
    texts = {f.code: f.message for f in found}
    assert texts["IST0112"] == ('This VirtualService routes to a service "two" that exposes multiple ports [80 9000]. '
                                "Specifying a port in the destination is required to disambiguate.")
    assert texts["IST0118"] == ("Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention "
                                "of Istio port.")


def test_ist0173_counts_pods_in_any_namespace_and_ist0174_text() -> None:
    other = [ns("lab"), deploy("stray", "lab", "{version: v3}")]
    dr = DR_V1_V2 + "  - {name: v3, labels: {version: v3}}\n"
    assert ("IST0173", DR_DEF) not in run(*other, dr)
    assert ("IST0173", DR_DEF) in run(dr)
    [f] = analyze("\n---\n".join([BASE, DR_V1_V2.replace("host: reviews", "host: nope")]))
    assert (f.level, f.message) == ("Warning", "The host nope defined in the DestinationRule does not match any "
                                               "services in the mesh.")


def test_istio_install_assumption_can_be_turned_off() -> None:
    gw = ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
          "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}")
    assert run(gw) == set()
    assert run(gw, istio_install=False) == {("IST0101", "Gateway default/gw")}


def test_order_levels_and_dedup() -> None:
    found = analyze("\n---\n".join([BASE, svc("web", ports="[{name: web, port: 80}]", selector="{app: reviews}"),
                                     DR_V1_V2.replace("host: reviews", "host: nope"),
                                     vs(http="- route:\n  - destination: {host: bogus}\n- route:\n  - destination: {host: bogus}")]))
    levels = [f.level for f in found]
    assert levels == sorted(levels, key={"Error": 0, "Warning": 1, "Info": 2}.get)
    assert len({str(f) for f in found}) == len(found)
    assert sum(1 for f in found if f.code == "IST0101") == 1   # same message twice → printed once


def test_analyze_accepts_objects_and_cluster_state() -> None:
    from meshlab.manifests import load
    from meshlab.state import ClusterState
    objs = load("\n---\n".join([BASE, vs(http="- route:\n  - destination: {host: reviews, subset: v1}")]))
    st = ClusterState()
    st.apply(objs)
    assert {f.code for f in analyze(objs)} == {"IST0101"} == {f.code for f in analyze(st)}
    # readiness of a live state is honoured: all v2 pods unready → MLB0006 for subset v2
    full = load("\n---\n".join([BASE, DR_V1_V2]))
    st = ClusterState()
    st.apply(full)
    for p in st.pods():
        if p.labels.get("version") == "v2":
            st.set_pod(p.name, p.namespace, ready=False)
    assert [(f.code, f.message.split(":")[0]) for f in analyze(st)] == [
        ("MLB0006", "Subset v2 of reviews.default.svc.cluster.local has no ready endpoint")]


def test_ist0106_for_objects_the_loader_would_refuse() -> None:
    """Typed objects skip load()'s webhook checks; analyze still reports them as istioctl does."""
    import yaml

    from meshlab.objects import VirtualService
    bad = VirtualService.model_validate(yaml.safe_load(vs(http="""
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 0}
          - {destination: {host: reviews, subset: v2}, weight: 0}""")))
    from meshlab.manifests import load
    found = analyze([*load(BASE + "---\n" + DR_V1_V2), bad])
    assert [(f.level, f.code, f.origin, f.field) for f in found] == [
        ("Error", "IST0106", "VirtualService default/reviews", "spec.http[0].route")]
    assert "weight" in found[0].message


def test_objects_read_back_from_a_cluster_are_not_doubled() -> None:
    """Pods owned by a ReplicaSet come with their Deployment: pods are not derived twice."""
    from meshlab.manifests import load
    pod = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v1-abc\n  namespace: default\n"
           "  labels: {app: reviews, version: v1}\n  ownerReferences: [{kind: ReplicaSet, name: reviews-v1-5f}]\n"
           "spec: {containers: [{name: app, image: app}, {name: istio-proxy, image: proxyv2}]}")
    objs = load("\n---\n".join([BASE, DR_V1_V2, pod]))
    # Only the real pod exists: subset v2 (whose pods came from the Deployment) now selects none.
    assert run(BASE, DR_V1_V2, pod, base=False) == {("IST0173", DR_DEF)}
    assert len(objs) == 5


def test_meshlab_analyze_is_the_function_even_after_the_cli_imports_its_module() -> None:
    import importlib

    import meshlab
    importlib.import_module("meshlab.analysis")     # what `meshlab analyze` imports
    found = meshlab.analyze(BASE + "---\n" + vs(http="- route:\n  - destination: {host: nope}"))
    assert [f.code for f in found] == ["IST0101"]


def test_live_pods_named_by_a_real_cluster_are_paired_by_labels() -> None:
    """A kind lab names Deployment pods its own way: readiness is carried over by labels."""
    import pandas as pd

    from meshlab.manifests import load

    class ReadBack:
        def objects(self):
            return load(BASE + "---\n" + DR_V1_V2)

        def pods(self):
            rows = [{"name": f"reviews-v2-77f-{i}", "namespace": "default", "ip": f"10.0.0.{i}",
                     "labels": {"app": "reviews", "version": "v2"}, "ready": False, "phase": "Running"} for i in (1, 2)]
            rows.append({"name": "reviews-v1-55c-1", "namespace": "default", "ip": "10.0.0.3",
                         "labels": {"app": "reviews", "version": "v1"}, "ready": True, "phase": "Running"})
            return pd.DataFrame(rows)

    found = analyze(ReadBack())
    assert [(f.code, f.name) for f in found] == [("MLB0006", "reviews")]
    assert "reviews-v2-77f-1" in found[0].message


def test_live_cluster_blind_spots_and_suppression() -> None:
    """istioctl's live source skips Services/Pods in kube-system; the suppress annotation silences codes."""
    dns = ("apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\n"
           "spec: {selector: {k8s-app: kube-dns}, ports: [{name: dns-tcp, port: 53}]}")
    to_dns = vs(name="dns", hosts="[kube-dns.kube-system.svc.cluster.local]",
                http="- route:\n  - destination: {host: kube-dns.kube-system.svc.cluster.local}")
    assert ("IST0101", "VirtualService default/dns") in run(dns, to_dns)
    quiet = vs(name="q", http="- route:\n  - destination: {host: nope}").replace(
        "metadata: {name: q, namespace: default}",
        "metadata: {name: q, namespace: default, annotations: {galley.istio.io/analyze-suppress: 'IST0101,MLB0005'}}")
    assert run(quiet) == set()


def test_failover_without_outlier_detection_ist0133_at_the_top_mlb0014_below_it() -> None:
    """Istio's validation warns (IST0133) only for the top-level trafficPolicy: a subset's policy
    and portLevelSettings go through `appendErrors`, which drops warnings (checked with Istio's
    analyzers through the oracle). MLB0014 says it where istioctl is silent — a subset's own
    failover, or a port's — with no outlierDetection in effect there; never both for one place."""
    failover = "loadBalancer: {localityLbSetting: {failover: [{from: eu-west, to: us-east}]}}"
    v1 = "- {name: v1, labels: {version: v1}}"

    def top(policy: str) -> str:
        return DR_V1_V2.replace("spec:\n", f"spec:\n  trafficPolicy: {{{policy}}}\n")

    def subset(policy: str, dr: str = DR_V1_V2) -> str:
        return dr.replace(v1, f"- {{name: v1, labels: {{version: v1}}, trafficPolicy: {{{policy}}}}}")

    od = "outlierDetection: {maxEjectionPercent: 100}"
    port = f"portLevelSettings: [{{port: {{number: 9080}}, {failover}}}]"
    cases = {
        "top level": (top(failover), {"IST0133"}),
        "inherited by a subset with a policy of its own": (
            subset("connectionPool: {tcp: {maxConnections: 5}}", top(failover)), {"IST0133"}),
        "zoneAwareLbSetting at the top (Istio 1.31)": (
            top("loadBalancer: {zoneAwareLbSetting: {failover: [{from: eu-west, to: us-east}]}}"), {"IST0133"}),
        "a subset's own failover": (subset(failover), {"MLB0014"}),
        "a port's failover, without the port's own outlierDetection": (top(f"{od}, {port}"), {"MLB0014"}),
        "a subset's own failover, the top level's outlierDetection inherited": (subset(failover, top(od)), set()),
        "a subset's failover, disabled": (subset(failover.replace("{failover", "{enabled: false, failover")), set()),
        "with outlierDetection next to it": (top(f"{od}, {failover}"), set()),
    }
    for where, (dr, codes) in cases.items():
        assert {code for code, _ in run(dr)} == codes, where


def test_format_findings_has_fix_lines() -> None:
    f = Finding("IST0101", "Error", "VirtualService", "default", "reviews", "Referenced host not found: \"x\"", "do it")
    assert format_findings([f]).splitlines() == [
        'Error [IST0101] (VirtualService default/reviews) Referenced host not found: "x"', "    fix: do it"]


# -------------------------------------------------------------------------------------------- CLI

def _write(tmp_path, name: str, *docs: str):
    p = tmp_path / name
    p.write_text("\n---\n".join(docs))
    return str(p)


def test_cli_exit_codes(tmp_path, capsys) -> None:
    clean = _write(tmp_path, "clean.yaml", BASE, DR_V1_V2, vs(http=ROUTE_V1))
    assert main(["analyze", clean]) == 0
    assert "No validation issues" in capsys.readouterr().err
    warn_only = _write(tmp_path, "warn.yaml", BASE, DR_V1_V2.replace("host: reviews", "host: nope"))
    assert main(["analyze", warn_only]) == 0
    assert "Warning [IST0174]" in capsys.readouterr().out
    broken = _write(tmp_path, "broken.yaml", BASE, DR_V1_V2, vs(http="- route:\n  - destination: {host: reviews, subset: v9}"))
    assert main(["analyze", broken]) == 79
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v9"'
    assert out[1].startswith("    fix: ")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("kind: Service\n  metadata: [\n")
    assert main(["analyze", str(bad_yaml)]) == 65
    assert "bad.yaml" in capsys.readouterr().err
    invalid = _write(tmp_path, "invalid.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: '80'}]}")
    assert main(["analyze", invalid]) == 65
    assert main(["analyze", str(tmp_path / "missing.yaml")]) == 65


def test_cli_json_shape(tmp_path, capsys) -> None:
    path = _write(tmp_path, "a.yaml", BASE, DR_V1_V2.replace("host: reviews", "host: nope"),
                  vs(http="- route:\n  - destination: {host: reviews, subset: v9}"))
    assert main(["analyze", "--json", path]) == 79
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert {"code", "level", "kind", "namespace", "name", "message"} <= set(item)
        assert item["level"] in ("Error", "Warning", "Info")
    assert {(d["code"], d["kind"], d["namespace"], d["name"]) for d in data} == {
        ("IST0101", "VirtualService", "default", "reviews"), ("IST0174", "DestinationRule", "default", "reviews")}


def test_cli_folder_and_args_object(tmp_path, capsys) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "1.yaml").write_text(BASE)
    (d / "2.yaml").write_text(vs(http="- route:\n  - destination: {host: nope}"))
    import argparse
    assert commands.analyze(argparse.Namespace(paths=[str(d)], json=False)) == 79
    assert "IST0101" in capsys.readouterr().out


def test_ist_codes_names_and_levels_are_istios_message_table() -> None:
    import shutil

    import yaml

    from _apiserver import module_dir
    from meshlab.analysis.codes import ISTIO
    from meshlab.backends.kind.config import ISTIO_SOURCE

    if shutil.which("go") is None:
        pytest.skip("Go is not installed: Istio's source cannot be read from the module cache")
    table = yaml.safe_load((module_dir(ISTIO_SOURCE) / "pkg/config/analysis/msg/messages.yaml").read_text())
    theirs = {m["code"]: (m["name"], m["level"]) for m in table["messages"]}
    assert {code: (c.name, c.level) for code, c in ISTIO.items()} == {code: theirs[code] for code in ISTIO}
