"""`python -m fidelity.summary DIR`: the one line `make fidelity` ends with.

Each part of the runner writes `DIR/<part>.json` with `agree`, `calls`, `scenarios` and
`unmodelled`: `routes` counts calls, `analyze` counts inputs (one `meshlab analyze` run against
Istio's analyzers each). This prints `analyze: A/N inputs agree`, then the calls of every other
part as the last line: `fidelity: A/N calls agree over K scenarios (U unmodelled)`. Exit status 1
when a call or an input disagrees (unmodelled calls are not disagreements, nor agreements).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    d = Path(args[0] if args else "build/fidelity")
    parts = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]
    if not parts:
        print(f"fidelity: no results in {d} (did a part fail to start?)")
        return 1
    inputs = [p for p in parts if p.get("part") == "analyze"]
    parts = [p for p in parts if p.get("part") != "analyze"]
    total = {k: sum(p.get(k, 0) for p in parts) for k in ("agree", "calls", "scenarios", "unmodelled")}
    for p in parts:
        print(f"  {p.get('part', '?')}: {p['agree']}/{p['calls']} calls agree over {p['scenarios']} scenarios "
              f"({p['unmodelled']} unmodelled) in {p.get('seconds', '?')}s")
    for p in inputs:
        print(f"analyze: {p['agree']}/{p['calls']} inputs agree")
    print(f"fidelity: {total['agree']}/{total['calls']} calls agree over {total['scenarios']} scenarios "
          f"({total['unmodelled']} unmodelled)")
    every_input = all(p["agree"] == p["calls"] for p in inputs)
    return 0 if total["agree"] + total["unmodelled"] == total["calls"] and every_input else 1


if __name__ == "__main__":
    sys.exit(main())
