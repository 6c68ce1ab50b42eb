"""`python -m fidelity.analyze`: `meshlab analyze` against Istio's own analyzers, input by input.

For every input of the corpus (the chapters' manifests, Istio's samples as the docs apply them,
the analyzer tests' inputs, seeded mutants of Bookinfo) both sides judge the same cluster:

- meshlab: `meshlab.analyze` on the input (with Istio's default install, as `meshlab analyze`);
- Istio: `meshlab-oracle analyze --json --as-cluster -A` on what a live cluster would hold for it
  (`cluster_objects`: the input's objects, the Pods their Deployments make — with the sidecar the
  injector adds in an injected namespace — and the same default install), i.e. istioctl's
  analyzers as `istioctl analyze -A` runs them against that cluster.

Compared: the set of (code, level, resource) of the IST findings (meshlab's MLB codes are its own
extension, Istio has no opinion) and the exit status (79 with an Error, else 0). An input agrees
when both are equal, or when every difference is listed in `DOCUMENTED` with its reason.

The oracle's answers are kept in `fidelity/golden/analyze.json` (keyed by input, with a hash of
what was asked), so a machine without Go still compares; `--golden` asks the oracle again and
rewrites them (`make fidelity-analyze-golden`). Prints `analyze: A/N inputs agree` and each
disagreement with its reason; `--summary FILE` writes the counts for `make fidelity`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshlab.analysis import analyze, snapshot_of
from meshlab.analysis.workload_rules import PROXY_CONTAINER, in_mesh
from meshlab.manifests import load_report
from meshlab.objects import Deployment, Namespace

ROOT = Path(__file__).resolve().parent.parent
ORACLE = Path(os.environ.get("MESHLAB_ORACLE") or ROOT / "oracle" / "bin" / "meshlab-oracle")
GOLDEN = Path(__file__).resolve().parent / "golden" / "analyze.json"
REFERENCE = Path(os.environ.get("MESHLAB_REFERENCE") or ROOT.parent / "shared" / "reference")
SAMPLES = REFERENCE / "istio-samples"
CHAPTERS = ROOT / "notebooks" / "manifests"

#: Differences that are meshlab's on purpose: (code, why). A difference of that code, on either
#: side, does not make an input disagree; it is counted and printed as documented.
DOCUMENTED: dict[str, str] = {
    "IST0171": ("istioctl's ConditionAnalyzer reads the status istiod wrote; objects in files carry none, so "
                "`istioctl analyze FILE` never reports it. meshlab gives file objects the status istiod's Gateway "
                "API controller would write (meshlab/gateway_api.py, checked against the oracle's status) and "
                "reports what `istioctl analyze` reports once they are applied to a cluster"),
}

Key = tuple[str, str, str, str, str]       # code, level, kind, namespace, name


@dataclass
class Input:
    name: str
    group: str            # chapters, samples, tests, mutants
    text: str             # multi-document YAML, as a learner would apply it


@dataclass
class Verdict:
    input: Input
    meshlab: set[Key]
    istio: set[Key]
    meshlab_exit: int
    istio_exit: int
    documented: list[str] = field(default_factory=list)

    @property
    def missing(self) -> set[Key]:          # Istio reports it, meshlab does not
        return {k for k in self.istio - self.meshlab if k[0] not in DOCUMENTED}

    @property
    def extra(self) -> set[Key]:            # meshlab reports it, Istio does not
        return {k for k in self.meshlab - self.istio if k[0] not in DOCUMENTED}

    @property
    def agree(self) -> bool:
        exit_ok = self.meshlab_exit == self.istio_exit or bool(self.documented)
        return not self.missing and not self.extra and exit_ok

    def reasons(self) -> list[str]:
        out = [f"Istio reports, meshlab does not: {_fmt(k)}" for k in sorted(self.missing)]
        out += [f"meshlab reports, Istio does not: {_fmt(k)}" for k in sorted(self.extra)]
        if self.meshlab_exit != self.istio_exit:
            out.append(f"exit status: meshlab {self.meshlab_exit}, Istio {self.istio_exit}")
        return out


def _fmt(k: Key) -> str:
    code, level, kind, ns, name = k
    return f"{level} [{code}] {kind} {ns + '/' if ns else ''}{name}"


# ------------------------------------------------------------------------------------ the cluster

@dataclass
class Judged:
    """One input, read once: meshlab's findings and what the oracle is asked."""

    body: str                              # the cluster's objects, YAML
    request: str                           # its hash
    meshlab: set[Key]
    meshlab_exit: int
    synthetic: set[tuple[str, str, str]]   # the default install's objects (not compared)


