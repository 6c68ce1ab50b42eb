"""A scenario: a cluster state (the objects, applied in steps) and the calls both sides answer.

One scenario is one YAML mapping::

    name: generated/g0042               # <group>/<name>: the golden file is golden/routes/<group>/<name>.json
    applies:                            # the objects, one list per apply (later applies are younger)
    - [{apiVersion: v1, kind: Service, ...}, {apiVersion: apps/v1, kind: Deployment, ...}]
    - [{apiVersion: networking.istio.io/v1, kind: VirtualService, ...}]
    notReady: [default/reviews-v2]      # pods (or a Deployment's pods, by name prefix) not ready
    calls:
    - {url: "http://reviews:9080/a", headers: {end-user: jason}}          # from the default sidecar
    - {url: "http://ratings.prod:9080/", namespace: prod}                 # from prod's sidecar
    - {url: "http://bookinfo.example/productpage", via: gateway}          # through the ingress gateway
    - {url: "http://ratings:80/", headers: {host: reviews.prod}}          # dial one name, send another Host

A call's URL is what the client dials: for a sidecar, its host is a name cluster DNS answers
(or a ClusterIP) and its port the Service port; for the gateway, the host is the authority and the
port the gateway Service's port (80 → the gateway's 8080). `headers.host` sends another authority.

`build_state` replays the applies into a `ClusterState` with fixed addresses (pods 10.244.x.y,
Services 10.96.x.y), so the oracle's answers do not depend on which lab ran.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal
from urllib.parse import urlsplit

import yaml

from meshlab.manifests import load
from meshlab.state import ClusterState

#: Addresses of the proxies the oracle is asked about (not pods of the state).
GATEWAY_POD_IP, GATEWAY_CLUSTER_IP = "10.244.255.1", "10.96.255.1"
CLIENT_LABELS = {"app": "sleep"}                   # the lab's client pods (meshlab.backends.local)


class _Dumper(yaml.SafeDumper):
    """YAML without anchors and aliases (a scenario file is read by people)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass(frozen=True)
class Call:
    """One request: what the client dials, through which proxy, with which headers."""

    url: str
    via: Literal["sidecar", "gateway"] = "sidecar"
    namespace: str = "default"
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"

    @property
    def parts(self) -> tuple[str, int, bool, str]:
        """(host as written, port, whether the port was explicit, path with query)."""
        u = urlsplit(self.url if "://" in self.url else "http://" + self.url)
        host = u.netloc.rsplit("@", 1)[-1]
        explicit = False
        if host.startswith("["):
            raise ValueError(f"{self.url}: IPv6 literals are not supported")
        if ":" in host:
            host, port_text = host.rsplit(":", 1)
            port, explicit = int(port_text), True
        else:
            port = 80
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        return host, port, explicit, path

    @property
    def authority(self) -> str:
        """The Host header the request carries (curl keeps the URL's case and port)."""
        for k, v in self.headers:
            if k.lower() == "host":
                return v
        host, port, explicit, _ = self.parts
        return f"{host}:{port}" if explicit else host

    def header_dict(self, *, with_host: bool = True) -> dict[str, str]:
        return {k: v for k, v in self.headers if with_host or k.lower() != "host"}

    def to_yaml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"url": self.url}
        if self.via != "sidecar":
            d["via"] = self.via
        if self.namespace != "default":
            d["namespace"] = self.namespace
        if self.headers:
            d["headers"] = dict(self.headers)
        if self.method != "GET":
            d["method"] = self.method
        return d

    @classmethod
    def from_yaml(cls, d: dict[str, Any]) -> Call:
        return cls(url=d["url"], via=d.get("via", "sidecar"), namespace=d.get("namespace", "default"),
                   headers=tuple(sorted((str(k), str(v)) for k, v in (d.get("headers") or {}).items())),
                   method=d.get("method", "GET"))

    def __str__(self) -> str:
        extra = "".join(f" -H '{k}: {v}'" for k, v in self.headers)
        where = "gateway" if self.via == "gateway" else f"sidecar[{self.namespace}]"
        return f"{where} {self.method} {self.url}{extra}"


@dataclass
class Scenario:
    name: str
    applies: list[list[dict[str, Any]]]
    calls: list[Call] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]

    def objects(self) -> list[dict[str, Any]]:
        return [o for step in self.applies for o in step]

    def to_yaml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.note:
            d["note"] = self.note
        d["applies"] = self.applies
        if self.not_ready:
            d["notReady"] = self.not_ready
        d["calls"] = [c.to_yaml() for c in self.calls]
        return d

    @classmethod
    def from_yaml(cls, d: dict[str, Any]) -> Scenario:
        return cls(name=d["name"], applies=d["applies"], calls=[Call.from_yaml(c) for c in d.get("calls") or []],
                   not_ready=list(d.get("notReady") or []), note=d.get("note", ""))

    def dump(self) -> str:
        """The scenario as YAML a person can read and re-run (`python -m fidelity.routes --file`)."""
        return yaml.dump(self.to_yaml(), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)

    def manifests(self) -> str:
        """The objects as one multi-document YAML, as `kubectl apply -f` takes them."""
        return yaml.dump_all(self.objects(), Dumper=_Dumper, sort_keys=False)


def read_scenarios(path: Path) -> list[Scenario]:
    """Scenarios of one corpus file (a YAML list)."""
    data = yaml.safe_load(path.read_text()) or []
    return [Scenario.from_yaml(d) for d in data]


def write_scenarios(path: Path, scenarios: Iterable[Scenario]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.dump([s.to_yaml() for s in scenarios], Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=110)
    path.write_text("# generated by fidelity; see fidelity/README.md\n" + body)


def build_state(scenario: Scenario) -> ClusterState:
    """The scenario's ClusterState with fixed addresses (pods 10.244.x.y, Services 10.96.x.y)."""
    pods, vips = itertools.count(0), itertools.count(0)

    def pod_ip(_pod: Any) -> str:
        n = next(pods)
        return f"10.244.{n // 250}.{n % 250 + 1}"

    def cluster_ip(_svc: Any) -> str:
        n = next(vips)
        return f"10.96.{n // 250}.{n % 250 + 1}"

    st = ClusterState(pod_ip=pod_ip, cluster_ip=cluster_ip)
    for step in scenario.applies:
        st.apply(load(step))
    apply_not_ready(st, scenario.not_ready)
    return st


def apply_not_ready(st: Any, not_ready: list[str]) -> None:
    """Mark pods not ready: `ns/name` is a pod, or every pod whose name starts with `name-`."""
    for ref in not_ready:
        ns, _, name = ref.rpartition("/")
        ns = ns or "default"
        for p in st.pods(ns):
            if p.name == name or p.name.startswith(name + "-"):
                st.set_pod(p.name, ns, ready=False)
