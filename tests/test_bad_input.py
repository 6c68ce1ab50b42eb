"""Bad input, table-driven: each gets one clear sentence naming file, line and field — no traceback.

Work is bounded structurally (size, document, depth and node caps checked before Python objects
are built), so these are not timed; memory is checked with tracemalloc for the large inputs.
"""

from __future__ import annotations

import os
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from meshlab.manifests import _yaml
from meshlab.errors import ManifestError
from meshlab.manifests import LoadReport, load, load_report

VS_HEAD = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
"""

SVC_HEAD = """apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector: {app: reviews}
"""


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + x for x in lines) + "\n"


def _deep_block(depth: int) -> str:
    out = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: deep}", "data:"]
    out += ["  " * (i + 1) + f"k{i}:" for i in range(depth)]
    out[-1] += " x"
    return "\n".join(out) + "\n"


def _deep_dict(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    root = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": inner}
    for _ in range(depth):
        nxt: dict[str, Any] = {}
        inner["k"] = nxt
        inner = nxt
    return root


def _sparse_file(size: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        p = tmp / "huge.yaml"
        with p.open("wb") as f:       # sparse: 50 MB on paper, nothing written
            f.truncate(size)
        return p
    return make


@dataclass
class Case:
    id: str
    content: str | bytes | Callable[[Path], Any]   # text/bytes are written to a file
    message: str                                     # a piece of the sentence the learner reads
    field: str | None = None
    line: int | None = None
    in_file: bool = True                             # the problem names the file


CASES = [
    Case("invalid-yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n", "invalid YAML", line=4),
    Case("tab-indent", "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: a\n", "tab character", line=4),
    Case("binary-garbage", bytes(range(256)) * 8, "binary file"),
    Case("not-utf8", "apiVersion: v1\nkind: Namespace\nmetadata: {name: caf\xe9}\n".encode("latin-1"), "not UTF-8",
         line=3),
    Case("control-char", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a\x07}\n", "control character", line=3),
    Case("list-at-top", "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n", "separate documents", line=1),
    Case("scalar-at-top", "just some words\n", 'found the string "just some words"'),
    Case("50MB-file", _sparse_file(50 * 1024 * 1024), "too large: 52428800 bytes"),
    Case("alias-bomb", _alias_bomb(), "after expanding aliases"),
    Case("recursive-alias", "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: a, x: *m}\n", "recursive alias",
         line=3),
    Case("undefined-alias", "apiVersion: v1\nkind: ConfigMap\nmetadata: *nowhere\n", "no anchor &nowhere", line=3),
    Case("deep-flow", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: " + "[" * 5000 + "\n",
         "nested too deeply", line=4),
    Case("deep-block", _deep_block(200), "nested too deeply"),
    Case("deep-dict", lambda tmp: _deep_dict(5000), "nested too deeply", in_file=False),
    Case("too-many-documents", "---\n" * (_yaml.MAX_DOCUMENTS + 5), "too many documents"),
    # a tag kubectl does not know is ignored (sigs.k8s.io/yaml): the tagged 80 is the string "80"
    Case("tagged-number", SVC_HEAD + "  ports:\n  - port: !Ref 80\n", 'expected an integer, found the string "80"',
         field="spec.ports[0].port", line=8),
    Case("duplicate-key", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n  http: []\n",
         'the key "http" appears twice', line=10),
    Case("unknown-apiVersion", VS_HEAD.replace("/v1\n", "/v2\n", 1), 'not served in "networking.istio.io/v2"',
         field="apiVersion", line=1),
    Case("removed-group", "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: a}\n",
         "use apps/v1", field="apiVersion", line=1),
    Case("unknown-version-of-known-group", "apiVersion: security.istio.io/v9\nkind: AuthorizationPolicy\n"
         "metadata: {name: a}\n", "security.istio.io/v1", field="apiVersion"),
    Case("malformed-apiVersion", "apiVersion: a/b/c\nkind: Thing\nmetadata: {name: a}\n", "is not an apiVersion",
         field="apiVersion"),
    Case("missing-kind", "apiVersion: v1\nmetadata: {name: a}\n", "required field kind is missing", field="kind"),
    Case("kind-not-string", "apiVersion: v1\nkind: 7\nmetadata: {name: a}\n", "found the number 7", field="kind",
         line=2),
    Case("hosts-not-a-list", VS_HEAD.replace("[reviews]", "reviews"), 'expected a list, found the string "reviews"',
         field="spec.hosts", line=6),
    Case("weight-as-string", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n      weight: \"80\"\n",
         'expected an integer, found the string "80"', field="spec.http[0].route[0].weight", line=10),
    Case("weight-negative", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n      weight: -5\n",
         "must be >= 0", field="spec.http[0].route[0].weight", line=10),
    Case("weight-float", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n      weight: 12.5\n",
         "expected an integer, found the number 12.5", field="spec.http[0].route[0].weight"),
    Case("route-without-host", VS_HEAD + "  http:\n  - route:\n    - destination: {subset: v1}\n",
         "required field host is missing", field="spec.http[0].route[0].destination.host", line=9),
    Case("port-as-string", SVC_HEAD + "  ports:\n  - port: \"80\"\n", 'expected an integer, found the string "80"',
         field="spec.ports[0].port", line=8),
    Case("bool-for-string", VS_HEAD + "  http:\n  - route:\n    - destination: {host: yes}\n",
         "expected a string, found the boolean true", field="spec.http[0].route[0].destination.host"),
    Case("label-value-number", SVC_HEAD.replace("name: reviews\n", "name: reviews\n  labels: {version: 2}\n") +
         "  ports: [{port: 80}]\n", 'quote it: "2"', field="metadata.labels.version", line=5),
    Case("unknown-field-typo", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
         "spec:\n  host: r\n  subset:\n  - name: v1\n", 'did you mean "subsets"', field="spec.subset", line=6),
    Case("snake-case-field", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
         "spec:\n  host: r\n  traffic_policy: {}\n", 'unknown field "traffic_policy"', field="spec.traffic_policy"),
    Case("podspec-typo", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n"
         "  restartPolcy: Always\n", 'did you mean "restartPolicy"', field="spec.restartPolcy", line=6),
    Case("container-typo", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n"
         "    image: x\n    imagePullPolcy: Always\n", 'did you mean "imagePullPolicy"',
         field="spec.containers[0].imagePullPolcy", line=8),
    Case("enum-value", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n"
         "  host: r\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n", '"ROUND_ROBIN"',
         field="spec.trafficPolicy.loadBalancer.simple", line=7),
    Case("bad-duration", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n    timeout: 3 seconds\n",
         "not a duration", field="spec.http[0].timeout", line=10),
    Case("two-string-matches", VS_HEAD + "  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n"
         "    route:\n    - destination: {host: a}\n", "only one of exact, prefix, regex",
         field="spec.http[0].match[0].uri", line=9),
    Case("invalid-name", "apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec:\n  containers: [{name: a}]\n",
         '"My_Pod" is not a valid name', field="metadata.name", line=3),
    Case("selector-mismatch", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
         "  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: e}}\n"
         "    spec: {containers: [{name: a, image: x}]}\n", "selector does not match template labels",
         field="spec.template.metadata.labels", line=7),
    Case("missing-path", lambda tmp: tmp / "nope.yaml", "no such file or folder"),
    Case("pseudo-header-match", VS_HEAD + "  http:\n  - match:\n    - headers: {':uri': {exact: /a}}\n"
         "    route:\n    - destination: {host: a}\n", '":uri" is not a valid header name',
         field='spec.http[0].match[0].headers[":uri"]', line=9),
    Case("header-name-with-space", VS_HEAD + "  http:\n  - match:\n    - withoutHeaders: {'end user': {exact: a}}\n"
         "    route:\n    - destination: {host: a}\n", "a header name has no spaces",
         field='spec.http[0].match[0].withoutHeaders["end user"]', line=9),
    Case("perl-regex", VS_HEAD + "  http:\n  - match:\n    - uri: {regex: '/api/(?!internal).*'}\n"
         "    route:\n    - destination: {host: a}\n", "not a valid RE2 regular expression",
         field="spec.http[0].match[0].uri.regex", line=9),
    Case("negative-pool-limit", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
         "spec:\n  host: r\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: -1}\n",
         "must be >= 0", field="spec.trafficPolicy.connectionPool.tcp.maxConnections", line=8),
    Case("indentation-slip-down", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n    weight: 100\n",
         "weight is a field of route[]: check the indentation", field="spec.http[0].weight", line=10),
    Case("indentation-slip-up", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n      timeout: 1s\n",
         "timeout belongs one level up, beside spec.http[0].route", field="spec.http[0].route[0].timeout", line=10),
    Case("device-not-file", lambda tmp: Path("/dev/zero"), "not a regular file", in_file=False),
    Case("kind-typo", VS_HEAD.replace("kind: VirtualService", "kind: VirtualSevice"), 'did you mean "VirtualService"',
         field="kind", line=2),
    Case("kind-in-wrong-group", "apiVersion: apps/v1\nkind: Service\nmetadata: {name: a}\n",
         "Service is not served in \"apps/v1\"; use v1", field="apiVersion", line=1),
    # ---- issue 17: what the API server or Istio refuse and load() let through, user strings clipped
    Case("name-trailing-newline", 'apiVersion: v1\nkind: Namespace\nmetadata: {name: "web\\n"}\n',
         '"web\\n" is not a valid name', field="metadata.name", line=3),
    Case("namespace-trailing-newline", 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: "prod\\n"}\n',
         "is not a valid namespace name", field="metadata.namespace", line=3),
    Case("label-trailing-newline", SVC_HEAD.replace("name: reviews\n", 'name: reviews\n  labels: {app: "web\\n"}\n', 1)
         + "  ports: [{port: 80}]\n", '"web\\n" is not a valid label value', field="metadata.labels.app", line=5),
    Case("subset-trailing-newline", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
         'spec:\n  host: r\n  subsets: [{name: "v1\\n", labels: {version: v1}}]\n', "is not a valid subset name",
         field="spec.subsets[0].name", line=6),
    Case("header-value-crlf", VS_HEAD + '  http:\n  - headers: {request: {set: {x-user: "a\\r\\nx-admin: 1"}}}\n'
         "    route: [{destination: {host: a}}]\n", "contains a control character",
         field='spec.http[0].headers.request.set["x-user"]', line=8),
    Case("redirect-uri-crlf", VS_HEAD + '  http:\n  - redirect: {uri: "/a\\r\\nset-cookie: x"}\n',
         "contains a line break", field="spec.http[0].redirect.uri", line=8),
    Case("header-lone-percent", VS_HEAD + "  http:\n  - headers: {response: {add: {x-off: '50%'}}}\n"
         "    route: [{destination: {host: a}}]\n", "a lone '%'", field='spec.http[0].headers.response.add["x-off"]',
         line=8),
    Case("header-environment-unterminated", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n"
         "      headers: {request: {set: {x-a: '%ENVIRONMENT(HOME'}}}\n", "an unterminated command",
         field='spec.http[0].route[0].headers.request.set["x-a"]', line=10),
    Case("vs-host-empty", VS_HEAD.replace("[reviews]", "['']") + "  http: [{route: [{destination: {host: a}}]}]\n",
         "empty domain name", field="spec.hosts[0]", line=6),
    Case("vs-host-with-port", VS_HEAD.replace("[reviews]", "['reviews:9080']") +
         "  http: [{route: [{destination: {host: a}}]}]\n", "a host has no port", field="spec.hosts[0]", line=6),
    Case("vs-host-non-ascii", VS_HEAD.replace("[reviews]", "['r\u00e9views.example.com']") +
         "  http: [{route: [{destination: {host: a}}]}]\n", "punycode", field="spec.hosts[0]", line=6),
    Case("vs-host-wildcard-not-leftmost", VS_HEAD.replace("[reviews]", "['shop.*.example.com']") +
         "  http: [{route: [{destination: {host: a}}]}]\n", "a wildcard may only stand at the start",
         field="spec.hosts[0]", line=6),
    Case("weight-beyond-int32", VS_HEAD + "  http:\n  - route:\n    - destination: {host: a}\n"
         "      weight: 3000000000\n", "must be <= 2147483647", field="spec.http[0].route[0].weight", line=10),
    Case("weights-sum-beyond-envoy", VS_HEAD + "  http:\n  - route:\n" + "".join(
         f"    - {{destination: {{host: a, subset: v{i}}}, weight: 2147483647}}\n" for i in range(3)),
         "more than Envoy takes (4294967295", field="spec.http[0].route", line=9),
    Case("attempts-beyond-int32", VS_HEAD + "  http:\n  - retries: {attempts: 2147483648}\n"
         "    route: [{destination: {host: a}}]\n", "must be <= 2147483647", field="spec.http[0].retries.attempts"),
    Case("replicas-beyond-int32", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
         "  replicas: 4294967296\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n"
         "    spec: {containers: [{name: a, image: x}]}\n", "must be <= 2147483647", field="spec.replicas", line=5),
    Case("ring-size-beyond-envoy", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
         "spec:\n  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x, "
         "minimumRingSize: 100000000}\n", "at most 8388608",
         field="spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", line=8),
    Case("cluster-ip-not-an-ip", SVC_HEAD + "  clusterIP: 10.0.0.300\n  ports: [{port: 80}]\n",
         '"10.0.0.300" is not an IP address', field="spec.clusterIP", line=7),
    Case("affinity-timeout-negative", SVC_HEAD + "  sessionAffinity: ClientIP\n"
         "  sessionAffinityConfig: {clientIP: {timeoutSeconds: -1}}\n  ports: [{port: 80}]\n",
         "must be greater than 0 and at most 86400", field="spec.sessionAffinityConfig.clientIP.timeoutSeconds", line=8),
    Case("affinity-timeout-beyond-a-day", SVC_HEAD + "  sessionAffinity: ClientIP\n"
         "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n  ports: [{port: 80}]\n",
         "at most 86400", field="spec.sessionAffinityConfig.clientIP.timeoutSeconds", line=8),
    Case("service-port-istio-reserved", SVC_HEAD + "  ports: [{port: 15001, name: http}]\n",
         "port 15001 is reserved: outbound traffic capture", field="spec.ports[0].port", line=7),
    Case("container-port-lab-control", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
         "  - {name: a, image: x, ports: [{containerPort: 15999}]}\n", "the demo app's control port",
         field="spec.containers[0].ports[0].containerPort", line=6),
    Case("two-megabyte-name", "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + "n" * 2_000_000 + "}\n",
         "(2000000 characters) is not a valid name", field="metadata.name", line=3),
    Case("empty-string-is-not-the-current-folder", lambda tmp: "", "an empty string holds no manifest",
         in_file=False),
    Case("env-value-number", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n"
         "    env: [{name: PORT, value: 8080}]\n", 'quote it ("8080")', field="spec.containers[0].env[0].value",
         line=7),
]


def _run(case: Case, tmp_path: Path) -> tuple[ManifestError, Path | None]:
    if callable(case.content):
        target = case.content(tmp_path)
    else:
        target = tmp_path / f"{case.id}.yaml"
        if isinstance(case.content, bytes):
            target.write_bytes(case.content)
        else:
            target.write_text(case.content, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load(target)
    return info.value, target if isinstance(target, Path) else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_sentence(case: Case, tmp_path: Path) -> None:
    err, path = _run(case, tmp_path)
    matching = [p for p in err.problems if case.message in p.message]
    assert matching, f"no problem says {case.message!r}; got: {[str(p) for p in err.problems]}"
    problem = matching[0]
    if case.in_file:
        assert problem.file == str(path)
    if case.field is not None:
        assert problem.field == case.field
    if case.line is not None:
        assert problem.line == case.line
    for p in err.problems:
        text = str(p)
        assert "\n" not in text and "Traceback" not in text and len(text) < 600, text


def _load_report_with_peak(source: Any) -> tuple[LoadReport, int]:
    """load_report(source) and the peak of memory Python allocated meanwhile (tracemalloc)."""
    tracemalloc.start()
    try:
        report = load_report(source)
        return report, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_at_least_seventy_cases() -> None:
    assert len(CASES) >= 70


@pytest.mark.parametrize("make, refusal", [(_alias_bomb, "too many values"),
                                           (lambda: "x: " + "[" * 100_000, "nested too deeply"),
                                           (lambda: "- a\n" * 400_000, "too many values")],
                         ids=["alias-bomb", "deep-flow", "many-values"])
def test_hostile_documents_are_refused_without_large_memory(make: Callable[[], str], refusal: str) -> None:
    text = make()
    report, peak = _load_report_with_peak(text)
    assert not report.ok and not report.objects
    assert [p.message.split(":")[0] for p in report.problems] == [refusal]
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_a_50mb_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = _sparse_file(50 * 1024 * 1024)(tmp_path)
    report, peak = _load_report_with_peak(path)
    assert [p.message for p in report.problems][0].startswith("too large")
    assert peak < 4 * 1024 * 1024


def test_nothing_is_returned_when_one_object_is_bad(tmp_path: Path) -> None:
    good = "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n"
    bad = "apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad}\n"
    (tmp_path / "a.yaml").write_text(good)
    (tmp_path / "b.yaml").write_text(bad)
    with pytest.raises(ManifestError) as info:
        load(tmp_path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].file == str(tmp_path / "b.yaml")


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = VS_HEAD + "  http:\n  - route:\n    - destination: {subset: v1}\n      weight: x\n  tcpp: []\n"
    with pytest.raises(ManifestError) as info:
        load(text)
    fields = sorted(p.field or "" for p in info.value.problems)
    assert fields == ["spec.http[0].route[0].destination.host", "spec.http[0].route[0].weight", "spec.tcpp"]


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("apiVersion: v1\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: a file without permissions is still readable")
        report = load_report(path)
        assert "cannot read" in report.problems[0].message
    finally:
        path.chmod(0o644)


def test_a_50mb_string_is_refused_without_copying_it() -> None:
    text = "a" * (50 * 1024 * 1024)
    report, peak = _load_report_with_peak(text)
    assert report.problems[0].file == "<string>" and report.problems[0].message.startswith("too large")
    assert peak < 1024 * 1024
