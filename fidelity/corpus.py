"""The corpus: every scenario both sides answer, by group.

- `chapters`: every state the chapters pass through, recorded while they run
  (`MESHLAB_RECORD`, `meshlab._recording`) with the probes they make; `corpus/chapters.yaml`.
  `tests/test_notebooks.py` records them again on every run and fails when they changed.
- `tests`: the states of the lab and translator tests (`tests/test_scenarios.py`, …),
  recorded the same way; `corpus/tests.yaml`.
- `samples`: Istio's samples in ../shared/reference/istio-samples (read where they are, never
  copied): Bookinfo with each of its networking files, helloworld, httpbin.
- `generated`: scenarios composed by a seeded hypothesis generator (`fidelity/generate.py`);
  `corpus/generated.yaml`.
- `extra`: hand-written scenarios for known divergences (`corpus/extra.yaml`); other engineers add
  theirs here or in a file of their own (`corpus/<group>.yaml`).

Every scenario gets the calls `fidelity.calls.derive` builds for its state besides its own.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import yaml

from .calls import derive
from .scenario import Call, Scenario, build_state, read_scenarios, write_scenarios

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
#: Istio's samples beside the checkout (MESHLAB_REFERENCE names another place, as for the tests).
REFERENCE = Path(os.environ.get("MESHLAB_REFERENCE") or HERE.parent.parent / "shared" / "reference") / "istio-samples"
#: Scenarios of the generated group that `make test` runs on the lab (all run in `make fidelity`).
TEST_GENERATED = 60


def recorded_scenarios(events: Iterable[dict[str, Any]], prefix: str) -> list[Scenario]:
    """Scenarios from recorded events (`meshlab._recording`): one per distinct state a lab or a
    ClusterState passed through, holding the probes made while it held that state."""
    order: list[tuple[str, str]] = []          # (state key, content key)
    content: dict[str, dict[str, Any]] = {}
    probes: dict[str, list[Call]] = defaultdict(list)
    current: dict[Any, str] = {}
    for ev in events:
        sid = (ev.get("file"), ev["state"])
        if ev["event"] == "state":
            snap = {"applies": ev["applies"], "notReady": sorted(set(ev.get("notReady", [])) | set(ev.get("failed", [])))}
            if not any(snap["applies"]):
                continue
            key = json.dumps(snap, sort_keys=True)
            content.setdefault(key, snap)
            if current.get(sid) != key:
                current[sid] = key
                order.append((str(sid), key))
        elif ev["event"] == "probe" and sid in current and ev.get("via") in ("sidecar", "gateway"):
            c = Call(url=ev["url"], via=ev["via"], namespace=ev.get("namespace", "default"),
                     headers=tuple(sorted((ev.get("headers") or {}).items())))
            if c not in probes[current[sid]]:
                probes[current[sid]].append(c)
    out, seen = [], set()
    for _, key in order:
        if key in seen:
            continue
        seen.add(key)
        snap = content[key]
        out.append(Scenario(f"{prefix}-{len(out) + 1:03d}", snap["applies"], probes.get(key, []),
                            snap["notReady"]))
    return out


def read_recording(directory: Path) -> list[dict[str, Any]]:
    events = []
    for f in sorted(directory.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                ev = json.loads(line)
                ev["file"] = f.name
                events.append(ev)
    return events


def with_derived_calls(s: Scenario) -> Scenario:
    """The scenario with `derive`'s calls after its own."""
    try:
        st = build_state(s)
    except Exception:
        return s
    calls = list(s.calls)
    for c in derive(st):
        if c not in calls:
            calls.append(c)
    return Scenario(s.name, s.applies, calls, s.not_ready, s.note)


# ----------------------------------------------------------------------------------- Istio samples

def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REFERENCE / name).read_text()) if isinstance(d, dict)]


def _sample_objects(name: str) -> list[dict[str, Any]]:
    """A sample's objects, in namespace default (what `kubectl apply -f` without -n does)."""
    return [d for d in _docs(name)]


def sample_scenarios() -> list[Scenario]:
    """Bookinfo (with `bookinfo-versions`) plus each networking file of Bookinfo; helloworld,
    httpbin, sleep and curl on their own. Files that need what no lab has (mTLS certificates,
    egress to the internet, VMs) are still run: what meshlab does not model must be named."""
    if not REFERENCE.is_dir():
        return []
    files = sorted(p.name for p in REFERENCE.glob("*.yaml"))
    base = [n for n in ("bookinfo__platform__kube__bookinfo.yaml", "bookinfo__platform__kube__bookinfo-versions.yaml")
            if n in files]
    out = []
    platform = [o for n in base for o in _sample_objects(n)]
    drs = [f for f in files if f.startswith("bookinfo__networking__destination-rule-all.yaml")]
    for f in files:
        if f.startswith("bookinfo__networking__"):
            stem = f.removeprefix("bookinfo__networking__").removesuffix(".yaml")
            steps = [platform]
            if f not in drs and "virtual-service" in f:
                steps.append([o for d in drs for o in _sample_objects(d)])
            steps.append(_sample_objects(f))
            out.append(Scenario(f"samples/bookinfo-{stem}", steps))
        elif not f.startswith("bookinfo__"):
            out.append(Scenario(f"samples/{f.removesuffix('.yaml').replace('__', '-')}", [_sample_objects(f)]))
    out.append(Scenario("samples/bookinfo", [platform]))
    return out


# ------------------------------------------------------------------------------------------ groups

def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def scenarios(which: str = "all", *, derived: bool = True) -> list[Scenario]:
    """The scenarios of `which`: `all`, `test` (what `make test` runs on the lab), or a group name."""
    found: list[Scenario] = []
    for f in corpus_files():
        group = f.stem
        if which not in ("all", "test", group):
            continue
        items = read_scenarios(f)
        if which == "test" and group == "generated":
            items = items[:TEST_GENERATED]
        found += items
    if which in ("all", "test", "samples"):
        found += sample_scenarios()
    return [with_derived_calls(s) for s in found] if derived else found


def chapters_without_states(notebooks: Path | None = None) -> list[str]:
    """The chapters (`notebooks/NN-*.ipynb` file stems) of which the corpus holds no state."""
    notebooks = notebooks or CORPUS.parent.parent / "notebooks"
    held = {s.name.rsplit("-", 1)[0].removeprefix("chapters/") for s in scenarios("chapters", derived=False)}
    return [p.stem for p in sorted(notebooks.glob("[0-9][0-9]-*.ipynb")) if p.stem not in held]


def record_command(chapter: str) -> str:
    """What a chapter's author runs to put its states in the corpus, and their goldens."""
    return (f".venv/bin/python -m fidelity.record chapters --chapter {chapter[:2]} && make fidelity-golden; "
            "then commit fidelity/corpus/chapters.yaml and fidelity/golden/")


def save(group: str, items: list[Scenario]) -> Path:
    path = CORPUS / f"{group}.yaml"
    write_scenarios(path, items)
    return path
