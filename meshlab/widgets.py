"""Interactive pieces of the course: a control, a live plotly chart, and the lab behind them.

Why ipywidgets with plotly charts: moving a slider re-applies real YAML to the lab, sends real
requests through Envoy and redraws the chart from the new probe — the learner changes one thing
and sees the consequence, which is the whole point of a lab. Each explorer is an `ipywidgets.VBox`
(so it displays by itself in JupyterLab) whose chart is an `ipywidgets.Output` holding the
current `charts.Figure` (see `_Explorer._draw`), and it also works headless: setting `explorer.slider.value`
from code runs the same re-probe synchronously, which is how the tests drive them.

The charts come from `meshlab.charts`, so a static figure and its live twin always agree.
Every explorer keeps its probes in `.results` (label → DataFrame) for exercises to judge.

Widgets on one lab never change each other, nor what the chapter's later cells see: an explorer
that applies YAML measures inside `lab.restoring()`, so after each measurement the lab holds
exactly the objects it held before. Each explorer says which objects it changes and shows the
lab's objects and pods it measured against, refreshed on every move. A closed lab stays closed:
the widget's status line then says how to start a new one (`Lab.CLOSED_MESSAGE`), and
`close_button(lab)` is the one obvious way to close it that Run All never presses.

In a static page (`make course`) a widget has no kernel; it shows what it showed when the page
was made (`text/html` next to the widget view: its scope, status and chart).
"""

from __future__ import annotations

import contextlib
import copy
import html
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
           "FlowExplorer", "TimeoutSlider", "ConcurrencySlider", "Quiz", "LabCloser", "flow", "weight_slider",
           "connections", "lb_picker", "push_order", "requests", "timeout_slider", "concurrency_slider", "quiz",
           "close_button"]


# ------------------------------------------------------------------------------------ plumbing

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


#: Toggle buttons as wide as their labels ("VirtualService first (unsafe)" is not cut short).
_WIDE_BUTTONS = {"button_width": "auto"}
#: The order objects are listed in a widget's "runs against" line: what exists, then the rules.
_KIND_ORDER = ("Service", "ServiceEntry", "DestinationRule", "VirtualService", "Gateway")


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name')}"


def _describe(obj: Mapping[str, Any]) -> str:
    """One object in a few words: `DestinationRule default/reviews (subsets v1, v2)`."""
    spec = obj.get("spec") or {}
    kind, details = obj.get("kind"), []
    if kind == "Service":
        details.append("ports " + ", ".join(str(p.get("port")) for p in spec.get("ports") or []))
    elif kind == "DestinationRule":
        subsets = [s.get("name") for s in spec.get("subsets") or []]
        if subsets:
            details.append("subsets " + ", ".join(map(str, subsets)))
        lb = ((spec.get("trafficPolicy") or {}).get("loadBalancer") or {}).get("simple")
        if lb:
            details.append(f"loadBalancer {lb}")
    elif kind == "VirtualService":
        rules = len(spec.get("http") or [])
        details.append(f"{rules} http rule{'s' if rules != 1 else ''}")
        if spec.get("gateways"):
            details.append("gateways " + ", ".join(spec["gateways"]))
    elif kind == "ServiceEntry":
        details.append("hosts " + ", ".join(spec.get("hosts") or []))
    return _ref(obj) + (f" ({'; '.join(details)})" if details else "")


def _manifest(obj: Any) -> dict[str, Any]:
    return obj.to_manifest() if hasattr(obj, "to_manifest") else dict(obj)