def judge(text: str) -> Judged:
    report = load_report(text)
    objects = report.read_objects
    snap = snapshot_of(objects)
    body = yaml.safe_dump_all(_cluster_objects(snap), sort_keys=True)
    findings = analyze(report)
    keys = {(f.code, f.level, f.kind, f.namespace, f.name) for f in findings if f.code.startswith("IST")}
    exit_status = 79 if any(f.level == "Error" for f in findings) else (65 if report.unparsed else 0)
    return Judged(body, hashlib.sha256(body.encode()).hexdigest()[:16], keys, exit_status, snap.synthetic)


def cluster_objects(text: str) -> list[dict[str, Any]]:
    """What a live cluster holds for `text`, as the API server serves it: the objects as meshlab
    read them (those Istio's validation refuses included), the Pods meshlab derives from their
    Deployments (with an istio-proxy container where the injector would add one), and Istio's
    default install with the course's injected `default` namespace."""
    report = load_report(text)
    return _cluster_objects(snapshot_of(report.read_objects))


def _cluster_objects(snap: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for o in snap.state.all():
        if isinstance(o, Namespace) and not (snap.is_given(o) or snap.is_synthetic_obj(o)):
            continue                       # the state's own kube-system, kube-public, ...
        m = o.to_manifest()
        m.get("metadata", {}).pop("creationTimestamp", None)
        out.append(m)
    given_pods = {(o.namespace, o.name) for o in snap.state.all() if o.kind == "Pod"}
    templates = {(d.namespace, d.name): d.spec.template for d in snap.state.all() if isinstance(d, Deployment)}
    for p in snap.state.pods():
        if (p.namespace, p.name) in given_pods:
            continue
        spec = p.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        owner = templates.get((p.namespace, p.owner or ""))
        annotations = dict(owner.metadata.annotations) if owner is not None else {}
        if in_mesh(snap, p.namespace, p.labels, annotations, list(p.spec.containers)):
            spec["containers"] = [*spec["containers"], {"name": PROXY_CONTAINER, "image": "docker.io/istio/proxyv2"}]
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels),
                                 **({"annotations": annotations} if annotations else {})},
                    "spec": spec,
                    "status": {"phase": p.phase, "podIP": p.ip or "",
                               "conditions": [{"type": "Ready", "status": "True" if p.ready else "False"}]}})
    return out


def meshlab_side(text: str) -> tuple[set[Key], int]:
    j = judge(text)
    return j.meshlab, j.meshlab_exit


