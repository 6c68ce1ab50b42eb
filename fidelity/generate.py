"""Generated scenarios: a seeded hypothesis generator over the features meshlab models.

    python -m fidelity.generate --count 320          # rewrite corpus/generated.yaml (seeded: same every run)
    python -m fidelity.generate --explore 200        # search for a disagreement, shrink it, print its YAML

A scenario composes, from a fixed pool of workloads (so a reused lab keeps its pod processes):
Services (named, unnamed, appProtocol, multi-port, TCP, headless, ExternalName), VirtualServices
(matches on uri, headers, authority, port, sourceNamespace, sourceLabels and gateways; weights;
subsets; redirects with and without a port; direct responses; faults; header rewrites including
`:authority`; retries with `retryIgnorePreviousHosts`; wildcard, dotted non-Service and
upper-case hosts; several VirtualServices per host; `exportTo`), DestinationRules (subsets, several
per host, in the Service's, the client's and the root namespace, `exportTo`, wildcard hosts) and
Gateways (hosts, namespaces, `httpsRedirect`, an HTTPS server beside an HTTP one on one port).
Every scenario is checked by meshlab's loader; `--count` also drops what Istio's validation
rejects when the oracle is built. `fidelity.calls.derive` adds the requests that hit each rule.

`--explore` runs the property "the lab agrees with the oracle on every call" on fresh examples
(oracle asked live, one lab reused); hypothesis shrinks a failing scenario to a minimal one, which
is printed as a scenario file `python -m fidelity.routes --file` re-runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from meshlab.manifests import load

from .scenario import Scenario

SEED = 20261130
NAMESPACES = ["default", "prod"]
#: (namespace, app, version): the workload pool. Pods listen on 9080 and 8080.
WORKLOADS = [("default", "reviews", "v1"), ("default", "reviews", "v2"), ("default", "reviews", "v3"),
             ("default", "ratings", "v1"), ("prod", "reviews", "v1"), ("prod", "reviews", "v2")]
SUBSETS = ["v1", "v2", "v3", "v9"]


def deployment(ns: str, app: str, version: str) -> dict[str, Any]:
    labels = {"app": app, "version": version}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{app}-{version}", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "meshlab/app",
                                                           "ports": [{"containerPort": 9080, "name": "web"},
                                                                     {"containerPort": 8080}]}]}}}}


# ------------------------------------------------------------------------------------ strategies

@st.composite
def service(draw: Any, ns: str, app: str) -> dict[str, Any]:
    shape = draw(st.sampled_from(["http", "http", "http-suffix", "unnamed", "appProtocol", "multi", "tcp",
                                  "headless", "externalname", "grpc"]))
    spec: dict[str, Any] = {"selector": {"app": app}}
    if shape == "http":
        spec["ports"] = [{"name": "http", "port": 9080}]
    elif shape == "http-suffix":
        spec["ports"] = [{"name": "http-web", "port": 9080, "targetPort": "web"}]
    elif shape == "unnamed":
        spec["ports"] = [{"port": 9080}]
    elif shape == "appProtocol":
        spec["ports"] = [{"name": "web", "port": 9080, "appProtocol": draw(st.sampled_from(["http", "HTTP", "kubernetes.io/h2c", "tcp"]))}]
    elif shape == "multi":
        spec["ports"] = [{"name": "http", "port": 9080}, {"name": draw(st.sampled_from(["http-admin", "admin", "tcp-admin"])),
                                                          "port": 8080}]
    elif shape == "tcp":
        spec["ports"] = [{"name": "tcp", "port": 9080}]
    elif shape == "grpc":
        spec["ports"] = [{"name": "grpc", "port": 9080}]
    elif shape == "headless":
        spec["ports"] = [{"name": "http", "port": 9080}]
        spec["clusterIP"] = "None"
    else:
        spec = {"type": "ExternalName",
                "externalName": draw(st.sampled_from(["ratings.default.svc.cluster.local", "example.org"]))}
    if shape != "externalname" and draw(st.booleans()) and shape in ("http", "unnamed"):
        spec["ports"].append({"name": "http-80", "port": 80, "targetPort": 8080})
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns}, "spec": spec}


HOSTS = ["reviews", "ratings", "reviews.default.svc.cluster.local", "reviews.prod.svc.cluster.local",
         "*.default.svc.cluster.local", "*.prod.svc.cluster.local", "reviews.prod", "shop.example.com",
         "Reviews.default.svc.cluster.local", "*.example.com", "reviews.example.com"]


@st.composite
def string_match(draw: Any, values: list[str]) -> dict[str, str]:
    kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
    v = draw(st.sampled_from(values))
    return {kind: v if kind != "regex" else draw(st.sampled_from([v + ".*", ".*", "/[a-z]+"]))}


@st.composite
def match(draw: Any, gateway_names: list[str]) -> dict[str, Any]:
    m: dict[str, Any] = {}
    if draw(st.booleans()):
        m["uri"] = draw(string_match(["/a", "/b/", "/api", "/"]))
    if draw(st.integers(0, 3)) == 0:
        m["headers"] = {"end-user": draw(string_match(["jason", "ja"]))}
    if draw(st.integers(0, 5)) == 0:
        m["withoutHeaders"] = {"end-user": {"exact": "jason"}}
    if draw(st.integers(0, 5)) == 0:
        m["authority"] = draw(string_match(["reviews", "Reviews", "reviews:9080"]))
    if draw(st.integers(0, 5)) == 0:
        m["port"] = draw(st.sampled_from([9080, 80, 8080]))
    if draw(st.integers(0, 6)) == 0:
        m["sourceNamespace"] = draw(st.sampled_from(NAMESPACES))
    if draw(st.integers(0, 6)) == 0:
        m["sourceLabels"] = {"app": draw(st.sampled_from(["sleep", "other"]))}
    if gateway_names and draw(st.integers(0, 5)) == 0:
        m["gateways"] = draw(st.lists(st.sampled_from(gateway_names + ["mesh"]), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 6)) == 0:
        m["ignoreUriCase"] = True
    if draw(st.integers(0, 8)) == 0:
        m["queryParams"] = {"q": {"exact": "1"}}
    if draw(st.integers(0, 4)) == 0:
        m["name"] = draw(st.sampled_from(["m1", "m2"]))
    return m


@st.composite
def destination(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"host": draw(st.sampled_from(["reviews", "ratings", "reviews.prod.svc.cluster.local",
                                                        "reviews.default.svc.cluster.local", "nowhere"]))}
    if draw(st.booleans()):
        d["subset"] = draw(st.sampled_from(SUBSETS))
    if draw(st.integers(0, 4)) == 0:
        d["port"] = {"number": draw(st.sampled_from([9080, 80, 8080]))}
    return d


@st.composite
def http_rule(draw: Any, gateway_names: list[str], index: int) -> dict[str, Any]:
    r: dict[str, Any] = {}
    if draw(st.booleans()):
        r["name"] = f"r{index}"
    if draw(st.integers(0, 3)) > 0:
        r["match"] = draw(st.lists(match(gateway_names), min_size=1, max_size=2))
    action = draw(st.sampled_from(["route", "route", "route", "weighted", "redirect", "direct"]))
    if action == "route":
        r["route"] = [{"destination": draw(destination())}]
    elif action == "weighted":
        w = draw(st.sampled_from([50, 80, 0, 100]))
        r["route"] = [{"destination": draw(destination()), "weight": w},
                      {"destination": draw(destination()), "weight": 100 - w}]
    elif action == "redirect":
        rd: dict[str, Any] = {draw(st.sampled_from(["uri", "authority"])): draw(st.sampled_from(["/moved", "new.example.com"]))}
        if rd.get("uri") and not rd["uri"].startswith("/"):
            rd["uri"] = "/" + rd["uri"]
        if draw(st.booleans()):
            rd["scheme"] = draw(st.sampled_from(["https", "http"]))
        if draw(st.integers(0, 2)) == 0:
            rd["port"] = draw(st.sampled_from([80, 443, 8443]))
        if draw(st.booleans()):
            rd["redirectCode"] = draw(st.sampled_from([301, 302, 308]))
        r["redirect"] = rd
    else:
        r["directResponse"] = {"status": draw(st.sampled_from([200, 418, 503])), "body": {"string": "hi"}}
    if action in ("route", "weighted"):
        if draw(st.integers(0, 4)) == 0:
            r["fault"] = {"abort": {"httpStatus": draw(st.sampled_from([500, 418])),
                                    "percentage": {"value": draw(st.sampled_from([100, 50, 0]))}}}
        if draw(st.integers(0, 5)) == 0:
            r["headers"] = {"request": {"set": {draw(st.sampled_from([":authority", "host", "x-v"])): "ratings"}}}
        if draw(st.integers(0, 6)) == 0:
            r["retries"] = {"attempts": draw(st.sampled_from([0, 3])), "retryIgnorePreviousHosts": draw(st.booleans())}
        if draw(st.integers(0, 6)) == 0:
            r["rewrite"] = {draw(st.sampled_from(["uri", "authority"])): draw(st.sampled_from(["/r", "ratings"]))}
            if "uri" in r["rewrite"] and not r["rewrite"]["uri"].startswith("/"):
                r["rewrite"]["uri"] = "/r"
    return r


@st.composite
def virtual_service(draw: Any, index: int, gateway_names: list[str]) -> dict[str, Any]:
    ns = draw(st.sampled_from(["default", "default", "prod", "istio-system"]))
    spec: dict[str, Any] = {"hosts": draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2, unique=True))}
    if gateway_names and draw(st.integers(0, 2)) == 0:
        spec["gateways"] = draw(st.lists(st.sampled_from(gateway_names + ["mesh"]), min_size=1, max_size=2, unique=True))
    spec["http"] = [draw(http_rule(gateway_names, i)) for i in range(draw(st.integers(1, 3)))]
    if draw(st.integers(0, 5)) == 0:
        spec["exportTo"] = [draw(st.sampled_from([".", "*", "prod", "default"]))]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": f"vs{index}", "namespace": ns}, "spec": spec}


@st.composite
def destination_rule(draw: Any, index: int) -> dict[str, Any]:
    ns = draw(st.sampled_from(["default", "default", "prod", "istio-system"]))
    host = draw(st.sampled_from(["reviews", "ratings", "reviews.default.svc.cluster.local", "*.local",
                                 "*.default.svc.cluster.local", "reviews.prod.svc.cluster.local"]))
    spec: dict[str, Any] = {"host": host}
    names = draw(st.lists(st.sampled_from(["v1", "v2", "v3"]), max_size=3, unique=True))
    if names:
        spec["subsets"] = [{"name": n, "labels": {"version": n}} for n in names]
    if draw(st.integers(0, 3)) == 0:
        spec["trafficPolicy"] = {"loadBalancer": {"simple": draw(st.sampled_from(["ROUND_ROBIN", "RANDOM"]))}}
    if draw(st.integers(0, 4)) == 0:
        spec["exportTo"] = [draw(st.sampled_from([".", "*", "prod", "default"]))]
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": f"dr{index}", "namespace": ns}, "spec": spec}


@st.composite
def gateway(draw: Any, index: int) -> dict[str, Any]:
    ns = draw(st.sampled_from(["default", "istio-system"]))
    servers = []
    hosts = draw(st.lists(st.sampled_from(["*", "reviews.example.com", "*.example.com", "shop.example.com",
                                           "default/reviews.example.com", "prod/*"]), min_size=1, max_size=2, unique=True))
    s: dict[str, Any] = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}
    if draw(st.integers(0, 4)) == 0:
        s["tls"] = {"httpsRedirect": True}
    servers.append(s)
    if draw(st.integers(0, 4)) == 0:
        servers.append({"port": {"number": 8080, "name": "http-alt", "protocol": "HTTP"}, "hosts": ["*"]})
    if draw(st.integers(0, 6)) == 0:
        servers.append({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
                        "tls": {"mode": "SIMPLE", "credentialName": "cert"}})
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": f"gw{index}", "namespace": ns},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


@st.composite
def scenario(draw: Any, name: str = "generated/explore") -> Scenario:
    workloads = draw(st.lists(st.sampled_from(WORKLOADS), min_size=1, max_size=4, unique=True))
    apps = sorted({(ns, app) for ns, app, _ in workloads})
    base: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}]
    base += [deployment(*w) for w in sorted(workloads)]
    base += [draw(service(ns, app)) for ns, app in apps if draw(st.integers(0, 5)) > 0]
    gws = [draw(gateway(i)) for i in range(draw(st.integers(0, 1)))]
    gw_names = [f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in gws]
    gw_refs = gw_names + [g["metadata"]["name"] for g in gws]
    istio = gws + [draw(destination_rule(i)) for i in range(draw(st.integers(0, 2)))]
    vss = [draw(virtual_service(i, gw_refs)) for i in range(draw(st.integers(0, 3)))]
    steps = [base, istio] if istio else [base]
    if vss:
        if draw(st.booleans()):
            steps.append(vss)                             # equally old: their names order them
        else:
            steps += [[v] for v in reversed(vss)]          # each younger than the last
    not_ready = []
    if draw(st.integers(0, 6)) == 0:
        ns, app, v = draw(st.sampled_from(sorted(workloads)))
        not_ready.append(f"{ns}/{app}-{v}")
    return Scenario(name, [s for s in steps if s], [], not_ready)


def valid(s: Scenario) -> bool:
    try:
        for step in s.applies:
            load(step)
    except Exception:
        return False
    return True


# ------------------------------------------------------------------------------------ corpus / explore

def examples(count: int, seed: int = SEED) -> list[Scenario]:
    """`count` scenarios meshlab's loader accepts, the same for the same seed (hypothesis derandomized)."""
    found: list[Scenario] = []

    @settings(max_examples=count * 4, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(scenario())
    def collect(s: Scenario) -> None:
        kinds = {o["kind"] for o in s.objects()}
        if "Service" not in kinds or not kinds & {"VirtualService", "DestinationRule", "Gateway"}:
            return                                          # nothing to route
        if len(found) < count and valid(s) and s.applies not in [f.applies for f in found]:
            found.append(s)

    import random
    random.seed(seed)
    collect()
    for i, s in enumerate(found):
        s.name = f"generated/g{i + 1:04d}"
    return found


def explore(max_examples: int) -> int:
    """Fresh examples, oracle live, one lab: shrink the first disagreement and print it."""
    from . import oracle
    from .calls import derive
    from .compare import judge, requests_needed
    from .local import LabSession
    from .scenario import build_state

    session = LabSession()
    failing: list[str] = []

    @settings(max_examples=max_examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenario())
    def agrees(s: Scenario) -> None:
        if not valid(s):
            return
        s.calls = derive(build_state(s))
        answer = oracle.ask(s)
        if "rejected" in answer:
            return
        session.load(s)
        bad = []
        for call, entry in zip(s.calls, answer["calls"]):
            v = judge(s.name, entry, session.probe(call, requests_needed(entry)))
            if v.kind == "disagree":
                bad.append(str(v))
        if bad:
            failing[:] = [s.dump()] + bad
            raise AssertionError("\n".join(bad))

    try:
        agrees()
    except AssertionError:
        print("a disagreement, shrunk:\n" + "\n".join(failing[1:]) + "\n--- scenario (python -m fidelity.routes --file F) ---\n"
              + "- " + failing[0].replace("\n", "\n  ").rstrip())
        return 1
    finally:
        session.close()
    print(f"no disagreement in {max_examples} examples")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fidelity.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=0, help="rewrite corpus/generated.yaml with this many scenarios")
    ap.add_argument("--explore", type=int, default=0, help="search this many fresh examples for a disagreement")
    args = ap.parse_args(argv)
    if args.count:
        from . import corpus, oracle
        items = examples(args.count + args.count // 4)
        if oracle.available():
            kept = []
            for s in items:
                a = oracle.ask(corpus.with_derived_calls(s))
                if "rejected" not in a:
                    kept.append(s)
            print(f"{len(items) - len(kept)} rejected by Istio's validation, dropped")
            items = kept
        items = items[:args.count]
        for i, s in enumerate(items):
            s.name = f"generated/g{i + 1:04d}"
        print(f"{corpus.save('generated', items)}: {len(items)} scenarios")
    if args.explore:
        return explore(args.explore)
    return 0


if __name__ == "__main__":
    sys.exit(main())