class _Explorer(W.VBox):
    """Controls on top, what it changes and runs against, a status line, the live chart.

    The status line shows ⏳ while the lab works, ✔ or ✘ after. Subclasses re-apply and
    re-probe in `set(...)` inside `self._trial()`; errors from the lab land in the status line
    (the last good chart stays) so a slider never leaves a traceback in the middle of the page.
    `changes` names the objects the explorer applies (`["VirtualService default/reviews"]`);
    empty means it only sends requests.
    """

    def __init__(self, lab: Any, controls: Sequence[W.Widget], figure: go.Figure, css: str, *,
                 changes: Sequence[str] = ()) -> None:
        self.lab = lab
        self.changes = list(changes)
        self.scope = W.HTML(value="")
        self.scope.add_class("meshlab-scope")
        self.status = W.HTML(value="")
        self.status.add_class("meshlab-status")
        self.figure = charts.Figure(figure)     # the chart as last drawn
        self.view = W.Output()                   # where it shows (see `_draw`)
        self.view.add_class("meshlab-chart-view")
        self.results: dict[str, pd.DataFrame] = {}
        super().__init__([W.HBox(list(controls)), self.scope, self.status, self.view])
        self._draw(self.figure)
        self.add_class("meshlab-explorer")
        self.add_class(css)

    def _draw(self, fig: go.Figure) -> None:
        """Show a freshly drawn chart: the widget's output becomes that figure (plotly's mimetype,
        which JupyterLab draws). Why not a plotly FigureWidget updated in place: its changes are
        one-shot messages (`_py2js_*`) that a browser view still loading or drawing drops — just
        what Run All does — and the chart stayed empty (plotly.py #4956); each new FigureWidget
        also sends plotly's 4.8 MB script again. An Output widget's `outputs` is synced state:
        whenever the view draws, it draws the latest chart."""
        self.figure = charts.Figure(fig)
        self.view.outputs = ({"output_type": "display_data", "data": self.figure.mimebundle(), "metadata": {}},)

    def chart(self) -> charts.Figure:
        """A static snapshot of the live chart (renders anywhere, e.g. in `make course` HTML)."""
        return charts.Figure(self.figure.to_dict())

    @contextlib.contextmanager
    def _trial(self) -> Iterator[None]:
        """Measure on the lab as it is now, and leave it so: with `changes`, inside
        `lab.restoring()`, which puts the lab's own objects back afterwards."""
        self._show_scope()
        if not self.changes:
            yield
            return
        with self.lab.restoring():
            yield

    def _show_scope(self) -> None:
        """Refresh the 'changes … / runs against …' lines from the lab as it is right now."""
        if self.changes:
            changes = ("<b>changes</b> " + ", ".join(html.escape(c) for c in self.changes)
                       + " — only while it measures; then the lab's own objects are put back, so the "
                         "cells below see what the text says")
        else:
            changes = "<b>changes</b> nothing — it only sends requests"
        self.scope.value = (f"<div style='font-size:12px;color:#555;line-height:1.4'>✎ {changes}<br>"
                            f"▸ <b>runs against</b> {html.escape(self._runs_against())}</div>")

    def _runs_against(self) -> str:
        objs = [_manifest(o) for o in self.lab.objects()]
        objs = sorted((o for o in objs if o.get("kind") in _KIND_ORDER),
                      key=lambda o: (_KIND_ORDER.index(o["kind"]), _ref(o)))
        parts = [_describe(o) for o in objs] or ["no Service or Istio object"]
        pods = self.lab.pods()
        if len(pods):
            unready = [str(n) for n, r in zip(pods["name"], pods["ready"]) if not r]
            parts.append(f"{len(pods)} pods, " + (f"not ready: {', '.join(unready)}" if unready else "all ready"))
        return " · ".join(parts)

    def _busy(self, text: str) -> float:
        self.status.value = f"<span style='color:#555'>⏳ {html.escape(text)}</span>"
        return time.perf_counter()

    def _done(self, started: float, text: str) -> None:
        self.status.value = (f"<span style='color:#2a7'>✔ {html.escape(text)} "
                             f"({time.perf_counter() - started:.1f} s)</span>")

    def _failed(self, err: Exception) -> None:
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(err)))   # `code` as in Markdown
        self.status.value = f"<span style='color:#d62728'>✘ {text}</span>"

    def _repr_mimebundle_(self, **kw: Any) -> dict[str, Any] | None:
        """The widget view for JupyterLab, plus `text/html` for pages without a kernel."""
        data = super()._repr_mimebundle_(**kw)
        if data is not None:
            data["text/html"] = self._static_html()
        return data

    def _static_html(self) -> str:
        chart = (charts.static_html(self.chart()) if self.results else
                 "<p><i>Nothing measured yet when this page was made.</i></p>")
        return ("<div class='meshlab-static-widget' style='border-left:3px solid #ccc;padding-left:8px'>"
                "<p style='font-size:12px;color:#555'><i>🖱️ A live widget: in JupyterLab it changes the lab "
                "when you move it. This page shows what it showed when the page was made.</i></p>"
                f"{self.scope.value}{self.status.value}{chart}</div>")


