"""The `meshlab` command: argument parsing only; each subcommand lives with the idea it serves."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# subcommand -> "module:function"; the function takes the parsed args and returns the exit status.
_HANDLERS = {
    "validate": "meshlab.manifests:cli_validate",
    "analyze": "meshlab.analysis:cli_analyze",
    "probe": "meshlab.backends.local:cli_probe",
    "envoy-config": "meshlab.backends.local:cli_envoy_config",
    "up": "meshlab.cluster:cli_up",
    "down": "meshlab.cluster:cli_down",
    "status": "meshlab.cluster:cli_status",
    "doctor": "meshlab.cluster:cli_doctor",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshlab", description="See Kubernetes and Istio traffic management with a real Envoy.")
    p.add_argument("--version", action="version", version=f"meshlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("validate", help="check manifests as the API server would (exit 65 on any problem)")
    s.add_argument("paths", nargs="+", metavar="PATH")

    s = sub.add_parser("analyze", help="find misconfigurations, with istioctl analyze codes")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--json", action="store_true", help="print a JSON array of findings")

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

    s = sub.add_parser("up", help="create the kind cluster 'meshlab' with Istio (needs Docker)")
    s = sub.add_parser("down", help="delete the kind cluster meshlab created")
    s = sub.add_parser("status", help="show the kind cluster and Istio status")
    s = sub.add_parser("doctor", help="check what each backend needs and say what to install")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    module, func = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module), func)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