def ask_oracle(body: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(body)
        path = f.name
    try:
        r = subprocess.run([str(ORACLE), "analyze", "--json", "--as-cluster", "-A", path],
                           capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    if not r.stdout.strip():
        raise RuntimeError(f"meshlab-oracle analyze failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    data = json.loads(r.stdout)
    return {"exitStatus": data["exitStatus"], "parseErrors": data.get("parseErrors") or [],
            "messages": sorted([m["code"], m["level"], m.get("kind", ""), m.get("namespace", ""), m.get("name", "")]
                               for m in data["messages"])}


def istio_side(answer: dict[str, Any], synthetic: set[tuple[str, str, str]]) -> tuple[set[Key], int]:
    keys = {tuple(m) for m in answer["messages"] if (m[2], m[3], m[4]) not in synthetic}
    exit_status = 79 if any(k[1] == "Error" for k in keys) else 0
    return keys, exit_status   # type: ignore[return-value]


# ------------------------------------------------------------------------------------- the corpus

def _read(*paths: Path) -> str:
    return "---\n".join(p.read_text() if p.read_text().endswith("\n") else p.read_text() + "\n" for p in paths)


def chapter_inputs() -> list[Input]:
    """Each chapter's manifests as the chapter applies them: on the Service and Deployments of
    chapter 1, each file alone and the chapter's folder at once."""
    if not CHAPTERS.is_dir():
        return []
    base = sorted((CHAPTERS / "01-service").glob("*.yaml"))
    out = [Input("chapters/01-service", "chapters", _read(*base))]
    for folder in sorted(p for p in CHAPTERS.iterdir() if p.is_dir() and p.name != "01-service"):
        files = sorted(folder.rglob("*.yaml"))
        for f in files:
            out.append(Input(f"chapters/{f.relative_to(CHAPTERS)}", "chapters", _read(*base, f)))
        for sub in sorted({f.parent for f in files}):
            group = sorted(sub.glob("*.yaml"))
            if len(group) > 1:
                out.append(Input(f"chapters/{sub.relative_to(CHAPTERS)}/", "chapters", _read(*base, *group)))
    return out


PLATFORM = "bookinfo__platform__kube__bookinfo.yaml"
DR_ALL = "bookinfo__networking__destination-rule-all.yaml"


def sample_inputs() -> list[Input]:
    """Istio's samples as Istio's docs apply them (Bookinfo's networking samples on the platform and
    destination-rule-all), and the whole folder at once (`kubectl apply -f istio-samples/`)."""
    if not SAMPLES.is_dir():
        return []
    out = []
    for f in sorted(SAMPLES.glob("*.yaml")):
        if f.name.startswith("bookinfo__networking__"):
            own_drs = "kind: DestinationRule" in f.read_text()
            files = [SAMPLES / PLATFORM] + ([] if own_drs else [SAMPLES / DR_ALL]) + [f]
        else:
            files = [f]
        out.append(Input(f"samples/{f.stem}", "samples", _read(*files)))
    out.append(Input("samples/ (the folder)", "samples", _read(*sorted(SAMPLES.glob("*.yaml")))))
    return out


def test_inputs() -> list[Input]:
    """Every analyzer test's input (tests/test_analyze.py CASES, tests/test_analyze_istioctl.py)."""
    tests = ROOT / "tests"
    sys.path.insert(0, str(tests))
    try:
        import test_analyze as ta              # noqa: PLC0415 (tests are not a package)
        import test_analyze_istioctl as ti     # noqa: PLC0415
    finally:
        sys.path.remove(str(tests))
    out = [Input(f"tests/test_analyze: {name}", "tests", "\n---\n".join([ta.BASE, *docs]))
           for name, docs, _ in ta.CASES]
    for name, text in sorted(ti.REFUSED.items()):
        out.append(Input(f"tests/test_analyze_istioctl: {name}", "tests", "---\n".join([ti.SERVICE, text, ti.OTHER])))
    for name, text in sorted(ti.MORE.items()):
        out.append(Input(f"tests/test_analyze_istioctl: {name}", "tests", text))
    return out


#: Mutations of Bookinfo (platform + destination-rule-all + a routing sample): each a kind of
#: mistake a learner makes. (name, function of the list of documents → list of documents).
def _mutants(seed: int = 12, n: int = 120) -> list[Input]:
    if not SAMPLES.is_dir():
        return []
    rng = random.Random(seed)
    routing = sorted(p for p in SAMPLES.glob("bookinfo__networking__virtual-service-*.yaml"))
    platform = list(yaml.safe_load_all((SAMPLES / PLATFORM).read_text()))
    drs = list(yaml.safe_load_all((SAMPLES / DR_ALL).read_text()))

    def vss(docs):
        return [d for d in docs if d and d.get("kind") == "VirtualService"]

    def first_route(docs):
        for d in vss(docs):
            for rule in d["spec"].get("http") or []:
                for r in rule.get("route") or []:
                    return d, rule, r
        return None

    def m_host_typo(docs):
        hit = first_route(docs)
        if hit:
            hit[2]["destination"]["host"] += "s"
        return docs

    def m_subset_typo(docs):
        hit = first_route(docs)
        if hit:
            hit[2]["destination"]["subset"] = "v9"
        return docs

    def m_drop_service(docs):
        svcs = [d for d in docs if d and d.get("kind") == "Service"]
        victim = rng.choice(svcs)
        return [d for d in docs if d is not victim]

    def m_regex(docs):
        hit = first_route(docs)
        if hit:
            hit[1].setdefault("match", []).insert(0, {"uri": {"regex": "^/(?!admin).*"}})
        return docs

    def m_retry(docs):
        hit = first_route(docs)
        if hit:
            hit[1]["retries"] = {"attempts": 3, "retryOn": rng.choice(["5xx,499", "gateway-error,connect-failure",
                                                                       "5xx,418", "reset,599"])}
        return docs

    def m_header(docs):
        hit = first_route(docs)
        if hit:
            hit[1].setdefault("match", []).insert(0, {"headers": {rng.choice([":uri", "end user", "x-ok", ":path"]):
                                                                 {"exact": "a"}}})
        return docs

    def m_delay_percent(docs):
        hit = first_route(docs)
        if hit:
            hit[1]["fault"] = {"delay": {"percent": 50, "fixedDelay": "1s"}}
        return docs

    def m_port(docs):
        hit = first_route(docs)
        if hit:
            hit[2]["destination"]["port"] = {"number": rng.choice([80, 9080, 9999])}
        return docs

    def m_second_vs(docs):
        vs = vss(docs)
        if vs:
            twin = json.loads(json.dumps(vs[0]))
            twin["metadata"]["name"] += "-2"
            docs.append(twin)
        return docs

    def m_bad_subset_name(docs):
        dr = next(d for d in docs if d and d.get("kind") == "DestinationRule")
        dr["spec"]["subsets"][0]["name"] = rng.choice(["V1", "v1_a", "v1.0"])
        return docs

    def m_namespace(docs):
        docs.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "default", "labels": rng.choice([{}, {"istio-injection": "enabled"},
                                                                             {"istio-injection": "disabled"}])}})
        return docs

    def m_second_service(docs):
        svc = json.loads(json.dumps(next(d for d in docs if d and d.get("kind") == "Service")))
        svc["metadata"]["name"] += "-alt"
        port = svc["spec"]["ports"][0]
        choice = rng.choice(["protocol", "port"])
        if choice == "protocol":
            port["protocol"] = "UDP"
        else:
            port["targetPort"] = port.get("targetPort", port["port"])
            port["port"] += 1
        docs.append(svc)
        return docs

    def m_gateway_twin(docs):
        gw = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw-a"},
              "spec": {"selector": {"istio": "ingressgateway"},
                       "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"},
                                    "hosts": ["bookinfo.example.com"]}]}}
        twin = json.loads(json.dumps(gw))
        twin["metadata"]["name"] = "gw-b"
        twin["spec"]["servers"][0]["hosts"] = [rng.choice(["bookinfo.example.com", "other.example.com"])]
        return docs + [gw, twin]

    def m_service_entries(docs):
        def se(name, proto):
            return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": name},
                    "spec": {"hosts": ["api.example.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                             "ports": [{"number": 443, "name": proto.lower(), "protocol": proto}]}}
        return docs + [se("api-a", "TLS"), se("api-b", rng.choice(["HTTPS", "TLS", "HTTP"]))]

    def m_gateway(docs):
        """An ingress Gateway and a VirtualService bound to it, each with a learner's slip."""
        host = rng.choice(["bookinfo.example.com", "*"])
        gw = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "bookinfo-gateway"},
              "spec": {"selector": {"istio": rng.choice(["ingressgateway", "ingress"])},
                       "servers": [{"port": {"number": rng.choice([8080, 80, 9999]), "name": "http",
                                             "protocol": "HTTP"}, "hosts": [host]}]}}
        vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "front"},
              "spec": {"hosts": [rng.choice([host, "shop.example.com"])],
                       "gateways": [rng.choice(["bookinfo-gateway", "istio-system/bookinfo-gateway", "missing"])],
                       "http": [{"route": [{"destination": {"host": "productpage",
                                                            "port": {"number": 9080}}}]}]}}
        return docs + [gw, vs]

    def m_rules(docs):
        """A rule order slip: a catch-all first, or the same match twice."""
        hit = first_route(docs)
        if hit:
            vs, rule, _ = hit
            twin = json.loads(json.dumps(rule))
            twin.pop("match", None)
            if rng.random() < 0.5:
                vs["spec"]["http"].insert(0, twin)
            else:
                rule["match"] = [{"uri": {"prefix": "/api"}}]
                dup = json.loads(json.dumps(rule))
                vs["spec"]["http"].append(dup)
        return docs

    def m_mirror(docs):
        hit = first_route(docs)
        if hit:
            hit[1]["mirror"] = {"host": rng.choice(["reviews", "shadow"]), "subset": rng.choice(["v1", "v9"])}
        return docs

    def m_port_name(docs):
        svc = next(d for d in docs if d and d.get("kind") == "Service")
        svc["spec"]["ports"][0]["name"] = rng.choice(["web", "tcp-web", "grpc", ""])
        if not svc["spec"]["ports"][0]["name"]:
            del svc["spec"]["ports"][0]["name"]
        return docs

    def m_export(docs):
        vs = vss(docs)
        if vs:
            vs[0]["spec"]["exportTo"] = [rng.choice([".", "*", "other"])]
            twin = json.loads(json.dumps(vs[0]))
            twin["metadata"]["name"] += "-twin"
            twin["spec"]["exportTo"] = [rng.choice([".", "*"])]
            docs.append(twin)
        return docs

    def m_dr_host(docs):
        dr = next(d for d in docs if d and d.get("kind") == "DestinationRule")
        dr["spec"]["host"] = rng.choice(["reviews.default", "reviews.default.svc.cluster.local", "review",
                                         "*.default.svc.cluster.local"])
        return docs

    def m_other_namespace(docs):
        """The same routing from another namespace: short names now mean that namespace."""
        labels = rng.choice([{}, {"istio-injection": "enabled"}])
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}})
        for d in vss(docs)[:1]:
            d["metadata"]["namespace"] = "shop"
        return docs

    def m_multi_port(docs):
        svc = next(d for d in docs if d and d.get("kind") == "Service" and d["metadata"]["name"] == "reviews")
        svc["spec"]["ports"].append({"name": "grpc", "port": 9081, "targetPort": rng.choice([9080, 9081])})
        return docs

    def m_inject(docs):
        """A Deployment kept out of the mesh by the sidecar.istio.io/inject label or annotation."""
        dep = rng.choice([d for d in docs if d.get("kind") == "Deployment"])
        where = rng.choice(["labels", "annotations"])
        dep["spec"]["template"]["metadata"].setdefault(where, {})["sidecar.istio.io/inject"] = "false"
        return docs

    mutations = [m_inject, m_gateway, m_rules, m_mirror, m_port_name, m_export, m_dr_host, m_other_namespace, m_multi_port,
                 m_host_typo, m_subset_typo, m_drop_service, m_regex, m_retry, m_header, m_delay_percent, m_port,
                 m_second_vs, m_bad_subset_name, m_namespace, m_second_service, m_gateway_twin, m_service_entries]
    out = []
    for i in range(n):
        sample = rng.choice(routing)
        docs = json.loads(json.dumps(platform + drs + list(yaml.safe_load_all(sample.read_text()))))
        docs = [d for d in docs if d]
        if rng.random() < 0.6:     # without the subsets no Bookinfo pod carries (else IST0173 always)
            for d in docs:
                if d.get("kind") == "DestinationRule":
                    d["spec"]["subsets"] = [x for x in d["spec"].get("subsets") or [] if "mysql" not in x["name"]]
        chosen = rng.sample(mutations, k=rng.choice([1, 1, 2]))
        for m in chosen:
            docs = m(docs)
        name = f"mutants/{i:02d} {sample.stem.removeprefix('bookinfo__networking__')} " + \
            "+".join(m.__name__[2:] for m in chosen)
        out.append(Input(name, "mutants", yaml.safe_dump_all(docs, sort_keys=False)))
    return out