# ------------------------------------------------------------------------------------ chapter 3

class WeightSlider(_Explorer):
    """Move the weight of the second destination of a VirtualService; observed vs configured split.

    The VirtualService is read once from a real manifest (the same file a learner would
    `kubectl apply`); the slider edits `spec.http[rule].route[*].weight` in that in-memory copy
    (the file on disk is never written), applies the copy to the lab, probes and redraws
    `charts.split` with the configured weights and a Wilson band. The lab's own VirtualService
    of that name (if any) is put back after each measurement.
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
        super().__init__(lab, [self.slider, self.applied], go.Figure(), "meshlab-weights",
                         changes=[_ref(self.manifest)])
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
            with self._trial():
                self.lab.apply(copy.deepcopy(self.manifest))
                df = self.lab.probe(self.url, n=self.n, seed=self.seed, **self.probe_kw)
        except Exception as e:  # show the lab's message in the widget, keep the last chart
            self._failed(e)
            return
        self.results[str(weight)] = df
        self.last = df
        self._draw(charts.split(df, configured=self.weights(weight), by="subset"
                                          if self._by_subset(df) else "version"))
        self.applied.value = ("<code style='font-size:11px'>" + " · ".join(
            f"{s}: weight {w}" for s, w in self.weights(weight).items()) + "</code>")
        self._done(started, charts.outcome_summary(df))

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
        super().__init__(lab, [self.slider], go.Figure(), "meshlab-connections")
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
            with self._trial():
                pods = self.lab.pods()
                df = self.lab.probe(self.url, n=self.n, via=self.via, seed=self.seed, **kw, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        label = f"{choice} conn" if choice != self.NEW_PER_REQUEST else choice
        self.results[label] = df
        ordered = {k: self.results[k] for k in sorted(self.results, key=_conn_order)}
        self._draw(charts.shares(ordered, by="pod", title="Share per pod vs connections used",
                                           pods=pods))
        self._done(started, f"{df['conn'].nunique()} connection(s) carried {len(df)} requests; "
                            f"{df['pod'].nunique()} pod(s) answered")


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
        self.picker = W.ToggleButtons(options=list(policies), value=None, description="policy",
                                      style=_WIDE_BUTTONS)
        self.picker.add_class("meshlab-lb-picker")
        self.run_all = W.Button(description="compare all", icon="play", layout=W.Layout(width="auto"))
        super().__init__(lab, [self.picker, self.run_all], go.Figure(), "meshlab-lb",
                         changes=[_ref(self.manifest)])
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
            with self._trial():
                self.lab.apply(copy.deepcopy(self.manifest))
                df = self.lab.probe(self.url, n=self.n, concurrency=self.concurrency, seed=self.seed,
                                    **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[policy] = df
        self._draw(charts.shares(self.results, by="pod", title="Share per pod, per load-balancing policy"))
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

    def __init__(self, runner: Callable[[list[str]], tuple[pd.DataFrame, Mapping[str, float]]], lab: Any,
                 changes: Sequence[str] = ()) -> None:
        self.runner = runner
        self.events: dict[str, dict[str, float]] = {}
        self.picker = W.ToggleButtons(options=list(self.ORDERS), value=None, description="order",
                                      style=_WIDE_BUTTONS)
        self.picker.add_class("meshlab-order-picker")
        super().__init__(lab, [self.picker], go.Figure(), "meshlab-order", changes=changes)
        self.picker.observe(lambda change: change["new"] and self.run(change["new"]), names="value")

    def run(self, order: str) -> None:
        if order not in self.ORDERS:
            raise ValueError(f"order must be one of {list(self.ORDERS)}, got {order!r}")
        if self.picker.value != order:
            self.picker.value = order
            return
        started = self._busy(f"applying {' then '.join(self.ORDERS[order])} while sending requests…")
        try:
            with self._trial():
                df, events = self.runner(self.ORDERS[order])
        except Exception as e:
            self._failed(e)
            return
        self.results[order] = df
        self.events[order] = dict(events)
        self._draw(charts.timeline(df, events=events, title=order))
        self._done(started, charts.outcome_summary(df))


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
        self.before = load(before)
        self.change = load(change)

    def touches(self) -> list[str]:
        """The objects a run applies (`before` and `change`), as `Kind namespace/name`."""
        seen: dict[str, None] = {}
        for o in [*self.before, *self.change]:
            seen.setdefault(f"{o.kind} {o.namespace or 'default'}/{o.name}")
        return list(seen)

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
    After each run the lab's own objects are put back (`Lab.restoring`).
    """
    runner = _OrderRunner(lab, url, before, change, gap=gap, rate=rate, lead=lead, tail=tail, settle=settle,
                          **probe_kw)
    return PushOrderRace(runner, lab, changes=runner.touches())


