"""The bodies of the `meshlab` commands: each takes the parsed arguments, prints, returns the exit status.

Each imports what it needs when it runs, so `meshlab validate` starts without pandas or Envoy.
Cluster commands take `say` (where lines go: print, or a list in tests).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import Interrupted, ManifestError, MeshlabError, Problem, ProbeError

T = TypeVar("T")
Say = Callable[[str], None]

#: Bad input: EX_DATAERR, as `istioctl analyze` uses.
EXIT_INVALID = 65
#: `analyze` found an Error-level problem (istioctl's exit status for it).
EXIT_ERROR_FINDING = 79
EXIT_INTERRUPTED = 130


def _print(line: str) -> None:
    print(line, flush=True)


def _missing(paths: list[str]) -> list[str]:
    """Paths that name nothing — an empty one included: `Path("")` would read the current folder."""
    return [p for p in paths if not p.strip() or not Path(p).exists()]


# ------------------------------------------------------------------------------------ manifests

def validate(args: Any) -> int:
    """`meshlab validate PATH...`: print every problem (exit 65) or a summary (exit 0)."""
    from ..manifests import load_report

    report = load_report([Path(p) if p.strip() else "" for p in args.paths])
    for note in report.notes:
        print(f"note: {note}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.problems:
        for problem in report.problems:
            print(f"error: {problem}")
        n = len(report.problems)
        print(f"{n} {'problem' if n == 1 else 'problems'} found; nothing would be applied")
        return EXIT_INVALID
    print(f"valid: {report.summary()} in {len(report.files)} {'file' if len(report.files) == 1 else 'files'}")
    return 0


def analyze(args: Any) -> int:
    """`meshlab analyze [--json] PATH...`, exiting as `istioctl analyze` does (istioctl/cmd/sysexits.go):
    79 when a finding is at Error level, else 65 when some input could not be read, else 0.

    An object Istio's validation refuses gets IST0106 and the rest is analyzed; what cannot be read
    at all (YAML, types, the API server's rules, a missing path) is printed on stderr and left out,
    and everything else is still analyzed."""
    from ..analysis import analyze as run_analyzers, format_findings
    from ..manifests import load_report

    paths = list(args.paths)
    missing = _missing(paths)
    report = load_report([Path(p) for p in paths if p not in missing])
    unreadable = [*(Problem("no such file or directory", file=p) for p in missing), *report.unparsed]
    if unreadable:
        print("Error(s) adding files; what they hold was not analyzed:", file=sys.stderr)
        for problem in unreadable:
            print(f"  - {problem}", file=sys.stderr)
    for warning in report.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    findings = run_analyzers(report)
    if getattr(args, "json", False):
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    elif findings:
        print(format_findings(findings))
    elif not unreadable:
        print("\u2714 No validation issues found when analyzing " + ", ".join(paths) + ".", file=sys.stderr)
    if any(f.level == "Error" for f in findings):
        return EXIT_ERROR_FINDING
    return EXIT_INVALID if unreadable else 0


def explain_code(args: Any) -> int:
    """`meshlab explain-code CODE`: the page of an analysis code (meshlab's MLB pages in full; for
    an IST code its name, level, message and istio.io page); 65 for a code no table has."""
    from ..analysis import page
    from ..errors import UnknownCode

    try:
        print(page(args.code), end="")
    except UnknownCode as e:
        return _fail(str(e))
    return 0


# ------------------------------------------------------------------------------ one-shot local labs

def _fail(msg: str) -> int:
    print(f"meshlab: {msg}", file=sys.stderr)
    return EXIT_INVALID


def _load_paths(paths: list[str]) -> list[Any] | str:
    """The manifests, or the message to exit with (65) when they cannot be read."""
    from ..manifests import load

    if _missing(paths):
        return f"no such file or directory: {', '.join(repr(p) for p in _missing(paths))}"
    try:
        return load([Path(p) for p in paths])
    except ManifestError as e:
        return str(e)


def _with_lab(objs: list[Any], use: Callable[[Any], T]) -> T:
    """Bring up a local lab holding `objs`, return `use(lab)`, tear the lab down (translation
    warnings are printed as notes by the caller, not as Python warnings)."""
    from ..lab import Lab

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Lab(backend="local") as lab:
            lab.apply(objs)
            return use(lab)


def _summary(df: Any) -> dict[str, Any]:
    def counts(col: str) -> dict[str, int]:
        vals = df[col].astype(str)
        vals = vals[vals != ""]
        return {str(k): int(v) for k, v in vals.value_counts().sort_index().items()}
    return {"requests": int(len(df)), "codes": counts("status"), "flags": counts("flags"),
            "errors": counts("error"), "versions": counts("version"), "pods": counts("pod"),
            "subsets": counts("subset"), "clusters": counts("cluster")}


def probe(args: Any) -> int:
    """`meshlab probe PATH... --url URL`: bring up a lab, send requests, summarise, tear down."""
    from ..probe import check_args, parse_header, parse_url

    try:
        headers = dict(parse_header(h) for h in args.header)
        parse_url(args.url)         # argument mistakes are reported before a lab is started
        check_args(n=args.n, concurrency=args.concurrency, headers=headers)
    except ProbeError as e:
        return _fail(str(e))
    objs = _load_paths(args.paths)
    if isinstance(objs, str):
        return _fail(objs)
    try:
        df, notes = _with_lab(objs, lambda lab: (
            lab.probe(args.url, n=args.n, concurrency=args.concurrency, keepalive=not args.no_keepalive,
                      headers=headers, via=args.via),
            list(lab.warnings)))
    except MeshlabError as e:
        return _fail(str(e))
    s = _summary(df)
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"{s['requests']} requests to {args.url} via {args.via}")
    for title, key in (("status", "codes"), ("Envoy flags", "flags"), ("client errors", "errors"),
                       ("versions", "versions"), ("pods", "pods"), ("subsets", "subsets"),
                       ("clusters", "clusters")):
        if s[key]:
            print(f"  {title}:")
            for k, v in s[key].items():
                print(f"    {k:<60} {v:>6}  ({100.0 * v / max(1, s['requests']):.0f}%)")
    for n in notes:
        print(f"  note: {n}")
    return 0


def envoy_config(args: Any) -> int:
    """`meshlab envoy-config PATH... [--proxy sidecar|gateway] [--json]`: like istioctl proxy-config."""
    objs = _load_paths(args.paths)
    if isinstance(objs, str):
        return _fail(objs)
    try:
        view = _with_lab(objs, lambda lab: lab.envoy_config(args.proxy))
    except MeshlabError as e:
        return _fail(str(e))
    if args.json:
        print(json.dumps(view, indent=1, default=str))
        return 0
    print(_format_view(view))
    return 0


def _format_view(view: dict[str, Any]) -> str:
    """A text rendering close to `istioctl proxy-config` tables."""
    out: list[str] = []
    for section in ("listeners", "routes", "clusters", "endpoints"):
        items = view.get(section)
        if not items:
            continue
        out.append(section.upper())
        if isinstance(items, list) and items and isinstance(items[0], dict):
            keys = list(items[0].keys())
            keys = [k for k in keys if not isinstance(items[0][k], (dict, list))][:6]
            widths = {k: max(len(k), *(len(str(i.get(k, ""))) for i in items)) for k in keys}
            out.append("  ".join(k.upper().ljust(widths[k]) for k in keys))
            for i in items:
                out.append("  ".join(str(i.get(k, "")).ljust(widths[k]) for k in keys))
        else:
            out.append(json.dumps(items, indent=1, default=str))
        out.append("")
    return "\n".join(out) if out else json.dumps(view, indent=1, default=str)


# ------------------------------------------------------------------------------------- the cluster

def doctor(args: Any = None, say: Say = _print) -> int:
    """`meshlab doctor [--context C]`: first whether the backend this learner uses is ready (local
    unless MESHLAB_BACKEND says otherwise), with its checks; then the other backend, marked
    optional. `--context` checks that cluster's Kubernetes version instead of the course cluster's.
    Exit status 0 only when both are ready."""
    from .. import cluster

    context = getattr(args, "context", None)
    checks = cluster.doctor(context=context) if context else cluster.doctor()
    using = "kind" if os.environ.get("MESHLAB_BACKEND", "local") in ("kind", "cluster") else "local"
    about = {"local": "Envoy and the pods run on this machine, no cluster needed",
             "kind": "a real Kubernetes cluster in Docker with real Istio, started by `meshlab up`"}
    missing: dict[str, list[str]] = {}
    for backend in (using, *(b for b in ("local", "kind") if b != using)):
        mine = [c for c in checks if c.needed_by == backend]
        missing[backend] = [c.name for c in mine if not c.ok]
        state = f"needs {', '.join(missing[backend])}" if missing[backend] else "ready"
        if backend == using:
            say(f"{backend} backend: {state} — what `Lab()` uses here ({about[backend]})")
        else:
            say(f"{backend} backend: {state}" + (" (run `meshlab up`)" if backend == "kind" and not missing[backend] else "")
                + f" — optional, not needed for the {using} backend ({about[backend]})")
        for c in mine:
            say("  " + c.line())
    return 0 if not missing["local"] and not missing["kind"] else 1


def up(args: Any = None, say: Say = _print) -> int:
    """`meshlab up`: create (or finish) the course cluster; exit 1 with the reason, 130 interrupted."""
    from .. import cluster

    config = getattr(args, "config", None)
    try:
        cluster.up(config=Path(config) if config else None, say=say)
    except (Interrupted, KeyboardInterrupt):
        say("interrupted; the step that was running was stopped. Run `meshlab up` again to carry on "
            "(finished steps are skipped), or `meshlab down` to remove the cluster.")
        return EXIT_INTERRUPTED
    except (MeshlabError, TimeoutError) as e:
        say(f"meshlab up: {e}")
        return 1
    return 0


def down(args: Any = None, say: Say = _print) -> int:
    """`meshlab down`: delete the cluster meshlab created (and nothing else)."""
    from .. import cluster

    try:
        cluster.down(say)
    except (Interrupted, KeyboardInterrupt):
        say("interrupted; run `meshlab down` again to finish")
        return EXIT_INTERRUPTED
    except MeshlabError as e:
        say(f"meshlab down: {e}")
        return 1
    return 0


def status(args: Any = None, say: Say = _print) -> int:
    """`meshlab status`: the cluster, its nodes, Istio, the gateway, meshlab's pods."""
    from .. import cluster

    try:
        st = cluster.status()
    except MeshlabError as e:
        say(f"meshlab status: {e}")
        return 1
    return print_status(st, say)


def print_status(st: dict[str, Any], say: Say = _print) -> int:
    """`meshlab status`'s lines for `cluster.status()`'s answer; 0 when Istio and the gateway are up."""
    from .. import cluster

    name, pinned = cluster.CLUSTER_NAME, cluster.ISTIO_VERSION
    if not st["exists"]:
        say(f"kind cluster {name!r}: not created (run `meshlab up`)")
        return 1
    say(f"kind cluster {name!r}: exists (context {st['context']}"
        + (", created by meshlab)" if st["created_by_meshlab"] else ", NOT created by meshlab)"))
    for node, ready in st["nodes"].items():
        say(f"  node {node}: {'Ready' if ready else 'not ready'}")
    say(f"  Kubernetes: {st['kubernetes']}")
    say(f"  Istio: {st['istio'] or 'not installed'}" + ("" if st["istio"] in (None, pinned) else f" (course pins {pinned})"))
    say(f"  ingress gateway: {'ready at ' + st['gateway_url'] if st['gateway_ready'] else 'not ready'}")
    say(f"  meshlab pods: {st['meshlab_pods']}")
    return 0 if st["istio"] and st["gateway_ready"] else 1


def workshop_rbac(args: Any, say: Say = _print) -> int:
    """`meshlab workshop-rbac --namespace NS (--user U | --group G)`: the attendee's Namespace and
    RBAC as YAML, for the organiser to `kubectl apply -f -` (backends/kind/workshop.py says why)."""
    import yaml

    from ..backends.kind.workshop import attendee_manifests

    try:
        docs = attendee_manifests(args.namespace, user=args.user, group=args.group)
    except ValueError as e:
        return _fail(f"workshop-rbac: {e}")
    say(f"# meshlab {args.namespace}: Lab(backend=\"cluster\", context=…, namespace=\"{args.namespace}\")")
    say(yaml.safe_dump_all(docs, sort_keys=False).rstrip("\n"))
    return 0
