"""How long `meshlab.load` takes on real and hostile input, beside plain PyYAML parsing.

Run: .venv/bin/python bench/manifests.py [--rounds 7]
Prints medians (ms) and the ratio to `yaml.load_all(CSafeLoader)` where that baseline can run at all
(it cannot for the hostile inputs: it has no limits, which is the point of meshlab's reader).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import yaml

from meshlab.manifests import load_report

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join("  " + x for x in lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    rounds = ap.parse_args().rounds
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows: list[tuple[str, float, float | None]] = []

    samples = sorted((REFERENCE / "istio-samples").glob("*.yaml"))
    if samples:
        texts = [p.read_text() for p in samples]
        rows.append((f"{len(samples)} Istio sample files, one load each",
                     _median_ms(lambda: [load_report(p) for p in samples], rounds),
                     _median_ms(lambda: [list(yaml.load_all(t, Loader=loader)) for t in texts], rounds)))
        crd = REFERENCE / "istio-crd-all.gen.yaml"
        crd_text = crd.read_text()
        rows.append((f"Istio CRDs ({crd.stat().st_size // 1024} KiB, 15 unmodelled objects)",
                     _median_ms(lambda: load_report(crd), rounds),
                     _median_ms(lambda: list(yaml.load_all(crd_text, Loader=loader)), rounds)))

    with tempfile.TemporaryDirectory() as tmp:
        huge = Path(tmp) / "huge.yaml"
        with huge.open("wb") as f:
            f.truncate(50 * 1024 * 1024)
        rows.append(("50 MB file (refused by size)", _median_ms(lambda: load_report(huge), rounds), None))
    bomb, wide, deep = _bomb(), "- a\n" * 400_000, "x: " + "[" * 100_000
    rows.append(("alias bomb, 10^9 expanded (refused)", _median_ms(lambda: load_report(bomb), rounds), None))
    rows.append(("400k-item list, 1.6 MB (refused at 100k values)", _median_ms(lambda: load_report(wide), rounds),
                 None))
    rows.append(("100k nested '[' (refused)", _median_ms(lambda: load_report(deep), rounds), None))

    print(f"{'input':52} {'meshlab ms':>11} {'PyYAML ms':>10} {'ratio':>6}")
    for name, ours, base in rows:
        ratio = f"{ours / base:5.1f}x" if base else "   -"
        print(f"{name:52} {ours:11.1f} {base if base is not None else float('nan'):10.1f} {ratio:>6}")


if __name__ == "__main__":
    main()
