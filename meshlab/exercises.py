"""Auto-checked exercises: the learner writes an answer in a cell, `meshlab.check` says right or
wrong and, when wrong, gives a hint instead of the answer.

Why the answers live here and not in the notebooks: a learner scrolling down should not read the
solution (nbgrader hides it the same way). Several answers are not constants but facts of the
learner's own lab — "how many pods answered on one keep-alive connection?" is judged against
the probe the learner just ran, passed in as keyword data — so the check teaches "look at what
you measured", not "remember what the course said".

An unanswered exercise (`None` or `...`) is not an error: the notebook must run top to bottom
unattended, so `check` then just shows the question and the hint.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .names import cluster_name, fqdn

__all__ = ["Exercise", "Verdict", "EXERCISES", "check", "exercise"]


@dataclass(frozen=True)
class Verdict:
    """The result of one check: `ok` is True (right), False (wrong) or None (not answered yet)."""

    exercise: str
    ok: bool | None
    message: str

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __repr__(self) -> str:
        mark = {True: "✅ Right", False: "❌ Not yet", None: "✏️ Your turn"}[self.ok]
        return f"{mark} [{self.exercise}] {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: "#e6f4ea;border-color:#2ca02c", False: "#fdecea;border-color:#d62728",
                  None: "#f3f3f3;border-color:#999"}[self.ok]
        mark = {True: "✅ Right", False: "❌ Not yet", None: "✏️ Your turn"}[self.ok]
        return (f'<div class="meshlab-verdict" data-ok="{self.ok}" style="background:{colour};'
                f'border-left:4px solid;padding:6px 10px;margin:4px 0">'
                f"<b>{mark}</b> <small>({html.escape(self.exercise)})</small><br>"
                f"{_code_spans(html.escape(self.message))}</div>")


def _code_spans(text: str) -> str:
    """`like this` → <code>like this</code> (messages are written in the notebooks' Markdown)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


@dataclass(frozen=True)
class Exercise:
    """One question with its checker.

    `judge(answer, data)` returns True/False, or raises `ValueError` with a message when the
    answer has the wrong shape (that message is shown instead of the hint). `solution(data)`
    is only used by tests and by the explanation shown after a right answer.
    """

    id: str
    question: str
    hint: str
    explanation: str
    judge: Callable[[Any, Mapping[str, Any]], bool]
    needs: tuple[str, ...] = field(default_factory=tuple)

    def check(self, answer: Any, **data: Any) -> Verdict:
        if answer is None or answer is Ellipsis:
            return Verdict(self.id, None, f"{self.question} Hint: {self.hint}")
        missing = [k for k in self.needs if k not in data]
        if missing:
            raise TypeError(f"check({self.id!r}, ...) needs {', '.join(f'{m}=' for m in missing)} "
                            f"(the data your answer is judged against)")
        try:
            ok = bool(self.judge(answer, data))
        except ValueError as e:
            return Verdict(self.id, False, str(e))
        return Verdict(self.id, ok, self.explanation if ok else f"Hint: {self.hint}")


EXERCISES: dict[str, Exercise] = {}


def exercise(ex: Exercise) -> Exercise:
    """Register an exercise (ids are unique)."""
    if ex.id in EXERCISES:
        raise ValueError(f"exercise {ex.id!r} is registered twice")
    EXERCISES[ex.id] = ex
    return ex


def check(exercise_id: str, answer: Any, **data: Any) -> Verdict:
    """Check `answer` for the exercise `exercise_id`; shows right / not yet + a hint in a notebook."""
    try:
        ex = EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}") from None
    return ex.check(answer, **data)


# ------------------------------------------------------------------------------------ answer helpers

def _word(answer: Any) -> str:
    if not isinstance(answer, str):
        raise ValueError(f"Answer with a word in quotes, e.g. \"...\"; you gave {answer!r}.")
    return re.sub(r"[\s_\-]+", " ", answer.strip().lower())


def _number(answer: Any) -> float:
    if isinstance(answer, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", answer):   # "1" means 1
        return float(answer)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise ValueError(f"Answer with a number; you gave {answer!r}.")
    return float(answer)


def _probe(data: Mapping[str, Any], key: str = "probe") -> pd.DataFrame:
    df = data[key]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{key}= must be the DataFrame lab.probe(...) returned, got {type(df).__name__}")
    return df


def _answered(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["pod"].fillna("").astype(str) != "") & (df["error"].fillna("").astype(str) == "")]


# ------------------------------------------------------------------------------------ chapter 0

