"""The agreement figure of `meshlab validate` with the real API server (tests/_differential.py).

Run: .venv/bin/python bench/validate_vs_apiserver.py [--list]
Starts the test API server (tests/_apiserver.py; `make apiserver` first), runs every input of the
corpus through both, prints `validate vs apiserver: A/N agree; …` and, with --list, every
difference with its documentation (the webhook rule and its source, or meshlab's own reason).
Needs ../shared/reference (Istio's CRDs and samples, the mutants' base documents).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _apiserver import start  # noqa: E402
from _differential import corpus, disagreements, report_line  # noqa: E402

REFERENCE = Path(os.environ.get("MESHLAB_REFERENCE") or REPO.parent / "shared" / "reference")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true", help="list every difference with its documentation")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        with start(Path(tmp) / "server") as server:
            cases = corpus(server, REFERENCE, Path(tmp) / "cases")
    kinds = collections.Counter(c.id.split(":")[0] for c in cases)
    print(f"corpus: {kinds['table']} hostile inputs, {kinds['mutant']} mutants, {kinds['manifest']} repository "
          f"manifests ({time.monotonic() - t0:.0f} s with the server's start)")
    print(report_line(cases))
    if args.list:
        by_reason: dict[str, list[str]] = collections.defaultdict(list)
        for case, why in disagreements(cases):
            by_reason[why or "UNEXPLAINED"].append(case.id)
        for why, ids in sorted(by_reason.items()):
            print(f"- {why} ({len(ids)}): {', '.join(ids[:4])}{' …' if len(ids) > 4 else ''}")


if __name__ == "__main__":
    main()
