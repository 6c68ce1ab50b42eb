"""Auto-checked exercises and predictions: the learner writes an answer in a cell, `meshlab.check`
says right or wrong and, when wrong, which part is wrong and a hint instead of the answer.

Why the answers live here and not in the notebooks: a learner scrolling down should not read the
solution (nbgrader hides it the same way). Several answers are not constants but facts of the
learner's own lab — "how many pods answered on one keep-alive connection?" is judged against
the probe the learner just ran, passed in as keyword data — so the check teaches "look at what
you measured", not "remember what the course said".

Two kinds:

- an **exercise** (✏️) asks a question; a wrong answer gets what is wrong and a hint, never the
  answer;
- a **prediction** (🤔) is a guess typed *before* a measurement and checked *after* it, against
  the measurement: the verdict always shows what was measured and why.

Some exercises take YAML: the check applies it to the learner's lab inside `lab.restoring()`,
probes, judges the probe, and puts the lab back as it was — so a right fix is proven by traffic,
and the chapter's next cells still see what the text says.

An unanswered exercise (`None` or `...`) is not an error: the notebook must run top to bottom
unattended, so `check` then just shows the question and the hint.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from .names import cluster_name, duration_seconds, fqdn, parse_cluster_name

__all__ = ["Exercise", "Verdict", "EXERCISES", "check", "exercise"]

Kind = Literal["exercise", "prediction"]

_MARKS: dict[tuple[str, bool | None], str] = {
    ("exercise", True): "✅ Right", ("exercise", False): "❌ Not yet", ("exercise", None): "✏️ Your turn",
    ("prediction", True): "✅ As you predicted", ("prediction", False): "🤔 Not what you predicted",
    ("prediction", None): "✏️ No guess yet",
}


@dataclass(frozen=True)
class Verdict:
    """The result of one check: `ok` is True (right), False (wrong) or None (not answered yet)."""

    exercise: str
    ok: bool | None
    message: str
    kind: Kind = "exercise"

    def __bool__(self) -> bool:
        return bool(self.ok)

    @property
    def mark(self) -> str:
        return _MARKS[(self.kind, self.ok)]

    def __repr__(self) -> str:
        return f"{self.mark} [{self.exercise}] {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: "#e6f4ea;border-color:#2ca02c", False: "#fdecea;border-color:#d62728",
                  None: "#f3f3f3;border-color:#999"}[self.ok]
        return (f'<div class="meshlab-verdict" data-ok="{self.ok}" data-kind="{self.kind}" '
                f'style="background:{colour};border-left:4px solid;padding:6px 10px;margin:4px 0">'
                f"<b>{self.mark}</b> <small>({html.escape(self.exercise)})</small><br>"
                f"{_code_spans(html.escape(self.message))}</div>")


def _code_spans(text: str) -> str:
    """`like this` → <code>like this</code> (messages are written in the notebooks' Markdown)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


class _NotYet(Exception):
    """A wrong answer, with what exactly is wrong (shown before the hint)."""


@dataclass(frozen=True)
class Exercise:
    """One question with its checker.

    `judge(answer, data)` returns True/False (or, for a right answer, a sentence saying what the
    check saw, shown before the explanation), raises `_NotYet(what is wrong)` for a wrong answer
    it can say more about, or raises `ValueError` with a message when the answer has the wrong
    shape or lies outside the choices (that message is shown instead of the hint).
    `measured(data)`, for predictions, says in words what the measurement showed.
    """

    id: str
    question: str
    hint: str
    explanation: str
    judge: Callable[[Any, Mapping[str, Any]], bool | str]
    needs: tuple[str, ...] = field(default_factory=tuple)
    kind: Kind = "exercise"
    measured: Callable[[Mapping[str, Any]], str] | None = None

    def check(self, answer: Any, **data: Any) -> Verdict:
        missing = [k for k in self.needs if k not in data]
        if missing:
            raise TypeError(f"check({self.id!r}, ...) needs {', '.join(f'{m}=' for m in missing)} "
                            f"(the data your answer is judged against)")
        measured = self.measured(data) if self.measured is not None else ""
        if answer is None or answer is Ellipsis:
            if self.kind == "prediction":
                return Verdict(self.id, None, _join(
                    f"{self.question} Type your guess in the guess cell above (where it says `None`), run "
                    "it, then run this cell again.", f"Measured: {measured}" if measured else ""), self.kind)
            return Verdict(self.id, None, f"{self.question} Hint: {self.hint}", self.kind)
        try:
            result = self.judge(answer, data)
            ok, detail = bool(result), ""
        except _NotYet as e:
            ok, detail = False, str(e)
        except ValueError as e:
            return Verdict(self.id, False, str(e), self.kind)
        seen = f"Measured: {measured}" if measured else ""
        if ok:
            said = result if isinstance(result, str) else ""
            return Verdict(self.id, True, _join(said, seen, self.explanation), self.kind)
        if self.kind == "prediction":
            return Verdict(self.id, False, _join(detail, seen, self.explanation), self.kind)
        return Verdict(self.id, False, _join(detail, f"Hint: {self.hint}"), self.kind)


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


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


def _choice(answer: Any, choices: Mapping[str, str]) -> str:
    """The choice an answer names (`choices`: accepted spelling → choice), or a ValueError that
    lists the choices."""
    listed = list(dict.fromkeys(choices.values()))
    shown = ", ".join(f'"{c}"' for c in listed)
    if not isinstance(answer, str):
        raise ValueError(f"Answer with one of the choices in quotes: {shown}; you gave {answer!r}.")
    word = _word(answer)
    if word not in choices:
        raise ValueError(f"{answer!r} is not one of the choices: {shown}.")
    return choices[word]


def _number(answer: Any) -> float:
    if isinstance(answer, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", answer):   # "1" means 1
        return float(answer)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise ValueError(f"Answer with a number; you gave {answer!r}.")
    if not math.isfinite(answer):       # NaN passes every `not <ok>` check: refuse it here
        raise ValueError(f"Answer with a finite number; you gave {answer!r}.")
    return float(answer)


def _probe(data: Mapping[str, Any], key: str = "probe") -> pd.DataFrame:
    df = data[key]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{key}= must be the DataFrame lab.probe(...) returned, got {type(df).__name__}")
    return df


def _answered(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["pod"].fillna("").astype(str) != "") & (df["error"].fillna("").astype(str) == "")]


def _parts(right: Iterable[str], wrong: Iterable[str], what: str = "") -> str:
    """`Right: a, b. Not yet: c.` — which parts of a many-part answer need another look."""
    right, wrong = list(right), list(wrong)
    out = f"Right: {', '.join(right)}." if right else "None of them is right yet."
    return f"{out} Not yet: {', '.join(wrong)}{what}."


def _outcomes(df: pd.DataFrame) -> pd.Series:
    """Requests per outcome label (`charts.outcome`), most frequent first."""
    from .charts import outcome   # charts sits on the same floor; imported when used
    return outcome(df).value_counts()


def _got(df: pd.DataFrame) -> str:
    from .charts import outcome_summary
    return outcome_summary(df)


def _same_outcome(guess: Any, label: str) -> bool:
    """Does a guessed outcome name the measured one? `503` names `503 NC`; `dns` names `dns error`;
    `503 NC` must match with its flag."""
    g = re.sub(r"\s+", " ", str(guess).strip().lower()).replace("error", "").strip()
    actual = label.lower().replace("error", "").strip()
    return g == actual or (g.isdigit() and actual.split(" ", 1)[0] == g)


# ------------------------------------------------------------------------------------ chapter 0

def _versions(df: pd.DataFrame) -> pd.Series:
    return _answered(df)["version"].astype(str).value_counts().sort_index()


def _predict_versions(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _choice(answer, {"one": "one", "only one": "one", "one version": "one", "both": "both",
                             "two": "both", "both versions": "both"})
    seen = _versions(_probe(data))
    if seen.empty:
        raise ValueError("Your probe has no answered request; run the probe cell again first.")
    if guess == "both":
        if len(seen) < 2:
            raise _NotYet("You guessed both versions; only one answered.")
        return True
    if len(seen) > 1:
        raise _NotYet("You guessed one version; both answered.")
    return True


exercise(Exercise(
    "0.predict-versions",
    "20 requests to `reviews`: will only one version answer, or both? (\"one\" or \"both\")",
    "The Service selects every pod labelled `app: reviews`, whatever its version.",
    "The Service `reviews` selects all three pods (`app: reviews`), two of v1 and one of v2, so "
    "requests reach both versions. Nothing here decides by version yet: that comes with the "
    "DestinationRule and VirtualService (chapter 3).",
    _predict_versions, needs=("probe",), kind="prediction",
    measured=lambda d: " and ".join(f"{v} answered {k}" for v, k in _versions(_probe(d)).items())
    + f" of the {len(_probe(d))} requests."))


def _first_version(answer: Any, data: Mapping[str, Any]) -> bool:
    df = _answered(_probe(data))
    if df.empty:
        raise ValueError("Your probe has no answered request; run the probe cell again first.")
    versions = sorted({"v1", "v2"} | set(df["version"].astype(str)))
    guess = _choice(answer, {v: v for v in versions})
    return guess == str(df.sort_values("seq")["version"].iloc[0])


exercise(Exercise(
    "0.first-version",
    "Which version (v1 or v2) answered the first request of your probe?",
    "The table above shows the first rows (`first.head()`): read the `version` column of the row "
    "whose `seq` is 0.",
    "Every row says which pod and which version answered: the probe is your microscope for the "
    "whole course.",
    _first_version, needs=("probe",)))

_WHO_ANSWERED = {"pod", "version"}
_PROBE_COLUMNS = ("seq", "t", "status", "error", "flags", "details", "proxy", "route", "cluster", "subset",
                  "upstream", "pod", "version", "latency_ms", "conn", "attempts")


def _two_answers(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (list, tuple, set)) or len(answer) != 2:
        raise ValueError("Answer with a list of the two column names, e.g. [\"a\", \"b\"].")
    columns = {c.replace("_", " "): c for c in _PROBE_COLUMNS}
    given = [columns.get(_word(a)) for a in answer]
    unknown = [a for a, g in zip(answer, given) if g is None]
    if unknown:
        raise ValueError(f"{', '.join(map(repr, unknown))} is not a probe column; the columns are "
                         f"{', '.join(_PROBE_COLUMNS)}.")
    wrong = [g for g in given if g not in _WHO_ANSWERED]
    if wrong:
        raise _NotYet(f"`{'`, `'.join(wrong)}` {'does' if len(wrong) == 1 else 'do'} not say who answered.")
    return set(given) == _WHO_ANSWERED


exercise(Exercise(
    "0.columns",
    "Which two columns of a probe tell you who answered a request?",
    "One names the pod, the other the version of the app the pod runs.",
    "`pod` and `version` come from the answer itself (the app says who it is), never guessed.",
    _two_answers))


# ------------------------------------------------------------------------------------ chapter 1

def _pods_that_answered(data: Mapping[str, Any]) -> str:
    df = _probe(data)
    pods = sorted(set(_answered(df)["pod"].astype(str)))
    conns = df["conn"].nunique() if "conn" in df else "?"
    return (f"{len(pods)} pod{'s' if len(pods) != 1 else ''} answered the {len(df)} requests "
            f"({conns} connection{'s' if conns != 1 else ''}): {', '.join(pods) or 'none'}.")


def _count_pods(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _number(answer)
    seen = _answered(_probe(data))["pod"].nunique()
    if guess != seen:
        raise _NotYet(f"You guessed {guess:g}.")
    return True


exercise(Exercise(
    "1.keepalive-pods",
    "40 requests over ONE keep-alive connection, without a sidecar: how many different pods answer?",
    "Count the distinct values in the `pod` column of the keep-alive probe: `sticky.pod.nunique()`.",
    "kube-proxy picked a pod when the connection was opened; every later request on that "
    "connection went to the same pod. The Service balances connections, not requests.",
    _count_pods, needs=("probe",), kind="prediction", measured=_pods_that_answered))


def _balances(answer: Any, data: Mapping[str, Any]) -> bool:
    return _choice(answer, {"request": "request", "requests": "request", "http request": "request",
                            "http requests": "request", "connection": "connection",
                            "connections": "connection", "tcp connection": "connection",
                            "tcp connections": "connection"}) == "connection"


exercise(Exercise(
    "1.balances",
    "kube-proxy chooses a pod once per ... (\"request\" or \"connection\")?",
    "Compare the chart for one keep-alive connection with the one for a new connection per "
    "request. When was the pod chosen?",
    "Connections. kube-proxy's rules (iptables, nftables or IPVS) rewrite the destination of a new "
    "connection; conntrack then sends every packet of that connection to the same pod.",
    _balances))


# ------------------------------------------------------------------------------------ chapter 2

exercise(Exercise(
    "2.predict-meshed-pods",
    "60 requests over one keep-alive connection, now through the client's sidecar: how many pods answer?",
    "Envoy ends the app's connection and opens its own to the pods.",
    "The app's one connection ends at its sidecar; Envoy keeps its own connections to every "
    "endpoint and picks a pod for each HTTP request, so all three pods answer.",
    _count_pods, needs=("probe",), kind="prediction", measured=_pods_that_answered))

_CLUSTER_PARTS = ("direction", "service port", "subset", "host (FQDN)")


def _cluster_name(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, str):
        raise ValueError("Answer with the cluster name as a string, e.g. \"outbound|...\".")
    right = cluster_name(9080, None, fqdn("ratings", "bookinfo")).split("|")
    given = answer.strip().split("|")
    if len(given) != 4:
        raise _NotYet(f"An Istio cluster name has 4 fields separated by `|`; yours has {len(given)}.")
    wrong = [name for name, g, r in zip(_CLUSTER_PARTS, given, right) if g.strip() != r]
    if wrong:
        raise _NotYet(_parts([n for n in _CLUSTER_PARTS if n not in wrong], wrong))
    return True


exercise(Exercise(
    "2.cluster-name",
    "What is the name of the Envoy cluster istiod builds for a Service `ratings` in namespace "
    "`bookinfo`, port 9080 (no DestinationRule)?",
    "Istio names outbound clusters `outbound|<service port>|<subset>|<FQDN>`; with no subset the "
    "third field is empty, and the FQDN is `<service>.<namespace>.svc.cluster.local`.",
    "`outbound|9080||ratings.bookinfo.svc.cluster.local`: the Service gives Envoy a name (its FQDN) "
    "and a port, and the cluster carries both.",
    _cluster_name))


def _slow_shares(data: Mapping[str, Any]) -> dict[str, float]:
    results: Mapping[str, pd.DataFrame] = data["results"]
    slow: str = data["slow_pod"]
    if not results:
        raise ValueError("No policy has been measured yet: run the comparison cell first.")
    share = {}
    for policy, df in results.items():
        ok = _answered(df)
        share[str(policy).upper()] = float((ok["pod"] == slow).mean()) if len(ok) else 1.0
    return share


def _slow_policy(answer: Any, data: Mapping[str, Any]) -> bool:
    share = _slow_shares(data)
    guess = _choice(answer, {p.lower().replace("_", " "): p for p in share})
    best = min(share, key=share.get)  # type: ignore[arg-type]
    if guess != best:
        raise _NotYet(f"You guessed {guess}.")
    return True


exercise(Exercise(
    "2.slow-pod-policy",
    "One pod answers in 60 ms, requests go 4 at a time: which load-balancing policy sends the "
    "fewest requests to the slow pod? (\"ROUND_ROBIN\", \"RANDOM\" or \"LEAST_REQUEST\")",
    "Which policy looks at how many requests each pod is still working on?",
    "ROUND_ROBIN gives every pod its turn, slow or not; RANDOM does the same on average. "
    "LEAST_REQUEST (Istio's default) picks two pods at random and sends to the one with fewer "
    "requests in flight — the slow pod holds on to its requests longer, so it is picked less.",
    _slow_policy, needs=("results", "slow_pod"), kind="prediction",
    measured=lambda d: "share of requests the slow pod answered: " + ", ".join(
        f"{p} {v:.0%}" for p, v in _slow_shares(d).items()) + "."))


# ------------------------------------------------------------------------------------ chapter 3

def _v2_band(data: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(v2 requests, answered requests, band low, band high) of the weighted probe, in requests."""
    from .charts import wilson_interval   # charts sits on the same floor; imported when used
    df = _answered(_probe(data))
    col = "subset" if df["subset"].astype(str).ne("").any() else "version"
    k, n = int((df[col].astype(str) == "v2").sum()), len(df)
    lo, hi = wilson_interval(k, n)
    return k, n, int(lo * n), -int(-hi * n // 1)


def _predict_v2_count(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _number(answer)
    k, n, lo, hi = _v2_band(data)
    if not 0 <= guess <= n:
        raise ValueError(f"Answer with a number of requests between 0 and {n}.")
    if not lo <= guess <= hi:
        raise _NotYet(f"You guessed {guess:g}, outside what {n} draws make likely.")
    return True


exercise(Exercise(
    "3.predict-v2-count",
    "The VirtualService sends 20 % of requests to v2. Out of 200 requests, how many reach v2?",
    "Envoy draws a destination for every request, with the weights as odds.",
    "Each request is a separate draw with a 20 % chance of v2, so 200 requests give *about* 40 — "
    "rarely exactly 40. The 95 % band is the range of true shares consistent with what you "
    "measured; a guess inside it is as good as this measurement can tell.",
    _predict_v2_count, needs=("probe",), kind="prediction",
    measured=lambda d: "v2 got {0} of {1} requests; the 95 % confidence band is {2}–{3} requests.".format(
        *_v2_band(d))))


#: The subsets of chapter 3's DestinationRule `reviews` (notebooks/manifests/03-subsets/
#: destinationrule-subsets.yaml; tests/test_exercises.py checks they agree).
_CHAPTER3_DR, _CHAPTER3_SUBSETS = "reviews", ("v1", "v2")


def _weights(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, (list, tuple)) and len(answer) == 2:   # (v1, v2), in the slider's order
        answer = dict(zip(_CHAPTER3_SUBSETS, answer))
    if isinstance(answer, Mapping):
        answer = {str(k).strip().lower(): v for k, v in answer.items()}
    if not isinstance(answer, Mapping):
        raise ValueError("Answer with a dict of both subsets, e.g. {\"v1\": 50, \"v2\": 50}.")
    subsets = " and ".join(f"`{s}`" for s in _CHAPTER3_SUBSETS)
    unknown = [k for k in answer if k not in _CHAPTER3_SUBSETS]
    if unknown:
        are = "is not a subset" if len(unknown) == 1 else "are not subsets"
        raise ValueError(f"{', '.join(f'`{k}`' for k in unknown)} {are} of the DestinationRule `{_CHAPTER3_DR}`: "
                         f"its subsets are {subsets}. Give a weight to each.")
    missing = [s for s in _CHAPTER3_SUBSETS if s not in answer]
    if missing:
        raise ValueError(f"Give a weight to each subset of the DestinationRule `{_CHAPTER3_DR}` ({subsets}); "
                         f"{', '.join(f'`{s}`' for s in missing)} has none.")
    w1, w2 = _number(answer["v1"]), _number(answer["v2"])
    if w1 < 0 or w2 < 0 or w1 + w2 <= 0:
        raise ValueError("Weights are ≥ 0 and must not all be 0 (Istio rejects that).")
    share = w2 / (w1 + w2)
    if abs(share - 0.10) >= 1e-9:
        raise _NotYet(f"With these weights v2 gets {share * 100:.0f} % of the requests, not 10 %.")
    return True


exercise(Exercise(
    "3.weights",
    "Which weights send 10 % of the requests to v2 and the rest to v1?",
    "Weights are relative: the share of a destination is its weight divided by the sum.",
    "90/10 (or any 9:1). Envoy draws a destination per request with these odds, so 200 requests "
    "land near 10 % but rarely on it exactly: that is what the band in the chart shows.",
    _weights))

_WPCATALOG_PATHS = ("/wpcatalog/items", "/wpcatalogue", "/reviews/1", "/")


def _served(data: Mapping[str, Any]) -> dict[str, str]:
    """The subset that served most requests of each probed path (`seen`: path → probe)."""
    seen: Mapping[str, pd.DataFrame] = data["seen"]
    missing = [p for p in _WPCATALOG_PATHS if p not in seen]
    if missing:
        raise ValueError(f"seen= lacks the probe of {', '.join(missing)}; run the measurement cell first.")
    out = {}
    for path in _WPCATALOG_PATHS:
        subsets = _answered(seen[path])["subset"].astype(str)
        out[path] = str(subsets.value_counts().index[0]) if len(subsets) else "no answer"
    return out


def _wpcatalog(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, Mapping):
        answer = {str(k).strip(): v for k, v in answer.items()}
    if not isinstance(answer, Mapping) or set(answer) != set(_WPCATALOG_PATHS):
        raise ValueError(f"Answer with a dict for exactly these paths: {list(_WPCATALOG_PATHS)}.")
    given = {k: _choice(v, {"v1": "v1", "v2": "v2"}) for k, v in answer.items()}
    served = _served(data)
    wrong = [k for k in _WPCATALOG_PATHS if given[k] != served[k]]
    if wrong:
        raise _NotYet(_parts([k for k in _WPCATALOG_PATHS if k not in wrong], wrong))
    return True


exercise(Exercise(
    "3.wpcatalog",
    "With the seed's VirtualService, which subset serves each path?",
    "`prefix` compares characters, not path segments; rules are tried in order, the first match "
    "wins, and a rule without `match` catches everything left.",
    "`/wpcatalogue` starts with the characters `/wpcatalog`, so it goes to v2 too: prefix is a "
    "string prefix. Everything else falls through to the catch-all rule → v1.",
    _wpcatalog, needs=("seen",), kind="prediction",
    measured=lambda d: ", ".join(f"{p} → {s}" for p, s in _served(d).items()) + "."))


def _lab(data: Mapping[str, Any]) -> Any:
    lab = data["lab"]
    if not all(hasattr(lab, m) for m in ("apply", "probe", "restoring", "objects")):
        raise TypeError(f"lab= must be your Lab, got {type(lab).__name__}")
    return lab


def _kinds(objs: Iterable[Any]) -> list[str]:
    return [getattr(o, "kind", "?") for o in objs]


def _subsets_named(objs: Iterable[Any]) -> set[str]:
    """Subsets a VirtualService's routes name, or a DestinationRule defines."""
    out: set[str] = set()
    for o in objs:
        m = o.to_manifest() if hasattr(o, "to_manifest") else {}
        spec = m.get("spec") or {}
        if m.get("kind") == "DestinationRule":
            out |= {str(x.get("name")) for x in spec.get("subsets") or []}
        elif m.get("kind") == "VirtualService":
            out |= {str(r["destination"]["subset"]) for rule in spec.get("http") or []
                    for r in rule.get("route") or [] if (r.get("destination") or {}).get("subset")}
    return out


def _write_destinationrule(answer: Any, data: Mapping[str, Any]) -> str:
    """Apply the learner's DestinationRule with the weighted route, probe, judge, put the lab back."""
    lab = _lab(data)
    with lab.restoring():
        theirs = [o for o in lab.objects() if o.kind == "DestinationRule"]
        if theirs:          # yours is the only DestinationRule while the check measures
            lab.delete(theirs)
        route = lab.apply(data["route"])
        applied = lab.apply(answer)      # bad YAML: ManifestError (a ValueError) names file/line/field
        if "DestinationRule" not in _kinds(applied):
            raise ValueError(f"Your YAML holds {', '.join(_kinds(applied)) or 'nothing'}; this exercise "
                             "asks for a DestinationRule.")
        df = lab.probe("http://reviews:9080/", n=100, seed=1)
    counts = _outcomes(df)
    if "503 NC" in counts:
        missing = sorted(_subsets_named(route) - _subsets_named(applied))
        named = f"subset{'s' if len(missing) > 1 else ''} {', '.join(missing) or '?'}"
        raise _NotYet(f"{_got(df)}. NC: the route names {named}, for which Envoy has no cluster — does "
                      "your DestinationRule define every subset the VirtualService names, for the host "
                      "`reviews`?")
    if "503 UH" in counts:
        raise _NotYet(f"{_got(df)}. UH: a subset selects no ready pod — check each subset's labels.")
    ok = _answered(df)
    mixed = sorted({s for s, v in zip(ok["subset"].astype(str), ok["version"].astype(str)) if s != v})
    if mixed:
        raise _NotYet(f"{_got(df)}, but subset {', '.join(mixed)} reached pods of another version: its "
                      "labels select the wrong pods.")
    if len(counts) != 1 or counts.index[0] != "200":
        raise _NotYet(f"{_got(df)}.")
    return f"{_got(df)}; " + ", ".join(f"subset {s} → version {s}" for s in sorted(set(ok["subset"].astype(str)))) + "."


exercise(Exercise(
    "3.write-destinationrule",
    "Write the DestinationRule that makes `virtualservice-80-20.yaml` work: subsets `v1` and `v2` of "
    "host `reviews`, one per version label. (The check applies it with that VirtualService, sends "
    "100 requests, then puts the lab back.)",
    "A subset is a `name` plus `labels`; the pods carry `version: v1` or `version: v2`. Start from "
    "`apiVersion: networking.istio.io/v1`, `kind: DestinationRule`, `spec.host`, `spec.subsets`.",
    "Your subsets are label filters over the Service's endpoints; istiod built a cluster from each, "
    "and the VirtualService's weights pick between those clusters per request.",
    _write_destinationrule, needs=("lab", "route")))


# ------------------------------------------------------------------------------------ chapter 4

_OUTCOME_KEYS = {"inside": "inside", "inside the mesh": "inside", "sidecar": "inside", "gateway": "gateway",
                 "outside": "gateway", "through the gateway": "gateway"}


def _top(df: pd.DataFrame) -> str:
    return str(_outcomes(df).index[0])


def _predict_no_service(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, Mapping) or {_OUTCOME_KEYS.get(_word(str(k))) for k in answer} != {"inside", "gateway"}:
        raise ValueError("Answer with a dict for both clients, e.g. {\"inside\": \"200\", \"gateway\": \"200\"} "
                         "(an outcome is a status like \"200\" or \"503 NC\", or \"dns error\").")
    given = {_OUTCOME_KEYS[_word(str(k))]: v for k, v in answer.items()}
    measured = {"inside": _top(_probe(data, "inside")), "gateway": _top(_probe(data, "outside"))}
    wrong = [k for k in ("inside", "gateway") if not _same_outcome(given[k], measured[k])]
    if wrong:
        raise _NotYet(_parts([k for k in ("inside", "gateway") if k not in wrong], wrong))
    return True


exercise(Exercise(
    "4.predict-no-service",
    "The Service is deleted; the DestinationRule and both VirtualServices stay. What does a client "
    "inside the mesh get when it calls `reviews`, and a client coming through the gateway?",
    "What does an app need before its sidecar sees anything? And what does Envoy need to forward?",
    "Inside, the app asks DNS for `reviews` and there is no such name any more: `dns error`, no HTTP "
    "at all. Through the gateway the request reaches Envoy, whose route names a cluster istiod no "
    "longer builds: 503 NC.",
    _predict_no_service, needs=("inside", "outside"), kind="prediction",
    measured=lambda d: f"inside, {_got(_probe(d, 'inside'))}; through the gateway, {_got(_probe(d, 'outside'))}."))


def _predict_outcome(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (str, int)) or not re.fullmatch(r"\s*\d{3}(\s+[A-Za-z,]+)?\s*", str(answer)):
        raise ValueError("Answer with a status and a flag in quotes, e.g. \"404 NR\".")
    top = _top(_probe(data))
    if not _same_outcome(answer, top):
        raise _NotYet(f"You guessed {str(answer).strip()}.")
    if str(answer).strip().isdigit() and top != str(answer).strip():
        raise _NotYet(f"The status {str(answer).strip()} is right; the flag, which names the cause, was missing.")
    return True


exercise(Exercise(
    "4.predict-undefined-subset",
    "A route to subset `v3`, which no DestinationRule defines: which status and Envoy flag?",
    "Which Envoy cluster would the route name, and does it exist?",
    "503 NC: istiod builds one cluster per subset a DestinationRule defines; the route names "
    "`outbound|9080|v3|…`, which was never built, so Envoy has no cluster to send to.",
    _predict_outcome, needs=("probe",), kind="prediction", measured=lambda d: _got(_probe(d)) + "."))


def _fix_with_serviceentry(answer: Any, data: Mapping[str, Any]) -> str:
    """Case 1 (no Service): apply the learner's ServiceEntry, probe through the gateway and by name,
    judge the gateway's answers, put the lab back."""
    lab = _lab(data)
    if any(o.kind == "Service" and o.name == "reviews" for o in lab.objects()):
        raise ValueError("The Service `reviews` is in the lab again (a later cell re-applied it), so this "
                         "check cannot tell what your fix does: it belongs right after case 1.")
    with lab.restoring():
        applied = lab.apply(answer)
        kinds = _kinds(applied)
        if "Service" in kinds:
            raise _NotYet("That brings the Service back, which works — but this exercise asks for the fix "
                          "without one.")
        if "ServiceEntry" not in kinds:
            raise ValueError(f"Your YAML holds {', '.join(kinds) or 'nothing'}; this exercise asks for a "
                             "ServiceEntry.")
        outside = lab.probe("http://reviews.example.com/", via="gateway", n=20, seed=1)
        inside = lab.probe("http://reviews:9080/", n=5, seed=1)
    counts = _outcomes(outside)
    if list(counts.index) != ["200"]:
        why = ""
        if "503 NC" in counts:
            why = (" NC: Envoy has no cluster for the host the gateway's route names — does your "
                   "ServiceEntry's host read exactly `reviews.default.svc.cluster.local`, with port 9080?")
        elif "503 UH" in counts:
            why = (" UH: the cluster has no endpoint — does `workloadSelector` select the pods "
                   "(`app: reviews`), with `resolution: STATIC`?")
        raise _NotYet(f"Through the gateway, {_got(outside)}.{why}")
    return f"Through the gateway, {_got(outside)}; inside, by name, {_got(inside)}."


exercise(Exercise(
    "4.fix-with-serviceentry",
    "Fix case 1 without bringing the Service back: write a ServiceEntry that gives the mesh the host "
    "`reviews.default.svc.cluster.local` (port 9080, HTTP) with the reviews pods as its endpoints. "
    "(The check applies it, sends requests through the gateway and by name, then puts the lab back.)",
    "A ServiceEntry with `hosts`, `ports` (number, name, protocol), `location: MESH_INTERNAL`, "
    "`resolution: STATIC` and a `workloadSelector` whose labels match the pods.",
    "istiod built the cluster and its endpoints from your ServiceEntry, as it does from a Service. By "
    "name (`reviews`) the app still gets a DNS error: a "
    "ServiceEntry adds a host to Istio's registry, not a name to the cluster's DNS (unless Istio's "
    "DNS proxy is turned on). A VirtualService's hosts can be Services or ServiceEntries alike.",
    _fix_with_serviceentry, needs=("lab",)))

_FLAGS_RIGHT = {"no-service": "NC", "undefined-subset": "NC", "empty-subset": "UH"}
#: Envoy's response flags (short form), from envoy/stream_info/stream_info.h: an answer outside
#: these is not a flag at all.
_ENVOY_FLAGS = {"UH", "UF", "UO", "NR", "URX", "NC", "DT", "UC", "LH", "UT", "LR", "UR", "RL", "UAEX",
                "RLSE", "IH", "SI", "DPE", "UPE", "UMSDR", "OM", "DF", "DO", "DI", "FI", "DC", "NFCF"}


def _flags(answer: Any, data: Mapping[str, Any]) -> bool:
    if isinstance(answer, Mapping):
        answer = {_word(k).replace(" ", "-") if isinstance(k, str) else k: v for k, v in answer.items()}
    if not isinstance(answer, Mapping) or set(answer) != set(_FLAGS_RIGHT):
        raise ValueError(f"Answer with a dict for exactly these cases: {sorted(_FLAGS_RIGHT)}.")
    # "NC", "nc", "503 NC" all name the flag
    given = {k: str(v).strip().upper().removeprefix("503").strip() for k, v in answer.items()}
    unknown = sorted({v for v in given.values() if v not in _ENVOY_FLAGS})
    if unknown:
        raise ValueError(f"{', '.join(map(repr, unknown))} is not an Envoy response flag; the flags this "
                         "chapter met are NC, UH and NR.")
    wrong = [k for k in _FLAGS_RIGHT if given[k] != _FLAGS_RIGHT[k]]
    if wrong:
        raise _NotYet(_parts([k for k in _FLAGS_RIGHT if k not in wrong], wrong))
    return True


exercise(Exercise(
    "4.flags",
    "Which Envoy response flag did each broken case produce (gateway → no Service, a route to an "
    "undefined subset, a subset that selects no pods)?",
    "NC = the route names a cluster Envoy does not have; UH = the cluster exists but has no "
    "healthy endpoint. Which cases leave Envoy without a cluster at all?",
    "No Service or no DR subset → no cluster → NC. A subset that matches no pod → a cluster with "
    "zero endpoints → UH. Same 503, different cause, different fix.",
    _flags))


_KINDS = {"destinationrule": "DestinationRule", "dr": "DestinationRule", "virtualservice": "VirtualService",
          "vs": "VirtualService"}


def _safe_order(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise ValueError("Answer with a list of the two kinds in the order you apply them, "
                         "e.g. [\"Kind1\", \"Kind2\"].")
    kinds = [_choice(str(a).replace(" ", "").replace("-", ""), _KINDS) for a in answer]
    if kinds == ["VirtualService", "DestinationRule"]:
        raise _NotYet("That is the order that opened the 503 NC window in the timeline.")
    return kinds == ["DestinationRule", "VirtualService"]


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
    "(b): istiod builds Envoy's clusters and endpoints from the registry (Services, ServiceEntries); "
    "the DestinationRule and VirtualService only refine traffic to a host the registry knows. "
    "Without the Service the route names a cluster istiod no longer sends, and Envoy answers "
    "503 NC. The DR itself stays valid — it just decorates nothing.",
    _seed))


# ------------------------------------------------------------------------------------ chapter 7

def _predict_quiet(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, (str, int)) or not re.fullmatch(r"\s*\d{3}(\s+[A-Za-z,]+)?\s*", str(answer)):
        raise ValueError("Answer with one outcome in quotes: \"200\" if every request works, or the status and "
                         "flag of the failures you expect, e.g. \"503 NC\".")
    counts = _outcomes(_probe(data))
    failures = [o for o in counts.index if o != "200"]
    if str(answer).strip() == "200":
        if failures:
            raise _NotYet(f"You guessed that every request works; {counts[failures].sum()} did not.")
        return True
    if not any(_same_outcome(answer, o) for o in failures):
        raise _NotYet(f"You guessed {str(answer).strip()}.")
    if str(answer).strip().isdigit():
        raise _NotYet(f"The status {str(answer).strip()} is right; the flag, which names the cause, was missing.")
    return True


exercise(Exercise(
    "7.predict-quiet-traffic",
    "One request every 200 ms to a pod whose app closes a connection idle for 175 ms: do they all get "
    "200? If not, which status and flag do the others get?",
    "Envoy keeps the connection for the next request (its idle timeout is an hour). Who closes it first, "
    "and what if a request is on its way at that moment?",
    "503 UC: Envoy sent the request on the keep-alive connection it kept, while the app's close was "
    "on its way; the connection went away before any answer (upstream_reset_before_response_started"
    "{connection_termination}). Every other request opened a new connection and got 200.",
    _predict_quiet, needs=("probe",), kind="prediction", measured=lambda d: _got(_probe(d)) + "."))


def _idle_timeouts(objs: Iterable[Any]) -> list[float]:
    """Every connectionPool idleTimeout (seconds) a DestinationRule's policies set."""
    from .names import duration_seconds
    out = []
    for o in objs:
        m = o.to_manifest() if hasattr(o, "to_manifest") else {}
        if m.get("kind") != "DestinationRule":
            continue
        spec = m.get("spec") or {}
        policies = [spec.get("trafficPolicy") or {}] + [s.get("trafficPolicy") or {} for s in spec.get("subsets") or []]
        for tp in policies:
            pool = tp.get("connectionPool") or {}
            for part in ("http", "tcp"):
                idle = (pool.get(part) or {}).get("idleTimeout")
                if idle:
                    out.append(duration_seconds(str(idle)))
    return out


def _app_keepalive(lab: Any) -> tuple[float, float] | None:
    """(the reviews app's keep-alive timeout, the longest race-free idle timeout), in ms, from its
    Deployment's env (`meshlab.app.race_free_idle_ms`)."""
    from .app import race_free_idle_ms
    for o in lab.objects():
        m = o.to_manifest() if hasattr(o, "to_manifest") else {}
        if m.get("kind") != "Deployment" or (m.get("metadata") or {}).get("labels", {}).get("app") != "reviews":
            continue
        for c in (((m.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
            env = {str(e.get("name")): str(e.get("value")) for e in c.get("env") or [] if "value" in e}
            found = race_free_idle_ms(env)
            if found:
                return found
    return None


def _fix_keepalive(answer: Any, data: Mapping[str, Any]) -> str:
    """Apply the learner's DestinationRule, send quiet traffic (one request every 200 ms), put the
    lab back; judge: an idle timeout below the app's less the network's round trip, and at most one
    503 UC in 12 (a proxy stalled on a busy machine can miss its own timer, as on a real node)."""
    lab = _lab(data)
    app = _app_keepalive(lab)
    with lab.restoring():
        theirs = [o for o in lab.objects() if o.kind in ("DestinationRule", "VirtualService")]
        if theirs:          # yours is the only policy while the check measures
            lab.delete(theirs)
        applied = lab.apply(answer)
        if "DestinationRule" not in _kinds(applied):
            raise ValueError(f"Your YAML holds {', '.join(_kinds(applied)) or 'nothing'}; this exercise asks "
                             "for a DestinationRule.")
        df = lab.probe("http://reviews:9080/", n=12, rate=5, seed=1)
    counts = _outcomes(df)
    raced = int(counts.get("503 UC", 0))
    idle = _idle_timeouts(applied)
    if not idle:
        raise _NotYet(f"{_got(df)}. Envoy still keeps idle connections for an hour: no idleTimeout.")
    ms = idle[0] * 1000
    if app is not None and ms >= app[1]:
        side = "longer than the app does" if ms >= app[0] else (
            f"too close to the app's {app[0]:g} ms: the answer takes {(app[0] - app[1]) / 2:g} ms to reach Envoy "
            "and the next request as long to reach the app, so leave that round trip")
        raise _NotYet(f"{_got(df)}. Your idleTimeout is {ms:g} ms: Envoy keeps the connection {side}.")
    if raced > 1 or set(counts.index) - {"200", "503 UC"}:
        raise _NotYet(f"{_got(df)}.")
    stalled = (" (one request still lost the race: on a machine this busy a stalled proxy can miss its own "
               "timer by tens of ms — run the check again)") if raced else ""
    return f"One request every 200 ms: {_got(df)}{stalled}; Envoy closes idle connections after {ms:g} ms."


exercise(Exercise(
    "7.fix-idle-timeout",
    "Write the DestinationRule for host `reviews` that removes the race: Envoy must close an idle "
    "connection before the app does (the app: 175 ms), with room for the round trip to the pod (2 × 25 ms). "
    "(The check applies it alone, sends a request every 200 ms, then puts the lab back.)",
    "`spec.trafficPolicy.connectionPool.http.idleTimeout`, a duration such as `25ms`: below the app's "
    "keep-alive timeout less the round trip.",
    "Envoy now closes a connection idle for less than the app's timeout, so it never sends on one the "
    "app may be closing: each quiet request opens a fresh connection (a few hundred microseconds here, "
    "a TCP and perhaps mTLS handshake on a cluster) instead of racing.",
    _fix_keepalive, needs=("lab",)))

exercise(Exercise(
    "7.reset-hides",
    "With `reset` in retryOn every request got 200. What happened to the keep-alive race? "
    "(a), (b) or (c)?",
    "Look at the `attempts` column, and at what Envoy's counters say about connections the pod closed.",
    "(b): the race still happens at the same rate; Envoy now sends each raced request again on a new "
    "connection (attempts 2), which costs a round trip and hides the cause. A `reset` retry is only "
    "safe for requests the app may see twice: Envoy cannot know whether a reset request was processed.",
    lambda answer, data: _choice(answer, {"a": "a", "b": "b", "c": "c"}) == "b"))


# ------------------------------------------------------------------------------------ chapter 8

def _predict_canary_pods(answer: Any, data: Mapping[str, Any]) -> bool:
    n = _number(answer)
    got = int(_answered(_probe(data))["pod"].nunique())
    if n != got:
        raise _NotYet(f"You guessed {n:g} pod(s).")
    return True


exercise(Exercise(
    "8.predict-canary-pods",
    "Hash on `end-user` plus a 50/50 canary split between subsets v1 and v2: how many different pods "
    "answer jason's 20 requests?",
    "Which decision does Envoy take first for each request: the weighted destination, or the hash?",
    "Two — one v1 pod and the v2 pod. Envoy draws the weighted destination (a subset's cluster) for "
    "every request first, then hashes jason inside that cluster: the hash is sticky per subset, not "
    "across the split.",
    _predict_canary_pods, needs=("probe",), kind="prediction",
    measured=lambda d: f"{int(_answered(_probe(d))['pod'].nunique())} pod(s) answered jason: "
                       + ", ".join(sorted(_answered(_probe(d))["pod"].astype(str).unique())) + "."))


def _hash_cookie(answer: Any, data: Mapping[str, Any]) -> str:
    """Apply the learner's DestinationRule alone, send 12 requests for each of three sessions (a
    `session` cookie, no other header), judge: one pod per session; put the lab back."""
    lab = _lab(data)
    sessions = ("s-1", "s-2", "s-3")
    with lab.restoring():
        theirs = [o for o in lab.objects() if o.kind in ("DestinationRule", "VirtualService")]
        if theirs:
            lab.delete(theirs)
        applied = lab.apply(answer)
        if "DestinationRule" not in _kinds(applied):
            raise ValueError(f"Your YAML holds {', '.join(_kinds(applied)) or 'nothing'}; this exercise asks "
                             "for a DestinationRule.")
        got = {s: lab.probe("http://reviews:9080/", n=12, seed=1, headers={"cookie": f"session={s}"})
               for s in sessions}
    failed = {s: _got(df) for s, df in got.items() if list(_outcomes(df).index) != ["200"]}
    if failed:
        raise _NotYet("Not every request got 200: " + "; ".join(f"{s}: {g}" for s, g in failed.items()) + ".")
    pods = {s: sorted(df["pod"].astype(str).unique()) for s, df in got.items()}
    spread = [f"{s} reached {len(p)} pods" for s, p in pods.items() if len(p) > 1]
    if spread:
        raise _NotYet(", ".join(spread) + ": Envoy does not hash on the session cookie yet.")
    return "Each session stuck to one pod: " + ", ".join(f"{s} → {p[0]}" for s, p in pods.items()) + "."


exercise(Exercise(
    "8.hash-cookie",
    "Write a DestinationRule for host `reviews` that keeps each browser session on one pod by its "
    "`session` cookie. (The check applies it alone, sends 12 requests for each of three sessions, then "
    "puts the lab back.)",
    "`spec.trafficPolicy.loadBalancer.consistentHash.httpCookie` takes a `name` (and a `ttl`: with a ttl "
    "Envoy sets the cookie itself when a request has none).",
    "Envoy hashed each request's `session` cookie onto the ring of the cluster's endpoints: one session, "
    "one pod, as long as the pods stay the same — a pod added or removed moves only the sessions of its "
    "part of the ring.",
    _hash_cookie, needs=("lab",)))

exercise(Exercise(
    "8.failover-needs",
    "The DestinationRule asks for locality failover, yet every zone gets a third of the traffic. Why? "
    "(a), (b) or (c)?",
    "Compare the endpoint priorities the sidecar got with and without outlierDetection.",
    "(b): without outlierDetection Envoy could never tell that the local endpoints fail, so istiod "
    "writes no locality priorities at all (pilot/pkg/networking/core/loadbalancer) and every zone shares "
    "the traffic. Add outlierDetection to the same traffic policy.",
    lambda answer, data: _choice(answer, {"a": "a", "b": "b", "c": "c"}) == "b"))


# ------------------------------------------------------------------------------------ chapter 5

def _failures(df: pd.DataFrame) -> int:
    return int((pd.to_numeric(df["status"], errors="coerce").fillna(0) != 200).sum())


def _predict_dead_pod(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _number(answer)
    df = _probe(data)
    failed = _failures(df)
    if abs(guess - failed) > max(1, 0.1 * len(df)):
        raise _NotYet(f"You guessed {guess:g} failures; {failed} of {len(df)} failed.")
    return True


exercise(Exercise(
    "5.predict-dead-pod",
    "The v2 pod's process is dead, but it stays in the endpoints. Out of 30 requests, how many fail?",
    "What does Istio's default retry policy retry, and on which pod does a retry go?",
    "Envoy picked the dead pod for some requests, failed to connect (connect-failure) and retried on "
    "another pod (the previous_hosts predicate): the client saw 200 and `attempts` 2. Istio's default "
    "policy hides a dead pod — and only connection-level failures.",
    _predict_dead_pod, needs=("probe",), kind="prediction",
    measured=lambda d: f"{_got(_probe(d))}; "
    f"{int((pd.to_numeric(_probe(d)['attempts'], errors='coerce').fillna(0) > 1).sum())} needed more than one attempt."))


def _top_failure(df: pd.DataFrame) -> str:
    counts = _outcomes(df)
    bad = [label for label in counts.index if label != "200"]
    return bad[0] if bad else "200"


def _predict_per_try(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _choice(answer, {"200": "200", "retried": "200", "504": "504", "504 ut": "504", "ut": "504",
                             "503": "503"})
    seen = _top_failure(_probe(data))
    if not _same_outcome(guess, seen):
        raise _NotYet(f"You guessed {guess}; the requests the slow pod held got {seen}.")
    return True


exercise(Exercise(
    "5.predict-per-try",
    "perTryTimeout 100 ms, the route's retries left at Istio's retryOn: what do the requests that reach "
    "the slow pod get? (\"200\" if retried on another pod, \"504\" or \"503\")",
    "Which failures does the default retryOn list? Is a timeout among them?",
    "504 UT (upstream_per_try_timeout) after 100 ms: the attempt timed out, and Istio's default retryOn "
    "(connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes) does not retry a "
    "timeout. Envoy retries one only when retryOn has `5xx`, `gateway-error` or `reset`.",
    _predict_per_try, needs=("probe",), kind="prediction", measured=lambda d: _got(_probe(d)) + "."))


def _retry_block(objs: Iterable[Any]) -> list[Any]:
    return [r for o in objs if getattr(o, "kind", "") == "VirtualService" for r in o.spec.http or []]


def _fix_slow_pod(answer: Any, data: Mapping[str, Any]) -> str:
    """Apply the learner's VirtualService while one pod is slow; every request must get 200 within
    the route's timeout."""
    lab = _lab(data)
    with lab.restoring():
        applied = lab.apply(answer)
        rules = _retry_block(applied)
        if not rules:
            raise ValueError(f"Your YAML holds {', '.join(_kinds(applied)) or 'nothing'}; this exercise asks for "
                             "a VirtualService with an http rule.")
        df = lab.probe("http://reviews:9080/", n=20, seed=2)
    rule = rules[0]
    if not rule.timeout:
        raise _NotYet(f"{_got(df)} — but your rule sets no `timeout`: keep the route's 300ms.")
    limit = duration_seconds(rule.timeout) * 1000.0
    if limit > 300:
        raise _NotYet(f"{_got(df)} — but your timeout is {rule.timeout}: the exercise keeps it at 300ms or less.")
    counts = _outcomes(df)
    if list(counts.index) != ["200"]:
        hint = ""
        if "504 UT" in counts:
            hint = (" A 504 UT: an attempt (or the route) timed out and was not retried — is perTryTimeout "
                    "below the slow pod's 400 ms, and does retryOn name a timeout (gateway-error, 5xx or reset)?")
        raise _NotYet(f"{_got(df)}.{hint}")
    worst = float(pd.to_numeric(df["latency_ms"]).max())
    retried = int((pd.to_numeric(df["attempts"]) > 1).sum())
    return f"{_got(df)}; the slowest took {worst:.0f} ms; {retried} were retried on another pod."


exercise(Exercise(
    "5.fix-slow-pod",
    "One pod answers in 400 ms; the route's timeout is 300ms. Add retries to the VirtualService so that "
    "every request gets 200 within that timeout. (The check applies it, sends 20 requests, then puts the "
    "lab back.)",
    "`retries: {attempts: ..., perTryTimeout: ..., retryOn: ...}` inside the http rule: an attempt must "
    "give up well before 300 ms, and retryOn must name a timeout (`gateway-error` covers 504).",
    "A short perTryTimeout turns a slow pod into a fast failure, and `gateway-error` retries it on another "
    "pod (previous_hosts), all inside the route's timeout. The price: every request that met the slow pod "
    "took perTryTimeout longer, and the slow pod still did the work.",
    _fix_slow_pod, needs=("lab",)))


def _app_received(data: Mapping[str, Any]) -> tuple[int, int]:
    df, log = _probe(data), data["log"]
    return len(df), len(log)


def _predict_post(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _choice(answer, {"exactly 20": "exactly", "20": "exactly", "exactly": "exactly",
                             "more than 20": "more", "more": "more", "fewer than 20": "fewer", "fewer": "fewer",
                             "less": "fewer", "less than 20": "fewer"})
    sent, received = _app_received(data)
    seen = "exactly" if received == sent else ("more" if received > sent else "fewer")
    if guess != seen:
        raise _NotYet(f"You guessed {guess}; the app received {received} requests for {sent} POSTs.")
    return True


exercise(Exercise(
    "5.predict-post",
    "20 POSTs, retries on `5xx`, the pods fail half their requests: how many requests does the app receive? "
    "(\"exactly 20\", \"more than 20\" or \"fewer than 20\")",
    "Envoy retries an answered 5xx when retryOn says `5xx` — whatever the method.",
    "More than 20: every retry is another request the app receives and may execute. Envoy does not know a "
    "POST is unsafe to repeat; retryOn `5xx` retries it. Retry POSTs only on failures before the app saw "
    "them (connect-failure, refused-stream, reset-before-request).",
    _predict_post, needs=("probe", "log"), kind="prediction",
    measured=lambda d: f"the app received {_app_received(d)[1]} requests for {_app_received(d)[0]} POSTs."))


def _default_policy(config: Mapping[str, Any]) -> tuple[int, list[int]]:
    """(attempts, retriable status codes) of the sidecar's `default` route (Istio's own policy)."""
    routes = [r for r in config.get("routes", []) if r.get("route_name") == "default"]
    if not routes:
        raise TypeError("config= must be lab.envoy_config() of a lab with a Service and no VirtualService")
    r = routes[0]
    codes = r.get("retriable_status_codes")
    return int(r["num_retries"]) + 1, list(codes) if isinstance(codes, list) else []


def _default_retries(answer: Any, data: Mapping[str, Any]) -> bool:
    if not isinstance(answer, Mapping) or set(answer) != {"attempts", "retries 503"}:
        raise ValueError("Answer with a dict: {\"attempts\": a number, \"retries 503\": True or False}.")
    attempts, codes = _default_policy(data["config"])
    got_a = _number(answer["attempts"])
    right = []
    wrong = []
    (right if got_a == attempts else wrong).append("attempts")
    if not isinstance(answer["retries 503"], bool):
        raise ValueError("\"retries 503\" is True or False.")
    (right if answer["retries 503"] == (503 in codes) else wrong).append("retries 503")
    if wrong:
        raise _NotYet(_parts(right, wrong))
    return True


exercise(Exercise(
    "5.default-retries",
    "With no VirtualService, how many attempts at most does Envoy make for one request, and does it retry "
    "a 503 answered by the app?",
    "Read the `default` route's num_retries (retries after the first attempt) and retriable_status_codes in "
    "the table at the top of the chapter.",
    "num_retries is 2, so 3 attempts; retry_on lists retriable-status-codes but the list of codes is "
    "empty, so an app's 503 is passed through (since Istio 1.24; before, 503 was listed).",
    _default_retries, needs=("config",)))


# ------------------------------------------------------------------------------------ chapter 6

def _uo_share(df: pd.DataFrame) -> float:
    return float((_outcomes(df).get("503 UO", 0)) / max(len(df), 1))


def _predict_overflow(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _choice(answer, {"none": "none", "no": "none", "0": "none", "some": "some", "a few": "some",
                             "most": "most", "all": "most", "most of them": "most"})
    share = _uo_share(_probe(data))
    seen = "none" if share == 0 else ("most" if share >= 0.5 else "some")
    if guess != seen:
        raise _NotYet(f"You guessed {guess}; {share:.0%} got 503 UO.")
    return True


exercise(Exercise(
    "6.predict-overflow",
    "maxConnections 1, http1MaxPendingRequests 2, pods answering in 50 ms; 8 requests at a time: how many "
    "get 503 UO? (\"none\", \"some\" or \"most\")",
    "How many requests can be in flight on one connection (HTTP/1.1), and how many may wait?",
    "One connection carries one HTTP/1.1 request at a time and two may wait in the pending queue; every "
    "request beyond that is refused at once with 503 UO — no pod ever sees it, and Istio's default retry "
    "policy does not retry an overflow.",
    _predict_overflow, needs=("probe",), kind="prediction",
    measured=lambda d: f"at 8 at a time, {_got(_probe(d))}."))


def _fix_pool(answer: Any, data: Mapping[str, Any]) -> str:
    lab = _lab(data)
    with lab.restoring():
        applied = lab.apply(answer)
        drs = [o for o in applied if o.kind == "DestinationRule"]
        if not drs:
            raise ValueError(f"Your YAML holds {', '.join(_kinds(applied)) or 'nothing'}; this exercise asks for "
                             "a DestinationRule.")
        df = lab.probe("http://reviews:9080/", n=48, concurrency=8, seed=3)
    pool = drs[0].spec.traffic_policy.connection_pool if drs[0].spec.traffic_policy else None
    if pool is None or not ((pool.tcp and pool.tcp.max_connections) or (pool.http and (
            pool.http.http1_max_pending_requests or pool.http.http2_max_requests))):
        raise _NotYet(f"{_got(df)} — but without connectionPool limits nothing protects the pods: keep "
                      "maxConnections (or http1MaxPendingRequests) and size it.")
    if "503 UO" in _outcomes(df):
        raise _NotYet(f"{_got(df)}: the pool is still too small for 8 at a time — connections plus pending "
                      "requests must hold 8.")
    if list(_outcomes(df).index) != ["200"]:
        raise _NotYet(f"{_got(df)}.")
    return f"{_got(df)}, 8 at a time."


exercise(Exercise(
    "6.fix-pool",
    "Size the connection pool so that 8 requests at a time all get 200, keeping limits (a DestinationRule "
    "for `reviews` with connectionPool). The check sends 48 requests, 8 at a time, then puts the lab back.",
    "With HTTP/1.1 a connection carries one request at a time: maxConnections + http1MaxPendingRequests "
    "must hold all 8.",
    "A pool is a promise about the load you accept: size it to what the pods can serve, and the overflow "
    "(503 UO) is then the load you chose to shed, fast, instead of a queue that grows.",
    _fix_pool, needs=("lab",)))


def _after_ejection(df: pd.DataFrame) -> str:
    """The most frequent outcome of the last third of the probe (after the ejections)."""
    tail = df.sort_values("seq").iloc[-max(1, len(df) // 3):]
    return _top(tail)


def _predict_all_ejected(answer: Any, data: Mapping[str, Any]) -> bool:
    seen = _after_ejection(_probe(data))
    if not isinstance(answer, str):
        raise ValueError("Answer with an outcome in quotes, e.g. \"200\" or \"503 NC\".")
    if not _same_outcome(answer, seen) or (answer.strip().isdigit() and seen != answer.strip()):
        raise _NotYet(f"You guessed {answer}; once every pod was ejected the requests got {seen}.")
    return True


exercise(Exercise(
    "6.predict-all-ejected",
    "Every pod now fails, maxEjectionPercent is 100: once all are ejected, what do requests get (a status "
    "and a flag, e.g. \"503 NC\")?",
    "Would Envoy send to an ejected pod when no healthy one is left (panic mode)? What does Istio set?",
    "503 UH: with outlierDetection istiod sets the panic threshold to 0 % (minHealthPercent), so Envoy "
    "never falls back to the ejected pods — no healthy upstream. With Envoy's own default (50 %) it would "
    "have sent to all of them anyway.",
    _predict_all_ejected, needs=("probe",), kind="prediction",
    measured=lambda d: f"{_got(_probe(d))}; the last third got {_after_ejection(_probe(d))}."))


exercise(Exercise(
    "6.gateway-errors",
    "A pod answers 500 to everything. Which outlierDetection field ejects it: \"consecutive5xxErrors\" or "
    "\"consecutiveGatewayErrors\"?",
    "Which statuses does a gateway error cover?",
    "consecutive5xxErrors counts every 5xx (and connection failures); consecutiveGatewayErrors only 502, 503, "
    "504 and connection failures — a 500 is not a gateway error.",
    lambda a, d: _choice(a, {"consecutive5xxerrors": "5xx", "consecutive 5xx errors": "5xx",
                             "consecutivegatewayerrors": "gw", "consecutive gateway errors": "gw"}) == "5xx"))


# ------------------------------------------------------------------------------------ chapter 9

def _served_version(data: Mapping[str, Any]) -> str:
    ok = _answered(_probe(data))
    return str(ok["version"].astype(str).value_counts().index[0]) if len(ok) else "no answer"


def _predict_segment(answer: Any, data: Mapping[str, Any]) -> bool:
    guess = _choice(answer, {"v1": "v1", "v2": "v2"})
    if guess != _served_version(data):
        raise _NotYet(f"You guessed {guess}.")
    return True


exercise(Exercise(
    "9.predict-segment",
    "Through the HTTPRoute, which version serves `/wpcatalogue`? (\"v1\" or \"v2\"; chapter 3's VirtualService "
    "sent it to v2)",
    "A Gateway API PathPrefix compares whole path segments, not characters.",
    "v1: PathPrefix `/wpcatalog` matches `/wpcatalog` and `/wpcatalog/…` only — istiod writes Envoy's "
    "`path_separated_prefix` for it — so `/wpcatalogue` falls through to the last rule. A VirtualService "
    "`prefix` is a string prefix: the same request went to v2 in chapter 3.",
    _predict_segment, needs=("probe",), kind="prediction",
    measured=lambda d: f"{_got(_probe(d))}, answered by {_served_version(d)}."))

exercise(Exercise(
    "9.predict-missing-backend",
    "Service `reviews-v2` is deleted while the HTTPRoute still sends `/wpcatalog` to it: which status and Envoy "
    "flag does a request to `/wpcatalog` through the gateway get?",
    "Which cluster does the route name, and does Envoy have it? Then: what does the Gateway API say a "
    "route to an invalid backend must answer?",
    "500 NC: the route still names `outbound|9080||reviews-v2…`, which istiod no longer builds (NC), and istiod "
    "sets `cluster_not_found_response_code: 500` on every route it generates from an HTTPRoute — the Gateway "
    "API's rule for a backend that cannot be resolved. The same gap behind a VirtualService answers 503 NC.",
    _predict_outcome, needs=("probe",), kind="prediction", measured=lambda d: _got(_probe(d)) + "."))


def _convert(answer: Any, data: Mapping[str, Any]) -> str:
    """Replace chapter 3's VirtualService and DestinationRule with the learner's HTTPRoute, probe the
    mesh, judge the split and that HTTPRoute rules routed it, put the lab back."""
    from .charts import wilson_interval
    lab = _lab(data)
    with lab.restoring():
        old = [o for o in lab.objects() if o.kind in ("VirtualService", "DestinationRule") and o.name == "reviews"]
        if old:
            lab.delete(old)
        applied = lab.apply(answer)      # bad YAML: ManifestError (a ValueError) names file/line/field
        kinds = _kinds(applied)
        if "HTTPRoute" not in kinds:
            raise ValueError(f"Your YAML holds {', '.join(kinds) or 'nothing'}; this exercise asks for an HTTPRoute.")
        df = lab.probe("http://reviews:9080/", n=400, seed=1)
    counts = _outcomes(df)
    if "500 -" in counts or "500" in counts or "500 NC" in counts:
        raise _NotYet(f"{_got(df)}. 500: a rule without backends (or with weights adding up to 0) answers 500, and "
                      "so does a backendRef to a Service that does not exist — do your backendRefs name "
                      "`reviews-v1` and `reviews-v2`, port 9080?")
    if list(counts.index) != ["200"]:
        raise _NotYet(f"{_got(df)}.")
    routes = set(df["route"].astype(str))
    if not routes or any(r == "default" or not r for r in routes):
        raise _NotYet(f"{_got(df)}, but by Istio's default route: no HTTPRoute rule served them — is the parentRef "
                      "the Service `reviews` (group \"\", kind Service, port 9080)?")
    ok = _answered(df)
    k, n = int((ok["version"].astype(str) == "v2").sum()), len(ok)
    # a verdict, not a chart: at 95 % one right answer in twenty would be judged wrong; at 99.9 % one
    # in a thousand, and 400 requests still tell 20 % from 10 %, 30 %, 50 % or 80 %
    lo, hi = wilson_interval(k, n, confidence=0.999)
    if not lo <= 0.20 <= hi:
        raise _NotYet(f"Configured: {'; '.join(_backend_weights(applied)) or 'no backendRefs'}. "
                      f"Measured: {_backend_counts(ok)}. Chapter 3's split sends 20 % to v2; here v2 answered "
                      f"{k} of {n} ({_pct(k / n)}, 99.9 % band {_pct(lo)}–{_pct(hi)}), which rules 20 % out.")
    return f"{_got(df)}; v2 got {k} of {n} ({k / n:.0%}), through HTTPRoute rule(s) {', '.join(sorted(routes))}."


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def _backend_weights(objs: Iterable[Any]) -> list[str]:
    """Each HTTPRoute rule's backendRefs as configured, with the share each weight gives:
    `HTTPRoute reviews-mesh spec.rules[0]: reviews-v1 weight 80 (80 %), reviews-v2 weight 20 (20 %)`
    (a backendRef's weight defaults to 1, gateway-api's HTTPBackendRef)."""
    out = []
    for o in objs:
        m = o.to_manifest() if hasattr(o, "to_manifest") else {}
        if m.get("kind") != "HTTPRoute":
            continue
        for i, rule in enumerate((m.get("spec") or {}).get("rules") or []):
            refs = [(str(b.get("name")), int(b.get("weight", 1))) for b in rule.get("backendRefs") or []]
            total = sum(w for _, w in refs)
            each = ", ".join(f"{name} weight {w}" + (f" ({_pct(w / total)})" if total else "") for name, w in refs)
            out.append(f"HTTPRoute {m['metadata']['name']} spec.rules[{i}]: {each or 'no backendRefs'}")
    return out


def _backend_counts(ok: pd.DataFrame) -> str:
    """How many answered requests each backend Service's cluster got, and which versions answered:
    `reviews-v1 304 of 400 (76 %, version v1), reviews-v2 96 of 400 (24 %, version v2)`."""
    n = len(ok)
    if not n:
        return "no request was answered"
    parsed = [parse_cluster_name(str(c)) for c in ok["cluster"].fillna("")]
    backend = pd.Series([p.host.split(".")[0] if p else "?" for p in parsed], index=ok.index)
    out = []
    for name, k in backend.value_counts().items():
        versions = sorted(set(ok.loc[backend == name, "version"].fillna("").astype(str)) - {""})
        out.append(f"{name} {k} of {n} ({_pct(k / n)}" + (f", version {', '.join(versions)}" if versions else "") + ")")
    return ", ".join(out)


exercise(Exercise(
    "9.convert",
    "Convert chapter 3's VirtualService (80/20 to subsets v1/v2) and DestinationRule into Gateway API objects: "
    "an HTTPRoute for the mesh whose parentRef is the Service `reviews` (port 9080), with weighted backendRefs "
    "to the per-version Services. (The check removes the VirtualService and DestinationRule, applies yours, "
    "sends 400 requests to `http://reviews:9080/`, then puts the lab back.)",
    "A mesh route's parent is the Service: `parentRefs: [{group: \"\", kind: Service, name: reviews, port: 9080}]`. "
    "The subsets become Services (`reviews-v1`, `reviews-v2`, already applied), and each backendRef needs "
    "`name`, `port` and `weight`.",
    "The subsets' job moved to Services: a backendRef names a Service, so the versions each got their own, "
    "selecting the same pods. The VirtualService's weights became backendRef weights, and the HTTPRoute attached "
    "to the Service `reviews` (GAMMA) is what the clients' sidecars now follow.",
    _convert, needs=("lab",)))
