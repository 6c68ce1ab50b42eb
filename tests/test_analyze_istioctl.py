"""`meshlab analyze` reports what `istioctl analyze` reports, and exits as it does (issue 12).

Each kind of fault is checked on inputs a learner writes; the same inputs are in the differential
(fidelity/analyze.py), which asks Istio's own analyzers about them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshlab.analysis import analyze
from meshlab.cli import main
from meshlab.errors import ManifestError
from meshlab.manifests import load, load_report

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: app, image: app, ports: [{containerPort: 9080}]}]}
"""


def vs(name: str, http: str, hosts: str = "[reviews]") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  hosts: {hosts}\n  http:\n{http}")


#: One object Istio's validation refuses, per kind of fault (name → YAML).
REFUSED = {
    "regex-lookahead": vs("regex", "  - match: [{uri: {regex: '^/(?!internal).*'}}]\n"
                                   "    route: [{destination: {host: reviews}}]\n"),
    "retry-on-499": vs("retry", "  - retries: {attempts: 2, retryOn: '5xx,499'}\n"
                                "    route: [{destination: {host: reviews}}]\n"),
    "subset-not-dns-label": ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                             "metadata: {name: reviews, namespace: default}\n"
                             "spec:\n  host: reviews\n  subsets: [{name: V1_bad, labels: {version: v1}}]\n"),
    "header-pseudo-uri": vs("pseudo", "  - match: [{headers: {':uri': {exact: /x}}}]\n"
                                      "    route: [{destination: {host: reviews}}]\n"),
    "service-entry-dns-wildcard": ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                                   "metadata: {name: ext, namespace: default}\n"
                                   "spec: {hosts: ['*.eu.example.com'], resolution: DNS, "
                                   "ports: [{number: 80, name: http, protocol: HTTP}]}\n"),
    "header-with-space": vs("space", "  - match: [{withoutHeaders: {'end user': {exact: a}}}]\n"
                                     "    route: [{destination: {host: reviews}}]\n"),
}
#: Found elsewhere in the same input: the rest must still be analyzed.
OTHER = vs("other", "  - route: [{destination: {host: nowhere}}]\n", hosts="[other.example.com]")


def _origin(yaml_text: str) -> str:
    report = load_report(yaml_text)
    obj = (report.objects or [o for o, _ in report.refused])[0]
    return f"{obj.kind} {obj.namespace}/{obj.name}"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_object_gets_ist0106_and_the_rest_is_analyzed(case: str, tmp_path: Path, capsys) -> None:
    text = "---\n".join([SERVICE, REFUSED[case], OTHER])
    found = {(f.code, f.level, f.origin) for f in analyze(text)}
    assert ("IST0106", "Error", _origin(REFUSED[case])) in found
    assert ("IST0101", "Error", "VirtualService default/other") in found
    with pytest.raises(ManifestError):     # load() (and lab.apply, validate) stay strict
        load(text)
    path = tmp_path / "in.yaml"
    path.write_text(text)
    assert main(["analyze", str(path)]) == 79
    assert main(["validate", str(path)]) == 65
    out = capsys.readouterr().out
    assert "IST0106" in out


def test_ist0106_names_the_field() -> None:
    found = [f for f in analyze("---\n".join([SERVICE, REFUSED["header-pseudo-uri"]])) if f.code == "IST0106"]
    assert [f.field for f in found] == ["spec.http[0].match[0].headers[\":uri\"]"]


@pytest.mark.parametrize("name", ["x-user", ":authority", ":method", "@request.auth.claims.group",
                                  "@request.auth.claims[group]", "a,b"])
def test_header_names_istio_takes(name: str) -> None:
    text = vs("ok", f"  - match: [{{headers: {{'{name}': {{exact: a}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n")
    load(SERVICE + "---\n" + text)      # no ManifestError


@pytest.mark.parametrize("name", [":uri", "end user", "x:y", "@request.auth.claims", "@request.auth.claims[]"])
def test_header_names_istio_refuses(name: str) -> None:
    text = vs("bad", f"  - match: [{{headers: {{'{name}': {{exact: a}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n")
    with pytest.raises(ManifestError, match="not a valid header name"):
        load(SERVICE + "---\n" + text)


def test_unparseable_file_exits_65_and_the_others_are_analyzed(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE)
    (tmp_path / "b.yaml").write_text("a: [")
    assert main(["analyze", str(tmp_path)]) == 65
    err = capsys.readouterr().err
    assert "b.yaml" in err
    (tmp_path / "c.yaml").write_text(OTHER)
    assert main(["analyze", str(tmp_path)]) == 79          # an Error finding wins over 65, as in istioctl
    assert "IST0101" in capsys.readouterr().out


