"""`python -m fidelity.record`: record the states the chapters and the tests pass through.

Runs every chapter (as `make course` and tests/test_notebooks.py do) and the lab and translator
tests with `MESHLAB_RECORD` set, and writes `corpus/chapters.yaml` and `corpus/tests.yaml`.
Run it after changing a chapter or those tests (tests/test_notebooks.py says when a chapter's
states no longer match), then `python -m fidelity.routes --golden`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import corpus

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
#: The tests whose labs and states belong in the corpus (their states are real traffic scenarios).
TESTS = ["tests/test_scenarios.py", "tests/test_translate.py", "tests/test_lab_local.py", "tests/test_explain.py"]


def execute_chapter(path: Path, record_dir: Path, timeout: int = 600) -> None:
    """Run one chapter top to bottom in a fresh kernel with recording on."""
    import nbformat
    from nbclient import NotebookClient
    env_before = os.environ.get("MESHLAB_RECORD")
    os.environ["MESHLAB_RECORD"] = str(record_dir)
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    try:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("MESHLAB_RECORD", None)
        else:
            os.environ["MESHLAB_RECORD"] = env_before


def chapter_scenarios(path: Path, record_dir: Path) -> list[corpus.Scenario]:
    return corpus.recorded_scenarios(corpus.read_recording(record_dir), f"chapters/{path.stem}")


def record_chapters(only: list[str] | None = None) -> list[corpus.Scenario]:
    """Run the chapters (those whose file name starts with one of `only`, e.g. `05`) and return
    every chapter's states: the ones run freshly recorded, the others as the corpus holds them."""
    chosen = [p for p in CHAPTERS if not only or any(p.stem.startswith(o) for o in only)]
    if only and not chosen:
        raise SystemExit(f"no chapter in notebooks/ starts with {', '.join(only)}")
    kept = [s for s in corpus.scenarios("chapters", derived=False)
            if not any(s.name.startswith(f"chapters/{p.stem}-") for p in chosen)]
    out = []
    for path in chosen:
        with tempfile.TemporaryDirectory(prefix="meshlab-record-") as d:
            print(f"recording {path.name}", flush=True)
            execute_chapter(path, Path(d))
            out += chapter_scenarios(path, Path(d))
    return sorted(kept + out, key=lambda s: s.name)


def record_tests() -> list[corpus.Scenario]:
    out = []
    for test in TESTS:
        with tempfile.TemporaryDirectory(prefix="meshlab-record-") as d:
            print(f"recording {test}", flush=True)
            env = {**os.environ, "MESHLAB_RECORD": d}
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                           cwd=REPO, env=env, check=False)
            out += corpus.recorded_scenarios(corpus.read_recording(Path(d)), f"tests/{Path(test).stem}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fidelity.record", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="*", default=["chapters", "tests"], choices=["chapters", "tests"])
    ap.add_argument("--chapter", action="append", metavar="NN",
                    help="record only this chapter (its number or file name start; repeatable); "
                         "the other chapters' states are kept as they are")
    args = ap.parse_args(argv)
    if "chapters" in args.what:
        items = record_chapters(args.chapter)
        print(f"{corpus.save('chapters', items)}: {len(items)} states")
    if "tests" in args.what:
        items = record_tests()
        print(f"{corpus.save('tests', items)}: {len(items)} states")
    return 0


if __name__ == "__main__":
    sys.exit(main())