def _first_version(answer: Any, data: Mapping[str, Any]) -> bool:
    df = _answered(_probe(data))
    if df.empty:
        raise ValueError("Your probe has no answered request; run the probe cell again first.")
    return _word(answer) == str(df.sort_values("seq")["version"].iloc[0]).lower()


exercise(Exercise(
    "0.first-version",
    "Which version (v1 or v2) answered the first request of your probe?",
    "Look at the `version` column of the first row (`first.head()`), or at the chart's colours.",
    "Every row says which pod and which version answered: the probe is your microscope for the "
    "whole course.",
    _first_version, needs=("probe",)))


def _two_answers(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (list, tuple, set)):
        raise ValueError("Answer with a list of the two column names, e.g. [\"a\", \"b\"].")
    return {_word(a) for a in answer} == {"pod", "version"}


exercise(Exercise(
    "0.columns",
    "Which two columns of a probe tell you who answered a request?",
    "One names the pod, the other the version of the app the pod runs.",
    "`pod` and `version` come from the answer itself (the app says who it is), never guessed.",
    _two_answers))


# ------------------------------------------------------------------------------------ chapter 1

def _keepalive_pods(answer: Any, data: Mapping[str, Any]) -> bool:
    return _number(answer) == _answered(_probe(data))["pod"].nunique()


exercise(Exercise(
    "1.keepalive-pods",
    "On ONE keep-alive connection, how many different pods answered the requests?",
    "Count the distinct values in the `pod` column of the keep-alive probe: `sticky.pod.nunique()`.",
    "kube-proxy picked a pod when the connection was opened; every later request on that "
    "connection went to the same pod. The Service balances connections, not requests.",
    _keepalive_pods, needs=("probe",)))


def _balances(answer: Any, data: Mapping[str, Any]) -> bool:
    word = _word(answer)
    if word in ("request", "requests", "http requests", "http request"):
        return False
    return word in ("connection", "connections", "tcp connection", "tcp connections")


exercise(Exercise(
    "1.balances",
    "kube-proxy chooses a pod once per ... (\"request\" or \"connection\")?",
    "Compare the chart for one keep-alive connection with the one for a new connection per "
    "request. When was the pod chosen?",
    "Connections. iptables (and nftables, IPVS) rewrite the destination of a new TCP connection; "
    "conntrack then pins every packet of that connection to the same pod.",
    _balances))


# ------------------------------------------------------------------------------------ chapter 2

def _cluster_name(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, str):
        raise ValueError("Answer with the cluster name as a string, e.g. \"outbound|...\".")
    return answer.strip() == cluster_name(9080, None, fqdn("reviews", "default"))


exercise(Exercise(
    "2.cluster-name",
    "What is the name of the Envoy cluster built for Service reviews (namespace default, port 9080)?",
    "Istio names outbound clusters `outbound|<service port>|<subset>|<FQDN>`; with no subset the "
    "third field is empty. Look at the clusters table above.",
    "The Service gave Envoy a name (its FQDN) and a port; the cluster carries both.",
    _cluster_name))


def _slow_policy(answer: Any, data: Mapping[str, Any]) -> bool:
    results: Mapping[str, pd.DataFrame] = data["results"]
    slow: str = data["slow_pod"]
    if not results:
        raise ValueError("No policy has been measured yet: run the comparison cell first.")
    share = {}
    for policy, df in results.items():
        ok = _answered(df)
        share[str(policy).upper()] = (ok["pod"] == slow).mean() if len(ok) else 1.0
    best = min(share, key=share.get)  # type: ignore[arg-type]
    return _word(answer).upper().replace(" ", "_") == best


exercise(Exercise(
    "2.slow-pod-policy",
    "Which load-balancing policy sent the fewest requests to the slow pod?",
    "Compare the slow pod's slice in each bar. Which policy looks at how many requests each pod "
    "is still working on?",
    "LEAST_REQUEST (Istio's default since 1.14) picks the less busy of two random pods, so a slow "
    "pod, which holds its requests longer, gets fewer new ones. ROUND_ROBIN and RANDOM do not look.",
    _slow_policy, needs=("results", "slow_pod")))


# ------------------------------------------------------------------------------------ chapter 3

def _weights(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, (list, tuple)) and len(answer) == 2:   # (v1, v2), in the slider's order
        answer = {"v1": answer[0], "v2": answer[1]}
    if isinstance(answer, Mapping):
        answer = {str(k).strip().lower(): v for k, v in answer.items()}
    if not isinstance(answer, Mapping) or set(answer) != {"v1", "v2"}:
        raise ValueError("Answer with a dict of both subsets, e.g. {\"v1\": 50, \"v2\": 50}.")
    w1, w2 = _number(answer["v1"]), _number(answer["v2"])
    if w1 < 0 or w2 < 0 or w1 + w2 <= 0:
        raise ValueError("Weights are ≥ 0 and must not all be 0 (Istio rejects that).")
    return abs(w2 / (w1 + w2) - 0.10) < 1e-9