def test_unparseable_input_still_raises_from_the_api() -> None:
    with pytest.raises(ManifestError):
        analyze("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: '80'}]}")


# ------------------------------------------------------------------------------------ IST0002

DEPRECATED_DELAY = vs("delay", "  - fault: {delay: {percent: 50, fixedDelay: 1s}}\n"
                               "    route: [{destination: {host: reviews}}]\n")


def test_deprecated_fault_delay_percent_is_ist0002() -> None:
    found = [(f.code, f.level, f.origin, f.field) for f in analyze(SERVICE + "---\n" + DEPRECATED_DELAY)
             if f.code.startswith("IST")]
    assert found == [("IST0002", "Warning", "VirtualService default/delay", "spec.http[0].fault.delay.percent")]
    now = DEPRECATED_DELAY.replace("percent: 50", "percentage: {value: 50}")
    assert not [f for f in analyze(SERVICE + "---\n" + now) if f.code == "IST0002"]


def test_cli_runs_as_a_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text("---\n".join([SERVICE, REFUSED["regex-lookahead"]]))
    r = subprocess.run([sys.executable, "-m", "meshlab.cli", "analyze", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 79 and "IST0106" in r.stdout and "Traceback" not in r.stderr


# -------------------------------------------------------------------------------- duplicates

def test_duplicates_across_files_warn_and_the_last_wins(tmp_path: Path, capsys) -> None:
    first = vs("r", "  - route: [{destination: {host: first-host}}]\n", hosts="[r.example.com]")
    (tmp_path / "1.yaml").write_text(first)
    (tmp_path / "2.yaml").write_text(first.replace("first-host", "second-host"))
    assert main(["analyze", str(tmp_path)]) == 79
    captured = capsys.readouterr()
    assert '"second-host"' in captured.out and "first-host" not in captured.out
    assert "1.yaml:1" in captured.err and "2.yaml:1" in captured.err and "the last one wins" in captured.err
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "valid: 1 object" in out


def test_validate_istio_samples_exits_0_with_duplicate_warnings(reference_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "meshlab.cli", "validate", str(reference_dir / "istio-samples")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings and all("given again at" in w for w in warnings)


#: More inputs for the differential (fidelity/analyze.py): name → YAML.
MORE: dict[str, str] = {"deprecated-delay-percent": SERVICE + "---\n" + DEPRECATED_DELAY}


# --------------------------------------------------------------------------- more of Istio's analyzers

def _gw(name: str, host: str, port: int = 8080, bind: str = "") -> str:
    extra = f", bind: {bind}" if bind else ""
    return (f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{selector: {{istio: ingressgateway}}, servers: [{{port: {{number: {port}, name: http, "
            f"protocol: HTTP}}, hosts: ['{host}']{extra}}}]}}\n")


def _se(name: str, protocol: str, export: str = "") -> str:
    extra = f", exportTo: [{export}]" if export else ""
    return (f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{hosts: [api.example.com], location: MESH_EXTERNAL, resolution: DNS{extra}, "
            f"ports: [{{number: 443, name: p, protocol: {protocol}}}]}}\n")


def _svc(name: str, port: int, target: int, protocol: str = "TCP") -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{selector: {{app: reviews}}, ports: [{{name: http-{name}, port: {port}, targetPort: {target}, "
            f"protocol: {protocol}}}]}}\n")


MORE.update({
    "IST0145 two gateways, one host and port": "---\n".join([_gw("a", "shop.example.com"), _gw("b", "shop.example.com")]),
    "no IST0145: different hosts": "---\n".join([_gw("a", "shop.example.com"), _gw("b", "books.example.com")]),
    "no IST0145: different binds": "---\n".join([_gw("a", "shop.example.com", bind="10.0.0.1"),
                                                 _gw("b", "shop.example.com", bind="10.0.0.2")]),
    "IST0177 ServiceEntries disagree on protocol": "---\n".join([_se("a", "TLS"), _se("b", "HTTPS")]),
    "no IST0177: same protocol, any case": "---\n".join([_se("a", "TLS"), _se("b", "TLS")]),
    "no IST0177: exported to different namespaces": "---\n".join([_se("a", "TLS", "'.'"), _se("b", "HTTPS", "other")]),
    "IST0102 namespace not labelled": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    "no IST0102: labelled": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n",
    "IST0103 pod without its sidecar": ("apiVersion: v1\nkind: Pod\nmetadata: {name: old, namespace: default}\n"
                                        "spec: {containers: [{name: app, image: app}]}\n"),
    "no IST0103: opted out": ("apiVersion: v1\nkind: Pod\nmetadata: {name: old, namespace: default, "
                              "labels: {sidecar.istio.io/inject: 'false'}}\nspec: {containers: [{name: app, image: app}]}\n"),
    "IST0135 opted out by the deprecated annotation": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: old, namespace: default, "
        "annotations: {sidecar.istio.io/inject: 'false'}}\nspec: {containers: [{name: app, image: app}]}\n"),
    "IST0135 on the pods of a Deployment whose template has it": SERVICE.replace(
        "metadata: {labels: {app: reviews, version: v1}}",
        "metadata: {labels: {app: reviews, version: v1}, annotations: {sidecar.istio.io/inject: 'false'}}"),
    "IST0116 one port, two protocols": SERVICE + "---\n" + _svc("udp", 9080, 9080, "UDP"),
    "IST0137 one targetPort, two ports": SERVICE + "---\n" + _svc("alt", 8080, 9080),
    "no IST0116/IST0137 outside the mesh": SERVICE.replace("namespace: default", "namespace: plain") + "---\n"
        + _svc("alt", 8080, 9080).replace("namespace: default", "namespace: plain"),
    "IST0128 TLS without caCertificates": ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                                           "metadata: {name: api, namespace: default}\nspec: {host: api.example.com, "
                                           "trafficPolicy: {tls: {mode: SIMPLE}, portLevelSettings: "
                                           "[{port: {number: 443}, tls: {mode: SIMPLE, caCertificates: /ca.pem}}]}}\n"),
})

EXPECTED_MORE = {
    "IST0145 two gateways, one host and port": {("IST0145", "Gateway default/a"), ("IST0145", "Gateway default/b")},
    "no IST0145: different hosts": set(),
    "no IST0145: different binds": set(),
    "IST0177 ServiceEntries disagree on protocol": {("IST0177", "ServiceEntry default/a"),
                                                    ("IST0177", "ServiceEntry default/b")},
    "no IST0177: same protocol, any case": set(),
    "no IST0177: exported to different namespaces": set(),
    "IST0102 namespace not labelled": {("IST0102", "Namespace shop")},
    "no IST0102: labelled": set(),
    "IST0103 pod without its sidecar": {("IST0103", "Pod default/old")},
    "no IST0103: opted out": set(),
    "IST0135 opted out by the deprecated annotation": {("IST0135", "Pod default/old")},
    "IST0116 one port, two protocols": {("IST0116", "Deployment default/reviews-v1")},
    "IST0137 one targetPort, two ports": {("IST0137", "Deployment default/reviews-v1")},
    "no IST0116/IST0137 outside the mesh": set(),
    "IST0128 TLS without caCertificates": {("IST0128", "DestinationRule default/api"),
                                           ("IST0174", "DestinationRule default/api")},
}


def test_ist0135_names_the_pods_a_deployment_makes() -> None:
    found = [f for f in analyze(MORE["IST0135 on the pods of a Deployment whose template has it"]) if f.code == "IST0135"]
    assert len(found) == 1 and found[0].kind == "Pod" and found[0].name.startswith("reviews-v1-")
    assert found[0].level == "Info"


@pytest.mark.parametrize("case", sorted(EXPECTED_MORE))
def test_more_of_istios_analyzers(case: str) -> None:
    ist = {(f.code, f.origin) for f in analyze(MORE[case]) if f.code.startswith("IST") and f.code != "IST0101"}
    assert ist == EXPECTED_MORE[case]


def test_ist0106_points_at_the_line_of_the_field(tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(SERVICE + "---\n" + REFUSED["header-pseudo-uri"])
    (f,) = [f for f in analyze(load_report(path)) if f.code == "IST0106"]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "headers:" in text)
    assert f.source == f"{path}:{line}"


def test_a_refused_object_given_valid_later_is_analyzed_as_the_valid_one(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(REFUSED["regex-lookahead"])
    (tmp_path / "2.yaml").write_text(REFUSED["regex-lookahead"].replace("'^/(?!internal).*'", "'^/api/.*'"))
    report = load_report(tmp_path)
    assert [o.source.file for o in report.read_objects] == [str(tmp_path / "2.yaml")]
    assert not [f for f in analyze(report) if f.code == "IST0106"]
