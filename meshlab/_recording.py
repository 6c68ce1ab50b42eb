"""Recording the states a lab passes through, for the fidelity corpus (`fidelity/`).

With `MESHLAB_RECORD=<directory>` in the environment, every change of a `ClusterState` (apply,
delete, a pod's readiness) and every probe of a local lab appends one JSON line to
`<directory>/<pid>.jsonl`: the objects as applied, grouped by the apply that created them, the
pods that are not ready, and the calls a probe made. `fidelity/corpus.py` turns the lines into
scenarios that the oracle (Istio's own code) and the lab's real Envoy both answer, so every state
a chapter or a test shows is checked against Istio. Without the variable nothing is written and
nothing is computed.

Standard library only; the floor of `names` (everything may import it).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

ENV = "MESHLAB_RECORD"
_lock = threading.Lock()


def active() -> bool:
    return bool(os.environ.get(ENV))


def write(event: dict[str, Any]) -> None:
    """Append one event (a JSON object) to this process's recording, if recording is on."""
    where = os.environ.get(ENV)
    if not where:
        return
    d = Path(where)
    d.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event, sort_keys=True, default=str)
    with _lock, open(d / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def state_changed(state: Any) -> None:
    """A ClusterState changed: record what a replay needs (`ClusterState.recording`). Only states
    that give pods addresses count (a lab's, a translator test's): analyze's snapshots of a lab's
    objects run nothing and would only repeat a state."""
    if active() and getattr(state, "_pod_ip", None) is not None:
        write({"event": "state", "state": id(state), **state.recording()})


def probed(state: Any, call: dict[str, Any]) -> None:
    """A probe ran against the lab holding `state`: record its call (url, via, namespace, headers)."""
    if active():
        write({"event": "probe", "state": id(state), **call})