class ProbeExplorer(_Explorer):
    """How many requests before the shares settle? A slider for `n`, the per-pod chart below."""

    def __init__(self, lab: Any, url: str, *, n: int = 20, max_n: int = 400, seed: int | None = 1,
                 **probe_kw: Any) -> None:
        self.lab, self.url, self.seed, self.probe_kw = lab, url, seed, probe_kw
        self.slider = W.IntSlider(value=n, min=10, max=max_n, step=10, continuous_update=False,
                                  description="requests", layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-requests-slider")
        super().__init__(lab, [self.slider], go.Figure(), "meshlab-probe")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.slider.value)

    def set(self, n: int) -> None:
        if self.slider.value != n:
            self.slider.value = n
            return
        started = self._busy(f"sending {n} requests…")
        try:
            with self._trial():
                pods = self.lab.pods()
                df = self.lab.probe(self.url, n=n, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[str(n)] = df
        self._draw(charts.pod_share(df, pods=pods))
        self._done(started, f"{charts.outcome_summary(df)}; {df['pod'].nunique()} pod(s) answered")


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
        super().__init__(lab, [self.path], go.Figure(), "meshlab-flow")
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
            with self._trial():
                df = self.lab.probe(url, n=self.n, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[path] = df
        host = url.split("//", 1)[-1]
        self._draw(charts.flow(df, host=host))
        self._done(started, charts.outcome_summary(df))


def flow(lab: Any, base_url: str, **kw: Any) -> FlowExplorer:
    """A live request-flow diagram for any path you type (see `FlowExplorer`)."""
    return FlowExplorer(lab, base_url, **kw)


# ------------------------------------------------------------------------------------ chapter 7

__all__ += ["RequestGapExplorer", "HashPicker", "request_gap", "hash_picker"]


class RequestGapExplorer(_Explorer):
    """How long between two requests? A slider for the interval; `charts.race_window` collects
    what the requests got at every interval tried, so the keep-alive race window draws itself.

    Each move sends `n` requests at one every `interval` ms (`lab.probe(rate=1000/interval)`); it
    changes no object. `keepalive_ms` / `idle_timeout_ms` are drawn as lines (the app's keep-alive
    timeout, the DestinationRule's idleTimeout) — pass what the manifests say.
    """

    def __init__(self, lab: Any, url: str, *, keepalive_ms: float | None = None,
                 idle_timeout_ms: float | None = None, n: int = 12, interval: int = 40, min_ms: int = 10,
                 max_ms: int = 250, step: int = 5, seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.seed, self.probe_kw = lab, url, n, seed, probe_kw
        self.keepalive_ms, self.idle_timeout_ms = keepalive_ms, idle_timeout_ms
        self.slider = W.IntSlider(value=interval, min=min_ms, max=max_ms, step=step, continuous_update=False,
                                  description="ms between", layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-gap-slider")
        super().__init__(lab, [self.slider], go.Figure(), "meshlab-gap")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.set(self.slider.value)

    def set(self, interval: int) -> None:
        """Send `n` requests `interval` ms apart; the probe lands in `.results[f"{interval} ms"]`."""
        if self.slider.value != interval:
            self.slider.value = interval
            return
        started = self._busy(f"sending {self.n} requests, one every {interval} ms…")
        try:
            with self._trial():
                df = self.lab.probe(self.url, n=self.n, rate=1000.0 / interval, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[f"{interval} ms"] = df
        ordered = dict(sorted(self.results.items(), key=lambda kv: float(kv[0].split()[0])))
        self._draw(charts.race_window(ordered, keepalive_ms=self.keepalive_ms,
                                                idle_timeout_ms=self.idle_timeout_ms))
        self._done(started, f"one every {interval} ms: {charts.outcome_summary(df)}")


def request_gap(lab: Any, url: str, **kw: Any) -> RequestGapExplorer:
    """A live 'time between requests' slider over `charts.race_window` (see `RequestGapExplorer`)."""
    return RequestGapExplorer(lab, url, **kw)


# ------------------------------------------------------------------------------------ chapter 8

class HashPicker(_Explorer):
    """Pick what Envoy hashes on (a DestinationRule's `loadBalancer.consistentHash`): which pod
    each user's requests reach.

    The DestinationRule comes from a real manifest; the picker rewrites
    `spec.trafficPolicy.loadBalancer`, applies it, and sends `n` requests as each user — a user
    sends its name in the `end-user` header and in a `session` cookie — then draws one bar per
    user (`charts.shares`). The lab's own DestinationRule is put back after each measurement.
    """

    KEYS: dict[str, dict[str, Any] | None] = {
        "no hash": None,
        "header end-user": {"httpHeaderName": "end-user"},
        "cookie session": {"httpCookie": {"name": "session", "ttl": "0s"}},
        "source IP": {"useSourceIp": True},
    }

    def __init__(self, lab: Any, manifest: str | Path | Mapping[str, Any], url: str, *,
                 users: Sequence[str] = ("jason", "ana", "li"), n: int = 12, seed: int | None = 1,
                 **probe_kw: Any) -> None:
        self.lab, self.url, self.users, self.n, self.seed, self.probe_kw = lab, url, list(users), n, seed, probe_kw
        self.manifest = _read_yaml(manifest)
        self.picker = W.ToggleButtons(options=list(self.KEYS), value=None, description="hash on",
                                      style=_WIDE_BUTTONS)
        self.picker.add_class("meshlab-hash-picker")
        super().__init__(lab, [self.picker], go.Figure(), "meshlab-hash", changes=[_ref(self.manifest)])
        self.picker.observe(lambda change: change["new"] and self.set(change["new"]), names="value")

    def set(self, key: str) -> None:
        """Hash on `key` (one of `KEYS`), probe as every user; `.results[f"{key}: {user}"]`."""
        if key not in self.KEYS:
            raise ValueError(f"key must be one of {list(self.KEYS)}, got {key!r}")
        if self.picker.value != key:
            self.picker.value = key
            return
        policy = self.KEYS[key]
        tp = self.manifest.setdefault("spec", {}).setdefault("trafficPolicy", {})
        tp["loadBalancer"] = {"consistentHash": copy.deepcopy(policy)} if policy else {"simple": "LEAST_REQUEST"}
        started = self._busy(f"applying {key}, sending {self.n} requests as each of {', '.join(self.users)}…")
        try:
            with self._trial():
                self.lab.apply(copy.deepcopy(self.manifest))
                pods = self.lab.pods()
                by_user = {u: self.lab.probe(self.url, n=self.n, seed=self.seed, **self.probe_kw,
                                             headers={"end-user": u, "cookie": f"session={u}"})
                           for u in self.users}
        except Exception as e:
            self._failed(e)
            return
        for u, df in by_user.items():
            self.results[f"{key}: {u}"] = df
        self._draw(charts.shares(by_user, by="pod", pods=pods,
                                           title=f"Which pod each user reached — hash on: {key}"))
        spread = ", ".join(f"{u} {df['pod'].nunique()}" for u, df in by_user.items())
        self._done(started, f"{key}: pods per user — {spread}")


def hash_picker(lab: Any, manifest: str | Path | Mapping[str, Any], url: str, **kw: Any) -> HashPicker:
    """A live consistent-hash key picker over a DestinationRule manifest (see `HashPicker`)."""
    return HashPicker(lab, manifest, url, **kw)
# ------------------------------------------------------------------------------------ chapter 5

class TimeoutSlider(_Explorer):
    """Move a VirtualService rule's `retries.perTryTimeout`; see how long each request took, with
    the per-try timeout and the route's timeout drawn on the latency chart.

    The VirtualService comes from a real manifest; the slider rewrites
    `spec.http[rule].retries.perTryTimeout` in an in-memory copy, applies it, probes, and redraws
    `charts.latency_timeouts`. The lab's own objects are put back after each measurement.
    """

    def __init__(self, lab: Any, manifest: str | Path | Mapping[str, Any], url: str, *, n: int = 60,
                 rule: int = 0, values: Sequence[int] = (25, 50, 100, 150, 200, 300, 400, 500),
                 seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.seed, self.probe_kw, self.rule = lab, url, n, seed, probe_kw, rule
        self.manifest = _read_yaml(manifest)
        http = self._rule()
        if not isinstance(http.get("retries"), dict):
            raise ValueError(f"VirtualService {_ref(self.manifest)}: spec.http[{rule}] needs a `retries` block "
                             "for a perTryTimeout slider")
        self.slider = W.SelectionSlider(options=[int(v) for v in values], value=int(values[len(values) // 2]),
                                        description="perTryTimeout ms", continuous_update=False,
                                        style={"description_width": "initial"}, layout=W.Layout(width="460px"))
        self.slider.add_class("meshlab-timeout-slider")
        super().__init__(lab, [self.slider], go.Figure(), "meshlab-timeouts", changes=[_ref(self.manifest)])
        self.slider.observe(lambda change: self.set(change["new"]), names="value")

    def _rule(self) -> dict[str, Any]:
        try:
            return self.manifest["spec"]["http"][self.rule]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"VirtualService manifest has no spec.http[{self.rule}]") from None

    def set(self, ms: int) -> None:
        """Apply perTryTimeout `ms`, probe, redraw; the probe lands in `.results[f"{ms}ms"]`."""
        if self.slider.value != ms:
            self.slider.value = ms   # the observer calls set() again
            return
        rule = self._rule()
        rule["retries"]["perTryTimeout"] = f"{int(ms)}ms"
        lines = {"perTryTimeout": f"{int(ms)}ms"}
        if rule.get("timeout"):
            lines["timeout"] = str(rule["timeout"])
        started = self._busy(f"applying perTryTimeout {ms}ms and sending {self.n} requests…")
        try:
            with self._trial():
                self.lab.apply(copy.deepcopy(self.manifest))
                df = self.lab.probe(self.url, n=self.n, seed=self.seed, **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[f"{ms}ms"] = df
        self._draw(charts.latency_timeouts(df, lines, title=f"perTryTimeout {ms}ms: how long each request took"))
        retried = int((pd.to_numeric(df["attempts"], errors="coerce").fillna(0) > 1).sum())
        self._done(started, f"{charts.outcome_summary(df)}; {retried} retried")


def timeout_slider(lab: Any, manifest: str | Path | Mapping[str, Any], url: str, **kw: Any) -> TimeoutSlider:
    """A live perTryTimeout slider over a VirtualService manifest with retries (see `TimeoutSlider`)."""
    return TimeoutSlider(lab, manifest, url, **kw)


# ------------------------------------------------------------------------------------ chapter 6

class ConcurrencySlider(_Explorer):
    """How many requests at a time? Each move sends `n` requests with that concurrency through the
    lab as it is (its DestinationRule's connection pool) and adds a bar to `charts.overflow`: sent at
    once, waited in Envoy's pending queue (its own counters), refused with 503 UO."""

    def __init__(self, lab: Any, url: str, *, n: int = 40, values: Sequence[int] = (1, 2, 4, 8, 16),
                 seed: int | None = 1, **probe_kw: Any) -> None:
        self.lab, self.url, self.n, self.seed, self.probe_kw = lab, url, n, seed, probe_kw
        self.slider = W.SelectionSlider(options=[int(v) for v in values], value=int(values[0]),
                                        description="requests at a time", continuous_update=False,
                                        style={"description_width": "initial"}, layout=W.Layout(width="420px"))
        self.slider.add_class("meshlab-concurrency-slider")
        super().__init__(lab, [self.slider], go.Figure(), "meshlab-concurrency")
        self.slider.observe(lambda change: self.set(change["new"]), names="value")

    def set(self, concurrency: int) -> None:
        """Probe with `concurrency` requests at a time; the probe lands in `.results[str(concurrency)]`."""
        if self.slider.value != concurrency:
            self.slider.value = concurrency
            return
        started = self._busy(f"sending {self.n} requests, {concurrency} at a time…")
        try:
            with self._trial():
                df = self.lab.watch(self.url, n=self.n, rate=None, concurrency=concurrency, seed=self.seed,
                                    **self.probe_kw)
        except Exception as e:
            self._failed(e)
            return
        self.results[str(concurrency)] = df
        shown = {f"{k} at a time": self.results[k] for k in sorted(self.results, key=int)}
        self._draw(charts.overflow(shown))
        self._done(started, f"{concurrency} at a time: {charts.outcome_summary(df)}")


def concurrency_slider(lab: Any, url: str, **kw: Any) -> ConcurrencySlider:
    """A live concurrency slider over the lab's connection pool (see `ConcurrencySlider`)."""
    return ConcurrencySlider(lab, url, **kw)


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
        self.question = EXERCISES[exercise_id].question
        super().__init__([W.HTML(f"<b>{html.escape(self.question)}</b>"),
                          self.choice, self.button, self.result])
        self.add_class("meshlab-quiz")
        self.button.on_click(lambda _b: self.submit())

    def submit(self) -> Verdict:
        self.verdict = check(self.exercise_id, self.choice.value, **self.data)
        self.result.value = self.verdict._repr_html_()
        return self.verdict

    def _repr_mimebundle_(self, **kw: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kw)
        if data is not None:
            labels = [o[0] if isinstance(o, tuple) else str(o) for o in self.choice.options]
            data["text/html"] = (f"<div class='meshlab-static-widget'><b>{html.escape(self.question)}</b><ul>"
                                 + "".join(f"<li>{html.escape(str(label))}</li>" for label in labels)
                                 + "</ul><p style='font-size:12px;color:#555'><i>🖱️ In JupyterLab: pick one "
                                   "and press Check.</i></p></div>")
        return data


def quiz(exercise_id: str, options: Sequence[str], **data: Any) -> Quiz:
    """A multiple-choice widget for an exercise (see `Quiz`)."""
    return Quiz(exercise_id, options, **data)


# ------------------------------------------------------------------------------------ the lab's end

class LabCloser(W.HBox):
    """A button that closes the lab (`lab.close()`), and says what that means before and after.

    Why a button and not a `lab.close()` cell: a learner's Run All must leave every widget of the
    chapter working, and a last cell that closes the lab would kill them all. A button is never
    pressed by Run All, and it stays visible where a learner looks when done. Restarting or
    shutting down the kernel closes the lab too.
    """

    OPEN = ("The lab is running (Envoy proxies and {pods} pods on this machine). Done with the chapter? "
            "Close it to free memory; restarting or shutting down the kernel closes it too.")
    CLOSED = ("Closed: its Envoy proxies and pods are stopped, and the widgets above now say so. "
              "To start a new lab, run the chapter again: Run ▸ Run All Cells "
              "(or Kernel ▸ Restart Kernel and Run All Cells).")

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.button = W.Button(description="Close this lab", icon="power-off", button_style="warning",
                               layout=W.Layout(width="auto", min_width="150px"))
        self.button.add_class("meshlab-close-lab")
        self.status = W.HTML()
        self.status.add_class("meshlab-close-status")
        super().__init__([self.button, self.status])
        self.add_class("meshlab-lab-closer")
        self.button.on_click(lambda _b: self.close())
        self._show()

    def close(self) -> None:
        """What the button does: close the lab (idempotent)."""
        try:
            self.lab.close()
        finally:
            self._show()

    def _show(self) -> None:
        closed = bool(getattr(self.lab, "closed", False))
        self.button.disabled = closed
        if closed:
            text = self.CLOSED
        else:
            try:
                pods = len(self.lab.pods())
            except Exception:   # the lab will say what is wrong when it is used
                pods = "its"
            text = self.OPEN.format(pods=pods)
        colour = "#555" if not closed else "#b35900"
        self.status.value = f"<span style='color:{colour};font-size:13px;margin-left:8px'>{html.escape(text)}</span>"

    def _repr_mimebundle_(self, **kw: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kw)
        if data is not None:
            data["text/html"] = ("<p style='font-size:12px;color:#555'><i>In JupyterLab: a button that closes "
                                 "the lab.</i></p>")
        return data


def close_button(lab: Any) -> LabCloser:
    """The chapter's last cell: a button that closes the lab when pressed (see `LabCloser`)."""
    return LabCloser(lab)
