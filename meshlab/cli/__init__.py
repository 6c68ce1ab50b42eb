"""The `meshlab` command: argument parsing and dispatch; the commands' bodies are in `commands.py`.

Exit statuses: 0 done (or clean), 65 bad input (EX_DATAERR, as `istioctl analyze` uses; for
`analyze` only input that cannot be read at all, and only when no finding is an Error; for
`explain-code` a code no table has), 79 an
Error finding (`analyze`, as istioctl: an object Istio's validation refuses is IST0106), 1 a cluster step failed or something is missing
(`up`, `down`, `status`, `doctor`), 70 meshlab itself failed (EX_SOFTWARE: a bug, said in one
paragraph; `MESHLAB_DEBUG=1` shows the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import MeshlabError

#: meshlab itself failed (sysexits.h EX_SOFTWARE).
EXIT_SOFTWARE = 70


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshlab", description="See Kubernetes and Istio traffic management with a real Envoy.")
    p.add_argument("--version", action="version", version=f"meshlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("validate", help="check manifests as the API server and Istio's webhook would (exit 65 on "
                       "any problem; an object given twice is a warning, the later one wins)")
    s.add_argument("paths", nargs="+", metavar="PATH")

    s = sub.add_parser("analyze", help="find misconfigurations as istioctl analyze does (its codes, levels and exit "
                       "statuses: 79 on an Error)")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--json", action="store_true", help="print a JSON array of findings")

    s = sub.add_parser("explain-code", help="print the page that explains an analysis code (MLB0003: meshlab's own; "
                       "an IST code: where Istio's page is); exit 65 for a code there is none of")
    s.add_argument("code", metavar="CODE")

    s = sub.add_parser("probe", help="bring up a local lab from manifests, send requests, summarise, tear down")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--url", required=True)
    s.add_argument("-n", type=int, default=100, help="number of requests (default 100)")
    s.add_argument("-c", "--concurrency", type=int, default=1)
    s.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    s.add_argument("--no-keepalive", action="store_true", help="a new connection per request")
    s.add_argument("--via", choices=["sidecar", "none", "gateway"], default="sidecar")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("envoy-config", help="show the Envoy config the lab builds, like istioctl proxy-config")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--proxy", choices=["sidecar", "gateway"], default="sidecar")
    s.add_argument("--json", action="store_true")

    sub.add_parser("up", help="create the kind cluster 'meshlab' with Istio (needs Docker)")
    sub.add_parser("down", help="delete the kind cluster meshlab created")
    sub.add_parser("status", help="show the kind cluster and Istio status")
    s = sub.add_parser("workshop-rbac", help="print one workshop attendee's Namespace and RBAC (YAML to kubectl apply)")
    s.add_argument("--namespace", required=True, help="the attendee's namespace")
    who = s.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the attendee's Kubernetes user name")
    who.add_argument("--group", help="a group the attendee's user is in")

    s = sub.add_parser("doctor", help="check what each backend needs and say what to install or change")
    s.add_argument("--context", help="check the cluster of this kube context (default: kind-meshlab, if it exists)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    from . import commands     # each command imports only what it needs (`validate` needs no pandas)

    try:
        return int(getattr(commands, args.command.replace("-", "_"))(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:               # a bug: one paragraph, the traceback only when asked for
        if os.environ.get("MESHLAB_DEBUG"):
            raise
        from ..errors import InternalError
        print(f"meshlab {args.command}: {e if isinstance(e, MeshlabError) else InternalError(args.command, e)}",
              file=sys.stderr)
        return EXIT_SOFTWARE


__all__ = ["main"]