exercise(Exercise(
    "3.weights",
    "Which weights send 10 % of the requests to v2 and the rest to v1?",
    "Weights are relative: the share of a destination is its weight divided by the sum.",
    "90/10 (or any 9:1). Envoy draws a destination per request with these odds, so 200 requests "
    "land near 10 % but rarely on it exactly: that is what the band in the chart shows.",
    _weights))

_WPCATALOG_RIGHT = {"/wpcatalog/items": "v2", "/wpcatalogue": "v2", "/reviews/1": "v1", "/": "v1"}


def _wpcatalog(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, Mapping):
        answer = {str(k).strip(): v for k, v in answer.items()}
    if not isinstance(answer, Mapping) or set(answer) != set(_WPCATALOG_RIGHT):
        raise ValueError(f"Answer with a dict for exactly these paths: {sorted(_WPCATALOG_RIGHT)}.")
    return {k: _word(v) for k, v in answer.items()} == _WPCATALOG_RIGHT


exercise(Exercise(
    "3.wpcatalog",
    "With the seed's VirtualService, which subset serves each path?",
    "`prefix` compares characters, not path segments; rules are tried in order, the first match "
    "wins, and a rule without `match` catches everything left.",
    "`/wpcatalogue` starts with the characters `/wpcatalog`, so it goes to v2 too: prefix is a "
    "string prefix. Everything else falls through to the catch-all rule → v1.",
    _wpcatalog))


# ------------------------------------------------------------------------------------ chapter 4

_FLAGS_RIGHT = {"no-service": "NC", "undefined-subset": "NC", "empty-subset": "UH"}


def _flags(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, Mapping):
        answer = {_word(k).replace(" ", "-") if isinstance(k, str) else k: v for k, v in answer.items()}
    if not isinstance(answer, Mapping) or set(answer) != set(_FLAGS_RIGHT):
        raise ValueError(f"Answer with a dict for exactly these cases: {sorted(_FLAGS_RIGHT)}.")
    # "NC", "nc", "503 NC" all name the flag
    return {k: str(v).strip().upper().removeprefix("503").strip() for k, v in answer.items()} == _FLAGS_RIGHT


exercise(Exercise(
    "4.flags",
    "Which Envoy response flag did each broken case produce (gateway → no Service, a route to an "
    "undefined subset, a subset that selects no pods)?",
    "NC = the route names a cluster Envoy does not have; UH = the cluster exists but has no "
    "healthy endpoint. Which cases leave Envoy without a cluster at all?",
    "No Service or no DR subset → no cluster → NC. A subset that matches no pod → a cluster with "
    "zero endpoints → UH. Same 503, different cause, different fix.",
    _flags))


_KIND_SHORT = {"dr": "destinationrule", "vs": "virtualservice"}


def _safe_order(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise ValueError("Answer with a list of the two kinds in the order you apply them, "
                         "e.g. [\"Kind1\", \"Kind2\"].")
    kinds = [_word(a).replace(" ", "") for a in answer]
    return [_KIND_SHORT.get(k, k) for k in kinds] == ["destinationrule", "virtualservice"]


exercise(Exercise(
    "4.safe-order",
    "Adding a new subset and a route to it: in which order do you apply the two kinds?",
    "A route may only name a cluster that already exists. Which object creates the subset cluster?",
    "DestinationRule first (it creates the subset cluster), wait until it has reached the proxies, "
    "then the VirtualService. Removing: VirtualService first, then the DestinationRule.",
    _safe_order))

_SEED_RIGHT = "b"


def _seed(answer: Any, data: Mapping[str, Any]) -> bool:
    word = _word(answer)
    if word not in ("a", "b", "c"):
        raise ValueError("Answer with one letter: \"a\", \"b\" or \"c\".")
    return word == _SEED_RIGHT


exercise(Exercise(
    "4.seed",
    "Why does a request through the gateway get 503 once the Kubernetes Service is gone? "
    "(a), (b) or (c)?",
    "Look at the response flag of those 503s and at the clusters table without the Service.",
    "(b): the DestinationRule and VirtualService only refine traffic to a host the registry knows. "
    "The Service supplies that host, its port and its endpoints; without it the route names a "
    "missing cluster and Envoy answers 503 NC. The DR itself stays valid — it just decorates nothing.",
    _seed))
