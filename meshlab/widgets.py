"""Interactive pieces of the course: a control, a live plotly chart, and the lab behind them.

Why ipywidgets + plotly FigureWidget: moving a slider re-applies real YAML to the lab, sends real
requests through Envoy and redraws the chart from the new probe — the learner changes one thing
and sees the consequence, which is the whole point of a lab. Each explorer is an `ipywidgets.VBox`
(so it displays by itself in JupyterLab) and also works headless: setting `explorer.slider.value`
from code runs the same re-probe synchronously, which is how the tests drive them.

The charts come from `meshlab.charts`, so a static figure and its live twin always agree.
Every explorer keeps its probes in `.results` (label → DataFrame) for exercises to judge.
"""

from __future__ import annotations

import copy
import html
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go
import yaml

from . import charts
from .backends.base import apply_steps, run_steps
from .exercises import Verdict, check

__all__ = ["WeightSlider", "ConnectionExplorer", "LoadBalancerPicker", "PushOrderRace", "ProbeExplorer",
           "FlowExplorer", "Quiz", "flow", "weight_slider", "connections", "lb_picker", "push_order", "requests", "quiz", "live"]


# ------------------------------------------------------------------------------------ plumbing

def live(fig: go.Figure) -> go.FigureWidget:
    """A FigureWidget twin of a static figure (to update in place later with `_redraw`)."""
    return go.FigureWidget(fig)


def _redraw(fw: go.FigureWidget, fig: go.Figure) -> None:
    """Copy a freshly drawn figure into a live widget.

    Same trace types in the same order → update them in place (the browser animates nothing,
    sees the data change, keeps its zoom); otherwise replace the traces.
    """
    with fw.batch_update():
        if [t.type for t in fw.data] == [t.type for t in fig.data]:
            for old, new in zip(fw.data, fig.data):
                old.update(new.to_plotly_json(), overwrite=True)
        else:
            fw.data = []
            fw.add_traces(list(fig.data))
        fw.layout = fig.layout


