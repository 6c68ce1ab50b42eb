"""`python -m fidelity.summary DIR`: the one line `make fidelity` ends with.

Each part of the runner (`routes`, later `analyze`) writes `DIR/<part>.json` with `agree`,
`calls`, `scenarios` and `unmodelled`; this prints one line per part, then the sum as the last
line: `fidelity: A/N calls agree over K scenarios (U unmodelled)`. Exit status 1 when any call
disagrees (unmodelled calls are not disagreements, and not agreements either).
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
    total = {k: sum(p.get(k, 0) for p in parts) for k in ("agree", "calls", "scenarios", "unmodelled")}
    for p in parts:
        print(f"  {p.get('part', '?')}: {p['agree']}/{p['calls']} calls agree over {p['scenarios']} scenarios "
              f"({p['unmodelled']} unmodelled) in {p.get('seconds', '?')}s")
    print(f"fidelity: {total['agree']}/{total['calls']} calls agree over {total['scenarios']} scenarios "
          f"({total['unmodelled']} unmodelled)")
    return 0 if total["agree"] + total["unmodelled"] == total["calls"] else 1


if __name__ == "__main__":
    sys.exit(main())