def corpus() -> list[Input]:
    return [*chapter_inputs(), *sample_inputs(), *test_inputs(), *_mutants()]


# ------------------------------------------------------------------------------------- the runner

def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def run(inputs: list[Input], *, use_oracle: bool, write_golden: bool = False, jobs: int = 2) -> list[Verdict]:
    golden = load_golden()
    judged = {i.name: judge(i.text) for i in inputs}
    answers: dict[str, dict[str, Any]] = {}
    to_ask = [i for i in inputs if use_oracle and (write_golden or golden.get(i.name, {}).get("request")
                                                   != judged[i.name].request)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for inp, ans in zip(to_ask, pool.map(lambda i: ask_oracle(judged[i.name].body), to_ask)):
            answers[inp.name] = {"request": judged[inp.name].request, **ans}
    verdicts = []
    for inp in inputs:
        j = judged[inp.name]
        ans = answers.get(inp.name) or golden.get(inp.name)
        if ans is None or ans.get("request") != j.request:
            raise SystemExit(f"no current golden answer for {inp.name!r}: run `make fidelity-analyze-golden` "
                             "(needs Go to build the oracle)")
        answers[inp.name] = ans
        istio, istio_exit = istio_side(ans, j.synthetic)
        v = Verdict(inp, j.meshlab, istio, j.meshlab_exit, istio_exit)
        v.documented = [f"{_fmt(k)}: {DOCUMENTED[k[0]]}" for k in sorted(j.meshlab ^ istio) if k[0] in DOCUMENTED]
        verdicts.append(v)
    if write_golden:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({i.name: answers[i.name] for i in inputs}, indent=1, sort_keys=True) + "\n")
    return verdicts