def _read_yaml(manifest: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """One manifest as a plain dict (a path to a single-document YAML file, or a dict).

    A file is validated by `meshlab.load` first, so a broken manifest fails here with the
    file, line and field, before any widget touches the lab.
    """
    from .manifests import load
    if isinstance(manifest, Mapping):
        load(dict(manifest))
        return copy.deepcopy(dict(manifest))
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest file (paths are relative to the notebook)")
    load(str(path))
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if len(docs) != 1:
        raise ValueError(f"{path}: expected exactly one object, found {len(docs)}")
    return docs[0]


class _Explorer(W.VBox):
    """Controls on top, a status line (⏳ while the lab works, ✔ or ✘ after), the live chart.

    Subclasses re-apply and re-probe in `set(...)`; errors from the lab land in the status line
    (the last good chart stays) so a slider never leaves a traceback in the middle of the page.
    """

    def __init__(self, controls: Sequence[W.Widget], figure: go.Figure, css: str) -> None:
        self.status = W.HTML(value="")
        self.figure = live(figure)
        self.results: dict[str, pd.DataFrame] = {}
        super().__init__([W.HBox(list(controls)), self.status, self.figure])
        self.add_class("meshlab-explorer")
        self.add_class(css)

    def chart(self) -> charts.Figure:
        """A static snapshot of the live chart (renders anywhere, e.g. in `make course` HTML)."""
        return charts.Figure(self.figure.to_dict())

    def _busy(self, text: str) -> float:
        self.status.value = f"<span style='color:#555'>⏳ {html.escape(text)}</span>"
        return time.perf_counter()

    def _done(self, started: float, text: str) -> None:
        self.status.value = (f"<span style='color:#2a7'>✔ {html.escape(text)} "
                             f"({time.perf_counter() - started:.1f} s)</span>")

    def _failed(self, err: Exception) -> None:
        self.status.value = f"<span style='color:#d62728'>✘ {html.escape(str(err))}</span>"


# ------------------------------------------------------------------------------------ chapter 3

class WeightSlider(_Explorer):
    """Move the weight of the second destination of a VirtualService; observed vs configured split.

    The VirtualService is read once from a real manifest (the same file a learner would
    `kubectl apply`); the slider edits `spec.http[rule].route[*].weight` in that in-memory copy
    (the file on disk is never written), applies the copy to the lab, probes and redraws
    `charts.split` with the configured weights and a Wilson band.
    """

    def __init__(self, lab: Any, manifest: str | Path | Mapping[str, Any], url: str, *, n: int = 200,
                 weight: int | None = None, rule: int = 0, step: int = 5, seed: int | None = 1,
                 **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.seed, self.probe_kw = lab, url, n, seed, probe_kw
        self.manifest = _read_yaml(manifest)
        self.rule = rule
        routes = self._routes()
        if len(routes) != 2:
            raise ValueError(f"VirtualService {self.manifest.get('metadata', {}).get('name')}: "
                             f"spec.http[{rule}].route needs exactly 2 destinations for a weight slider, "
                             f"found {len(routes)}")
        self.subsets = [str(r["destination"].get("subset") or r["destination"]["host"]) for r in routes]
        start = routes[1].get("weight", 0) if weight is None else weight
        self.slider = W.IntSlider(value=int(start), min=0, max=100, step=step, continuous_update=False,
                                  description=f"{self.subsets[1]} %", readout_format="d",
                                  layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-weight-slider")
        self.applied = W.HTML()
        super().__init__([self.slider, self.applied], go.Figure(), "meshlab-weights")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.slider.value)

    def _routes(self) -> list[dict[str, Any]]:
        try:
            return self.manifest["spec"]["http"][self.rule]["route"]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"VirtualService manifest has no spec.http[{self.rule}].route") from None

    def weights(self, weight: int) -> dict[str, int]:
        return {self.subsets[0]: 100 - int(weight), self.subsets[1]: int(weight)}

    def set(self, weight: int) -> None:
        """Apply weights (100-w, w), probe, redraw; the probe lands in `.results[str(weight)]`."""
        if self.slider.value != weight:
            self.slider.value = weight  # the observer calls set() again
            return
        routes = self._routes()
        for route, w in zip(routes, self.weights(weight).values()):
            route["weight"] = w
        started = self._busy(f"applying {self.subsets[0]} {100 - weight} / {self.subsets[1]} {weight} "
                             f"and sending {self.n} requests…")
        try:
            self.lab.apply(copy.deepcopy(self.manifest))
            df = self.lab.probe(self.url, n=self.n, seed=self.seed, **self.probe_kw)
        except Exception as e:  # show the lab's message in the widget, keep the last chart
            self._failed(e)
            return
        self.results[str(weight)] = df
        self.last = df
        _redraw(self.figure, charts.split(df, configured=self.weights(weight), by="subset"
                                          if self._by_subset(df) else "version"))
        self.applied.value = ("<code style='font-size:11px'>" + " · ".join(
            f"{s}: weight {w}" for s, w in self.weights(weight).items()) + "</code>")
        self._done(started, f"{len(df)} requests")

    @staticmethod
    def _by_subset(df: pd.DataFrame) -> bool:
        return "subset" in df and df["subset"].fillna("").astype(str).ne("").any()


def weight_slider(lab: Any, manifest: str | Path | Mapping[str, Any], url: str, **kw: Any) -> WeightSlider:
    """A live weight slider over a two-destination VirtualService manifest (see `WeightSlider`)."""
    return WeightSlider(lab, manifest, url, **kw)


# ------------------------------------------------------------------------------------ chapter 1

class ConnectionExplorer(_Explorer):
    """How many connections carry the same requests? 1, 2, 4… or a new one per request.

    Each choice probes the Service from a client without a sidecar (kube-proxy picks a pod per
    connection) and adds a bar to `charts.shares`, so the learner watches the per-pod share even
    out as connections multiply.
    """

    NEW_PER_REQUEST = "new per request"

    def __init__(self, lab: Any, url: str, *, n: int = 48, choices: Sequence[int | str] = (1, 2, 4, 8, "new per request"),
                 via: str = "none", seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.via, self.seed, self.probe_kw = lab, url, n, via, seed, probe_kw
        self.slider = W.SelectionSlider(options=[str(c) for c in choices], value=str(choices[0]),
                                        description="connections", continuous_update=False,
                                        layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-connections-slider")
        super().__init__([self.slider], go.Figure(), "meshlab-connections")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.slider.value)

    def set(self, choice: int | str) -> None:
        choice = str(choice)
        if self.slider.value != choice:
            self.slider.value = choice
            return
        if choice == self.NEW_PER_REQUEST:
            kw = dict(keepalive=False, concurrency=1)
        else:
            kw = dict(keepalive=True, concurrency=int(choice))
        started = self._busy(f"sending {self.n} requests over {choice} connection(s)…")
        try:
            df = self.lab.probe(self.url, n=self.n, via=self.via, seed=self.seed, **kw, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        label = f"{choice} conn" if choice != self.NEW_PER_REQUEST else choice
        self.results[label] = df
        ordered = {k: self.results[k] for k in sorted(self.results, key=_conn_order)}
        _redraw(self.figure, charts.shares(ordered, by="pod", title="Share per pod vs connections used"))
        self._done(started, f"{df['conn'].nunique()} connection(s), {df['pod'].nunique()} pod(s)")


def _conn_order(label: str) -> float:
    head = label.split(" ", 1)[0]
    return float(head) if head.isdigit() else float("inf")


def connections(lab: Any, url: str, **kw: Any) -> ConnectionExplorer:
    """A live 'connections used' slider for a client without a sidecar (see `ConnectionExplorer`)."""
    return ConnectionExplorer(lab, url, **kw)


# ------------------------------------------------------------------------------------ chapter 2

class LoadBalancerPicker(_Explorer):
    """Pick a DestinationRule `loadBalancer.simple` policy; compare pod shares across policies.

    The DestinationRule comes from a real manifest; the picker rewrites
    `spec.trafficPolicy.loadBalancer.simple`, applies it, probes with some concurrency (LEAST_REQUEST
    only differs when requests overlap) and adds the policy's bar to the chart.
    """

    def __init__(self, lab: Any, manifest: str | Path | Mapping[str, Any], url: str, *, n: int = 120,
                 concurrency: int = 4, policies: Sequence[str] = ("ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"),
                 seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.concurrency, self.seed, self.probe_kw = lab, url, n, concurrency, seed, probe_kw
        self.manifest = _read_yaml(manifest)
        self.picker = W.ToggleButtons(options=list(policies), value=None, description="policy")
        self.picker.add_class("meshlab-lb-picker")
        self.run_all = W.Button(description="compare all", icon="play")
        super().__init__([self.picker, self.run_all], go.Figure(), "meshlab-lb")
        self.picker.observe(lambda change: change["new"] and self.set(change["new"]), names="value")
        self.run_all.on_click(lambda _b: self.compare())

    def set(self, policy: str) -> None:
        if self.picker.value != policy:
            self.picker.value = policy
            return
        spec = self.manifest.setdefault("spec", {})
        spec.setdefault("trafficPolicy", {})["loadBalancer"] = {"simple": policy}
        started = self._busy(f"applying loadBalancer {policy}, sending {self.n} requests "
                             f"({self.concurrency} at a time)…")
        try:
            self.lab.apply(copy.deepcopy(self.manifest))
            df = self.lab.probe(self.url, n=self.n, concurrency=self.concurrency, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[policy] = df
        _redraw(self.figure, charts.shares(self.results, by="pod", title="Share per pod, per load-balancing policy"))
        self._done(started, f"{policy}: median latency {df['latency_ms'].median():.0f} ms")

    def compare(self) -> None:
        """Measure every policy in turn (what the 'compare all' button does); see `.results`."""
        for policy in self.picker.options:
            self.picker.value = None
            self.set(policy)


def lb_picker(lab: Any, manifest: str | Path | Mapping[str, Any], url: str, **kw: Any) -> LoadBalancerPicker:
    """A live load-balancing policy picker over a DestinationRule manifest (see `LoadBalancerPicker`)."""
    return LoadBalancerPicker(lab, manifest, url, **kw)


# ------------------------------------------------------------------------------------ chapter 4

class PushOrderRace(_Explorer):
    """Apply a VirtualService and its DestinationRule in a chosen order while traffic flows.

    `run(order)` calls `runner(order)`, which returns `(probe, events)` — the rows taken during
    the change and `{label: seconds since the probe started}` for when each object landed — and
    draws `charts.timeline`. `push_order(lab, url, before=, change=)` builds the runner for a lab.
    """

    ORDERS = {"VirtualService first (unsafe)": ["VirtualService", "DestinationRule"],
              "DestinationRule first (safe)": ["DestinationRule", "VirtualService"]}

    def __init__(self, runner: Callable[[list[str]], tuple[pd.DataFrame, Mapping[str, float]]]) -> None:
        self.runner = runner
        self.events: dict[str, dict[str, float]] = {}
        self.picker = W.ToggleButtons(options=list(self.ORDERS), value=None, description="order")
        self.picker.add_class("meshlab-order-picker")
        super().__init__([self.picker], go.Figure(), "meshlab-order")
        self.picker.observe(lambda change: change["new"] and self.run(change["new"]), names="value")

    def run(self, order: str) -> None:
        if order not in self.ORDERS:
            raise ValueError(f"order must be one of {list(self.ORDERS)}, got {order!r}")
        if self.picker.value != order:
            self.picker.value = order
            return
        started = self._busy(f"applying {' then '.join(self.ORDERS[order])} while sending requests…")
        try:
            df, events = self.runner(self.ORDERS[order])
        except Exception as e:
            self._failed(e)
            return
        self.results[order] = df
        self.events[order] = dict(events)
        _redraw(self.figure, charts.timeline(df, events=events, title=order))
        bad = int((df["status"] == 503).sum())
        self._done(started, f"{len(df)} requests, {bad} × 503")


class _OrderRunner:
    """Reset to `before`, start steady traffic, apply `change` one kind at a time, `gap` s apart.

    Each kind is applied with its own `lab.apply` call so the moment it landed is known; that
    moment is read off the probe itself (the time of the latest request answered so far), so the
    event lines sit on the probe's own clock.
    """

    def __init__(self, lab: Any, url: str, before: Any, change: Any, *, gap: float, rate: float,
                 lead: float, tail: float, settle: float, **probe_kw: Any) -> None:
        from .manifests import load
        self.lab, self.url, self.gap, self.rate = lab, url, gap, rate
        self.lead, self.tail, self.settle, self.probe_kw = lead, tail, settle, probe_kw
        self.before = before
        self.change = load(change)

    def __call__(self, order: list[str]) -> tuple[pd.DataFrame, dict[str, float]]:
        self.lab.apply(self.before)
        time.sleep(self.settle)
        events: dict[str, float] = {}
        with self.lab.probing(self.url, rate=self.rate, **self.probe_kw) as run:
            time.sleep(self.lead)

            def step(group: list[Any]) -> None:
                snap = run.snapshot()
                self.lab.apply(group)
                events[f"{group[0].kind} applied"] = float(snap["t"].max()) if len(snap) else 0.0
            run_steps(apply_steps(self.change, order), self.gap, step)   # the steps every backend applies in
            time.sleep(self.tail)
        return run.result(), events


def push_order(lab: Any, url: str, *, before: Any, change: Any, gap: float = 0.5, rate: float = 200.0,
               lead: float = 0.3, tail: float = 0.4, settle: float = 0.2, **probe_kw: Any) -> PushOrderRace:
    """A live 'which order do I apply them in?' timeline.

    `before` (paths/YAML) is applied first to reset the lab; then, while `rate` requests per
    second flow to `url`, the objects of `change` are applied kind by kind in the chosen order,
    `gap` seconds apart (istiod pushes faster, but the window is the same in kind, only shorter).
    """
    return PushOrderRace(_OrderRunner(lab, url, before, change, gap=gap, rate=rate, lead=lead,
                                      tail=tail, settle=settle, **probe_kw))


class ProbeExplorer(_Explorer):
    """How many requests before the shares settle? A slider for `n`, the per-pod chart below."""

    def __init__(self, lab: Any, url: str, *, n: int = 20, max_n: int = 400, seed: int | None = 1,
                 **probe_kw: Any) -> None:
        self.lab, self.url, self.seed, self.probe_kw = lab, url, seed, probe_kw
        self.slider = W.IntSlider(value=n, min=10, max=max_n, step=10, continuous_update=False,
                                  description="requests", layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-requests-slider")
        super().__init__([self.slider], go.Figure(), "meshlab-probe")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.slider.value)

    def set(self, n: int) -> None:
        if self.slider.value != n:
            self.slider.value = n
            return
        started = self._busy(f"sending {n} requests…")
        try:
            df = self.lab.probe(self.url, n=n, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[str(n)] = df
        _redraw(self.figure, charts.pod_share(df))
        self._done(started, f"{n} requests, {df['pod'].nunique()} pod(s)")


def requests(lab: Any, url: str, **kw: Any) -> ProbeExplorer:
    """A live 'number of requests' slider over the per-pod share (see `ProbeExplorer`)."""
    return ProbeExplorer(lab, url, **kw)


class FlowExplorer(_Explorer):
    """Type a path (or pick one): which route, which cluster, which pod — or which failure.

    Each path is probed through the client's sidecar and drawn with `charts.flow`, so matching
    rules stop being prose: `/wpcatalogue` visibly takes the `/wpcatalog` route.
    """

    def __init__(self, lab: Any, base_url: str, *, paths: Sequence[str] = ("/",), n: int = 20,
                 seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.base_url, self.n, self.seed, self.probe_kw = lab, base_url.rstrip("/"), n, seed, probe_kw
        self.path = W.Combobox(value=paths[0], options=list(paths), ensure_option=False,
                               description="path", continuous_update=False, layout=W.Layout(width="420px"))
        self.path.add_class("meshlab-path-input")
        super().__init__([self.path], go.Figure(), "meshlab-flow")
        self.path.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.path.value)

    def set(self, path: str) -> None:
        if not path.startswith("/"):
            self.status.value = "<span style='color:#d62728'>✘ a path starts with /</span>"
            return
        if self.path.value != path:
            self.path.value = path
            return
        url = self.base_url + path
        started = self._busy(f"sending {self.n} requests to {url}…")
        try:
            df = self.lab.probe(url, n=self.n, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[path] = df
        host = url.split("//", 1)[-1]
        _redraw(self.figure, charts.flow(df, host=host))
        summary = ", ".join(f"{k} × {v}" for k, v in charts.outcome(df).value_counts().items())
        self._done(started, summary)


def flow(lab: Any, base_url: str, **kw: Any) -> FlowExplorer:
    """A live request-flow diagram for any path you type (see `FlowExplorer`)."""
    return FlowExplorer(lab, base_url, **kw)


# ------------------------------------------------------------------------------------ exercises

class Quiz(W.VBox):
    """A multiple-choice exercise: options + a Check button; judged by `meshlab.check`."""

    def __init__(self, exercise_id: str, options: Sequence[str], **data: Any) -> None:
        from .exercises import EXERCISES  # validated here so a typo fails at display time
        if exercise_id not in EXERCISES:
            raise KeyError(f"no exercise {exercise_id!r}")
        self.exercise_id, self.data = exercise_id, data
        self.choice = W.RadioButtons(options=list(options), value=None, layout=W.Layout(width="auto"))
        self.button = W.Button(description="Check", icon="check")
        self.result = W.HTML()
        self.verdict: Verdict | None = None
        super().__init__([W.HTML(f"<b>{html.escape(EXERCISES[exercise_id].question)}</b>"),
                          self.choice, self.button, self.result])
        self.add_class("meshlab-quiz")
        self.button.on_click(lambda _b: self.submit())

    def submit(self) -> Verdict:
        self.verdict = check(self.exercise_id, self.choice.value, **self.data)
        self.result.value = self.verdict._repr_html_()
        return self.verdict


def quiz(exercise_id: str, options: Sequence[str], **data: Any) -> Quiz:
    """A multiple-choice widget for an exercise (see `Quiz`)."""
    return Quiz(exercise_id, options, **data)
