"""Prepare a learner's JupyterLab for the course: a working copy of the chapters, and the course's
JupyterLab settings. `make lab` and Binder's `postBuild` run it; standard library only.

    python course/prepare.py [--course notebooks] [--into my-notebooks]

1. **A working copy.** JupyterLab autosaves every open notebook, outputs included: one run of a
   chapter rewrites thousands of lines of the file. Learners therefore work in a copy
   (`my-notebooks/`, ignored by git), and the repository's `notebooks/` stay clean, so a
   workshop's `git pull` never meets a conflict. Run again (every `make lab` does), the copy
   follows the course without ever losing a learner's work:
   - a file the course added → copied in;
   - a file the course changed that the learner has not edited (for a notebook: the same cell
     sources; outputs do not count) → replaced by the course's new version;
   - a file both changed → the learner's is kept, and this script says how to get the new one.
   What the course held at copy time is recorded in `<copy>/.course-copy.json`.
2. **The course's JupyterLab settings** (`course/jupyterlab/overrides.json`: no "get notified
   about news?" pop-up on first launch) are merged into this Python environment's
   `<prefix>/share/jupyter/lab/settings/overrides.json`, the file JupyterLab reads an
   environment's default settings from (jupyterlab_server `_get_overrides`); a learner's own
   settings still win over them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = ".course-copy.json"


def fingerprint(path: Path) -> str:
    """What counts as 'the same file': a notebook's cell types and sources (outputs, execution
    counts and metadata are what autosave changes); any other file's bytes."""
    data = path.read_bytes()
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(data)["cells"]
            data = json.dumps([(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list)
                                else c["source"]) for c in cells]).encode()
        except (ValueError, KeyError, TypeError):
            pass   # not a readable notebook: compare its bytes
    return hashlib.sha256(data).hexdigest()


def _course_files(course: Path) -> list[Path]:
    return sorted(p.relative_to(course) for p in course.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(course).parts))


def working_copy(course: Path, into: Path, say=print) -> dict[str, list[str]]:
    """Bring `into` up to date with `course` (see the module docstring). Returns what happened:
    {"copied": [...], "updated": [...], "kept": [...]} as relative paths."""
    if not course.is_dir():
        raise SystemExit(f"{course}: no such folder of chapters")
    into.mkdir(parents=True, exist_ok=True)
    record_path = into / RECORD
    try:
        record: dict[str, str] = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    done: dict[str, list[str]] = {"copied": [], "updated": [], "kept": []}
    for rel in _course_files(course):
        src, dst, key = course / rel, into / rel, rel.as_posix()
        now = fingerprint(src)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            record[key] = now
            done["copied"].append(key)
        elif record.get(key) != now:                    # the course changed it since the copy
            if fingerprint(dst) in (record.get(key), now):   # ...and the learner did not
                shutil.copy2(src, dst)
                record[key] = now
                done["updated"].append(key)
            else:
                done["kept"].append(key)
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if done["copied"] or done["updated"]:
        say(f"course copy in {into}/: {len(done['copied'])} new, {len(done['updated'])} updated "
            "from the course")
    for key in done["kept"]:
        say(f"kept your edited {into / key}; the course has a newer version in {course / key} "
            f"(rename yours, then run this again to get it)")
    return done


def install_settings(overrides: Path = HERE / "jupyterlab" / "overrides.json",
                     prefix: Path = Path(sys.prefix)) -> Path:
    """Merge the course's JupyterLab setting defaults into `<prefix>`'s overrides.json."""
    target = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    ours = json.loads(overrides.read_text())
    try:
        merged = json.loads(target.read_text())
    except (OSError, ValueError):
        merged = {}
    for plugin, values in ours.items():
        merged.setdefault(plugin, {}).update(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--course", type=Path, default=Path("notebooks"), help="the course's chapters (default notebooks)")
    ap.add_argument("--into", type=Path, default=Path("my-notebooks"), help="the working copy (default my-notebooks)")
    ap.add_argument("--no-settings", action="store_true", help="leave JupyterLab's settings alone")
    args = ap.parse_args(argv)
    working_copy(args.course, args.into)
    if not args.no_settings:
        install_settings()
    return 0


if __name__ == "__main__":
    sys.exit(main())