def report(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        if not v.agree:
            lines.append(f"DISAGREE {v.input.name}")
            lines += [f"    {r}" for r in v.reasons()]
    for v in verdicts:
        for d in v.documented:
            lines.append(f"documented {v.input.name}: {d}")
    groups: dict[str, list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault(v.input.group, []).append(v)
    for g, vs in groups.items():
        lines.append(f"  {g}: {sum(v.agree for v in vs)}/{len(vs)} agree")
    lines.append(f"analyze: {sum(v.agree for v in verdicts)}/{len(verdicts)} inputs agree")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", action="store_true", help="ask the oracle for every input, rewrite the goldens")
    ap.add_argument("--no-oracle", action="store_true", help="compare with the goldens only")
    ap.add_argument("--summary", help="write the counts (JSON) for `make fidelity`")
    ap.add_argument("-k", help="only inputs whose name contains this")
    a = ap.parse_args(argv)
    started = time.monotonic()
    inputs = [i for i in corpus() if not a.k or a.k in i.name]
    use_oracle = not a.no_oracle and ORACLE.exists()
    if a.golden and not ORACLE.exists():
        raise SystemExit("--golden needs the oracle: make oracle")
    verdicts = run(inputs, use_oracle=use_oracle, write_golden=a.golden and not a.k)
    print(report(verdicts))
    if a.summary:
        Path(a.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(a.summary).write_text(json.dumps({
            "part": "analyze", "agree": sum(v.agree for v in verdicts), "calls": len(verdicts),
            "scenarios": len(verdicts), "unmodelled": 0, "seconds": round(time.monotonic() - started, 1)}))
    return 0 if all(v.agree for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
