"""Plotly figures drawn from probe DataFrames (one row per request, `PROBE_COLUMNS`).

Why one module of plain functions: every chapter asks the same few questions of a probe — which
pod answered, how the split compares with the configuration, what failed and when, which way a
request flowed — and a learner should see the same picture each time. Each function takes the
probe rows and returns a `plotly.graph_objects.Figure`; widgets show the same figures after each
measurement, so interactive and static charts never drift apart.

Colours carry meaning across the course: versions are blue/orange/green, every 503 is red (and
only 503s are), other failures are grey or purple.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import plotly.graph_objects as go

from .names import duration_seconds, labels_match, selector_string

__all__ = [
    "Figure", "outcome", "outcome_summary", "outcomes", "wilson_interval", "share_table", "pod_share", "shares", "split",
    "timeline", "flow", "latency", "config_table", "endpoints", "findings", "conditions", "Table", "ProbeTable",
    "static_html", "VERSION_COLORS", "OUTCOME_COLORS", "PROBE_VIEW",
]

VERSION_COLORS: dict[str, str] = {"v1": "#1f77b4", "v2": "#ff7f0e", "v3": "#2ca02c", "v4": "#8c564b"}
#: 503s have a colour of their own (red); successes green; other answers and client errors apart.
OUTCOME_COLORS: dict[str, str] = {"ok": "#2ca02c", "503": "#d62728", "4xx": "#ff9896",
                                  "5xx": "#9467bd", "error": "#7f7f7f"}
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_TEMPLATE = "plotly_white"


# ------------------------------------------------------------------------------------ the figure

class Figure(go.Figure):
    """A plotly Figure that shows itself both live and in static HTML.

    Why: JupyterLab draws the plotly mimetype (interactive), but `make course` HTML and other
    static viewers only understand text/html. Every chart of the course therefore displays with
    both (JupyterLab prefers the plotly one), whatever plotly's default renderer is. The HTML
    never loads plotly.js itself (no CDN, no 4.8 MB copy per chart): the page provides it once
    (`make course` pages load the one `plotly.min.js` beside them; see `static_html`).
    """

    def mimebundle(self) -> dict[str, Any]:
        """What the chart displays as: the plotly mimetype, its static HTML twin, a text line."""
        title = self.layout.title.text or "chart"
        payload = self.to_json()                       # serialised once for both
        return {"application/vnd.plotly.v1+json": json.loads(payload),
                "text/html": static_html(self, payload),
                "text/plain": f"<meshlab chart: {title}>"}

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.mimebundle(), raw=True)


#: What a static page shows in place of a chart when it has no plotly.js.
NO_PLOTLY = ("This chart needs plotly.js, which this page does not load: open the chapter in "
             "JupyterLab, or build the pages with `make course`.")


def static_html(fig: go.Figure, payload: str | None = None) -> str:
    """A figure as an HTML fragment that draws with the page's own `window.Plotly`.

    Offline by design: no `<script src>` to a CDN and no inline copy of plotly.js (4.8 MB), so a
    page holds plotly at most once however many charts it shows. Without plotly.js on the page
    the fragment says so in words instead of staying blank. `payload`: the figure's JSON when the
    caller has it already (`fig.to_json()`).
    """
    div_id = f"meshlab-chart-{uuid.uuid4().hex}"
    height = int(fig.layout.height or 450)
    payload = (payload or fig.to_json()).replace("</", "<\\/")   # a "</script>" inside must not end the tag
    message = json.dumps(NO_PLOTLY)
    return (f'<div id="{div_id}" class="meshlab-chart" style="width:100%;height:{height}px"></div>\n'
            f'<script type="text/javascript">(function () {{\n'
            f'  var el = document.getElementById("{div_id}");\n'
            f'  if (!el) return;\n'
            f'  if (!window.Plotly) {{ el.style.height = "auto"; el.textContent = {message}; return; }}\n'
            f'  var fig = {payload};\n'
            f'  window.Plotly.newPlot(el, fig.data, fig.layout, {{"responsive": true}});\n'
            f'}})();</script>')


class Table(pd.DataFrame):
    """A DataFrame that shows long cells whole, and shares as percentages.

    Why: pandas cuts cells at 50 characters when it displays a frame, and Envoy's names are
    longer (`outbound|9080|v1|reviews.default.svc.cluster.local` is 50) — a learner copying a
    cluster name from a table must see all of it. Columns named in `attrs["percent"]` hold shares
    (0..1) and are shown as `80.5 %`; the values themselves stay numbers. Everything else is a
    plain DataFrame.
    """

    @property
    def _constructor(self) -> type[Table]:
        return Table

    def _shown(self) -> pd.DataFrame:
        """The frame as displayed: share columns as percentages (a plain DataFrame copy)."""
        shown = pd.DataFrame(self)
        percent = [c for c in self.attrs.get("percent", ()) if c in shown.columns]
        if percent:
            shown = shown.copy()
            for c in percent:
                shown[c] = shown[c].map(_percent)
        return shown

    def _repr_html_(self) -> str | None:
        with pd.option_context("display.max_colwidth", None):
            return self._shown()._repr_html_()

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.width", 250):
            return repr(self._shown())


def _percent(v: object) -> str:
    try:
        return f"{float(v):.1%}".replace("%", " %")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _str(v)


#: The probe columns a learner reads first, in reading order: what came back, who answered, which
#: way it went. The rest of the row schema follows them.
PROBE_VIEW: tuple[str, ...] = ("seq", "status", "flags", "pod", "version", "route", "cluster", "conn",
                               "latency_ms", "error")


class ProbeTable(Table):
    """Probe rows (what `lab.probe` returns): a DataFrame shown with `PROBE_VIEW` first.

    Why: the row schema has 16 columns and a notebook is ~100 characters wide; shown in schema
    order, `pod` and `version` — the columns the first exercises ask about — are off-screen.
    Only the display changes: `df.columns`, `df["pod"]` and every computation are the plain
    DataFrame's.
    """

    @property
    def _constructor(self) -> type[ProbeTable]:
        return ProbeTable

    def _shown(self) -> pd.DataFrame:
        first = [c for c in PROBE_VIEW if c in self.columns]
        shown = pd.DataFrame(self)[first + [c for c in self.columns if c not in first]]
        if "latency_ms" in shown:
            shown = shown.assign(latency_ms=pd.to_numeric(shown["latency_ms"], errors="coerce").round(1))
        return shown


# ------------------------------------------------------------------------------------ outcomes

def _str(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _outcome_of(status: object, error: object, flags: object) -> str:
    err, fl = _str(error), _str(flags)
    if err:
        return f"{err} error"
    try:
        code = int(status)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        code = 0
    if code == 0:
        return "no answer"
    return f"{code} {fl}" if fl not in ("", "-") else str(code)


def outcome(df: pd.DataFrame) -> pd.Series:
    """One label per request: `200`, `503 NC`, `503 UH`, `404 NR`, `dns error`, `refused error`…

    The Envoy response flag is part of the label because it is the cause: a 503 NC and a 503 UH
    are different problems with different fixes.
    """
    _need(df, "status", "error", "flags")
    return pd.Series([_outcome_of(s, e, f) for s, e, f in zip(df["status"], df["error"], df["flags"])],
                     index=df.index, name="outcome", dtype=object)


def outcome_summary(df: pd.DataFrame) -> str:
    """What a probe got, in words: `all 20 requests got 200`, or
    `20 requests: 18 got 200, 2 got 503 NC` (most frequent first)."""
    counts = outcome(df).value_counts()
    if len(counts) == 1:
        return f"all {len(df)} requests got {counts.index[0]}"
    return f"{len(df)} requests: " + ", ".join(f"{c} got {label}" for label, c in counts.items())


def outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Count of requests per outcome, most frequent first, with its share (for a quick table)."""
    counts = outcome(df).value_counts()
    total = max(int(counts.sum()), 1)
    out = Table({"outcome": counts.index, "requests": counts.values, "share": counts.values / total})
    out.attrs["percent"] = ["share"]
    return out


def _outcome_color(label: str) -> str:
    if label.endswith(" error") or label == "no answer":
        return OUTCOME_COLORS["error"]
    code = label.split(" ", 1)[0]
    if code == "503":
        return OUTCOME_COLORS["503"]
    if code.startswith(("2", "3")):
        return OUTCOME_COLORS["ok"]
    if code.startswith("4"):
        return OUTCOME_COLORS["4xx"]
    return OUTCOME_COLORS["5xx"]


def _ok(df: pd.DataFrame) -> pd.Series:
    """Requests a pod answered (any HTTP status from the app, no client error)."""
    return (df["pod"].map(_str) != "") & (df["error"].map(_str) == "")


# ------------------------------------------------------------------------------------ statistics

def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n.

    Why Wilson and not ±1.96·sqrt(p(1-p)/n): it stays inside [0, 1] and is honest at 0 % and
    100 % and for small n, which is exactly where a learner's first probes live.
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k={k} must be between 0 and n={n}")
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _z(confidence: float) -> float:
    """Two-sided normal quantile without scipy (Acklam's rational approximation, |err| < 1e-9)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    q = 1 - (1 - confidence) / 2
    a = [-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00]
    b = [-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00]
    if q > 1 - 0.02425:
        r = math.sqrt(-2 * math.log(1 - q))
        return -(((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / \
            ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1)
    r = q - 0.5
    s = r * r
    return (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r / \
        (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1)


def share_table(df: pd.DataFrame, by: str = "version", configured: Mapping[str, float] | None = None,
                confidence: float = 0.95) -> pd.DataFrame:
    """Observed share of answered requests per `by` value, with a Wilson interval.

    `configured` (e.g. VirtualService weights `{"v1": 80, "v2": 20}`) is normalised to shares and
    added as a column, with `inside` telling whether the configured share lies in the interval.
    Requests no pod answered (503 NC, DNS errors…) are left out of the denominator and counted in
    the `failed` attribute, so a split is judged on the traffic that was actually split.
    """
    _need(df, by, "pod", "error")
    ok = df[_ok(df)]
    n = len(ok)
    counts = ok[by].map(_str).value_counts()
    keys = list(counts.index)
    conf = _normalise(configured) if configured else {}
    keys += [k for k in conf if k not in counts.index]
    rows = []
    for key in sorted(keys):
        k = int(counts.get(key, 0))
        lo, hi = wilson_interval(k, n, confidence)
        row = {by: key, "requests": k, "share": k / n if n else 0.0, "low": lo, "high": hi}
        if conf:
            row["configured"] = conf.get(key, 0.0)
            row["inside"] = lo <= row["configured"] <= hi
        rows.append(row)
    out = Table(rows, columns=[by, "requests", "share", "low", "high"]
                + (["configured", "inside"] if conf else []))
    out.attrs["answered"] = n
    out.attrs["failed"] = len(df) - n
    out.attrs["confidence"] = confidence
    out.attrs["percent"] = ["share", "low", "high", "configured"]
    return out


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(f"configured weights must add up to more than 0, got {dict(weights)}")
    return {str(k): float(v) / total for k, v in weights.items()}


# ------------------------------------------------------------------------------------ figures

def pod_share(df: pd.DataFrame, title: str | None = None, pods: pd.DataFrame | None = None) -> go.Figure:
    """Share of requests per pod (coloured by version); requests no pod answered get a red bar.

    `pods` (`lab.pods()`: name, version, ready) adds every pod listed, at 0 % when none of the
    requests came back from it and marked `not ready` when it was not ready then — so a pod taken
    out of service shows as an empty bar instead of vanishing from the chart.
    """
    _need(df, "pod", "version", "error", "status", "flags")
    n = max(len(df), 1)
    ok = df[_ok(df)]
    per_pod = ok.groupby(["pod", "version"], sort=True).size().reset_index(name="requests")
    silent = _silent_pods(pods, set(per_pod["pod"]))
    if len(silent):
        per_pod = pd.concat([per_pod, silent[["pod", "version"]].assign(requests=0)], ignore_index=True)
        per_pod = per_pod.sort_values("pod", kind="stable")
    not_ready = set(silent.loc[~silent["ready"], "pod"]) if len(silent) else set()
    fig = Figure()
    for version, rows in per_pod.groupby("version", sort=True):
        shares_ = rows["requests"] / n
        text = [f"{'not ready · ' if pod in not_ready else ''}{share:.0%}"
                for pod, share in zip(rows["pod"], shares_)]
        fig.add_bar(x=rows["pod"], y=shares_, name=str(version) or "?",
                    marker_color=_version_color(str(version)), customdata=rows["requests"],
                    text=text, textposition="outside", cliponaxis=False,
                    hovertemplate="%{x}<br>%{customdata} requests (%{y:.0%})<extra>%{fullData.name}</extra>")
    failed = df[~_ok(df)]
    if len(failed):
        labels = outcome(failed).value_counts()
        for label, count in labels.items():
            fig.add_bar(x=[f"no pod: {label}"], y=[count / n], name=label, customdata=[count],
                        marker_color=_outcome_color(label), text=[f"{count / n:.0%}"],
                        textposition="outside", cliponaxis=False,
                        hovertemplate="%{customdata} requests (%{y:.0%})<extra></extra>")
    fig.update_layout(template=_TEMPLATE, title=title or f"Which pod answered ({len(df)} requests)",
                      yaxis=dict(title="share of requests", tickformat=".0%", range=[0, 1.1]),
                      xaxis_title="pod", legend_title="version", bargap=0.3)
    return fig


def _silent_pods(pods: pd.DataFrame | None, answered: set[str]) -> pd.DataFrame:
    """The pods of `lab.pods()` that answered none of the requests: pod, version, ready."""
    if pods is None or not len(pods):
        return pd.DataFrame(columns=["pod", "version", "ready"])
    if not isinstance(pods, pd.DataFrame) or "name" not in pods:
        raise TypeError("pods= takes lab.pods() (a DataFrame with name, version, ready columns)")
    rows = pd.DataFrame({"pod": pods["name"].map(_str),
                         "version": pods["version"].map(_str) if "version" in pods else "",
                         "ready": pods["ready"].astype(bool) if "ready" in pods else True})
    return rows[~rows["pod"].isin(answered)].reset_index(drop=True)


def _label_with_connections(label: str, df: pd.DataFrame) -> str:
    if "conn" not in df or not len(df):
        return label
    conns = df["conn"].nunique()
    return f"{label}<br>({len(df)} req, {conns} conn)"


def shares(probes: Mapping[str, pd.DataFrame], by: str = "pod", title: str | None = None,
           pods: pd.DataFrame | None = None) -> go.Figure:
    """One 100 % stacked bar per labelled probe, split by pod (or version, subset…).

    The x labels say how many connections each probe opened, so "per-pod share vs connections
    reused" and "share per load-balancing policy" are the same picture. With `by="pod"`,
    `pods` (`lab.pods()`) puts every pod in the legend, at 0 % where it answered nothing.
    """
    if not probes:
        raise ValueError("shares() needs at least one probe, e.g. {'keep-alive': df}")
    fig = Figure()
    xs = [_label_with_connections(str(label), df) for label, df in probes.items()]
    values = sorted({_str(v) for df in probes.values() for v in df[_ok(df)][by]})
    names = {v: v for v in values}
    if by == "pod" and pods is not None:
        silent = _silent_pods(pods, set(values))
        for pod, ready in zip(silent["pod"], silent["ready"]):
            names[pod] = pod if ready else f"{pod} (not ready)"
        values = sorted(names)
    colors = _pod_colors(probes.values(), pods) if by == "pod" else {}
    for i, value in enumerate(values):
        ys, counts = [], []
        for df in probes.values():
            k = int((df[_ok(df)][by].map(_str) == value).sum())
            ys.append(k / len(df) if len(df) else 0.0)
            counts.append(k)
        fig.add_bar(x=xs, y=ys, name=names[value], customdata=counts,
                    marker_color=colors.get(value) or _series_color(by, value, i),
                    hovertemplate="%{customdata} requests (%{y:.0%})<extra>%{fullData.name}</extra>")
    failed_labels = sorted({lab for df in probes.values() for lab in outcome(df[~_ok(df)])})
    for label in failed_labels:
        ys = [float((outcome(df[~_ok(df)]) == label).sum()) / len(df) if len(df) else 0.0
              for df in probes.values()]
        fig.add_bar(x=xs, y=ys, name=label, marker_color=_outcome_color(label),
                    hovertemplate="%{y:.0%}<extra>%{fullData.name}</extra>")
    fig.update_layout(template=_TEMPLATE, barmode="stack", title=title or f"Share of requests per {by}",
                      yaxis=dict(title="share of requests", tickformat=".0%", range=[0, 1.0]),
                      legend_title=f"{by} / failure" if failed_labels and values else
                      ("failure" if failed_labels else by))
    return fig


def split(df: pd.DataFrame, configured: Mapping[str, float] | None = None, by: str = "version",
          confidence: float = 0.95, title: str | None = None) -> go.Figure:
    """Observed vs configured split: bars with a Wilson confidence band, configured weights as marks.

    Why a band: 200 seeded requests never give exactly 80/20; the band says how far from the
    configuration chance alone can push the observed share. A configured mark outside the band is
    worth a second look; inside it, the difference is noise.
    """
    table = share_table(df, by=by, configured=configured, confidence=confidence)
    keys = list(table[by])
    fig = Figure()
    fig.add_bar(x=keys, y=table["share"], name="observed",
                marker_color=[_series_color(by, k, i) for i, k in enumerate(keys)],
                error_y=dict(type="data", symmetric=False, array=table["high"] - table["share"],
                             arrayminus=table["share"] - table["low"], color="#444", thickness=1.5, width=8),
                customdata=list(zip(table["requests"], table["low"], table["high"])),
                hovertemplate=("%{x}: %{y:.1%} observed (%{customdata[0]} requests)<br>"
                               f"{confidence:.0%} band " "%{customdata[1]:.1%} – %{customdata[2]:.1%}<extra></extra>"))
    if configured:
        fig.add_scatter(x=keys, y=table["configured"], name="configured", mode="markers",
                        marker=dict(symbol="line-ew", size=44, line=dict(width=4, color="#222")),
                        hovertemplate="%{x}: %{y:.0%} configured<extra></extra>")
    failed = table.attrs["failed"]
    note = f" — {failed} request(s) got no pod" if failed else ""
    fig.update_layout(template=_TEMPLATE, showlegend=bool(configured),
                      title=title or f"Observed split of {table.attrs['answered']} requests, "
                                     f"{confidence:.0%} Wilson band{note}",
                      yaxis=dict(title="share of answered requests", tickformat=".0%", range=[0, 1.05]),
                      xaxis_title=by, bargap=0.4)
    return fig


def timeline(df: pd.DataFrame, bucket_s: float | None = None, events: Mapping[str, float] | None = None,
             title: str | None = None) -> go.Figure:
    """Requests per time bucket, stacked by outcome (503s in red), with labelled event lines.

    `events` maps a label ("VirtualService applied") to seconds since the probe started, so the
    reader sees a 503 window open and close with the change that caused it.
    """
    _need(df, "t", "status", "error", "flags")
    if len(df) == 0:
        raise ValueError("timeline() got an empty probe")
    t = pd.to_numeric(df["t"], errors="coerce").fillna(0.0)
    span = max(float(t.max()), 1e-3)
    step = bucket_s or _nice_step(span / 40)
    bucket = (t // step) * step
    labels = outcome(df)
    table = pd.DataFrame({"bucket": bucket.round(6), "outcome": labels}).groupby(
        ["bucket", "outcome"]).size().unstack(fill_value=0).sort_index()
    fig = Figure()
    for label in sorted(table.columns, key=lambda s: (_outcome_color(s) == OUTCOME_COLORS["503"], s)):
        fig.add_bar(x=table.index + step / 2, y=table[label], name=label, width=step * 0.95,
                    marker_color=_outcome_color(label),
                    hovertemplate="t=%{x:.2f}s: %{y} requests<extra>%{fullData.name}</extra>")
    for i, (label, at) in enumerate((events or {}).items()):
        fig.add_vline(x=float(at), line=dict(color="#222", dash="dash", width=1.5))
        fig.add_annotation(x=float(at), y=1.0 - 0.08 * (i % 3), yref="paper", text=label, showarrow=False,
                           xanchor="left", bgcolor="rgba(255,255,255,0.8)", font=dict(size=11))
    fig.update_layout(template=_TEMPLATE, barmode="stack", bargap=0,
                      title=title or f"What {len(df)} requests got, over time",
                      xaxis_title="seconds since the probe started", yaxis_title=f"requests per {step:g} s",
                      legend_title="outcome")
    return fig


def _nice_step(raw: float) -> float:
    for step in (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 30, 60):
        if step >= raw:
            return step
    return raw


# ------------------------------------------------------------------------------------ chapter 7

__all__ += ["send_interval_ms", "race_window"]


def send_interval_ms(df: pd.DataFrame) -> float:
    """The median time between two requests of a probe, in ms (from `t`, when each was sent);
    NaN with fewer than two requests."""
    _need(df, "t")
    t = pd.to_numeric(df["t"], errors="coerce").dropna().sort_values()
    if len(t) < 2:
        return float("nan")
    return float(t.diff().dropna().median() * 1000.0)


def race_window(probes: Mapping[str, pd.DataFrame], keepalive_ms: float | None = None,
                idle_timeout_ms: float | None = None, title: str | None = None) -> go.Figure:
    """What requests got against the time between them: one point per probe and outcome (x: the
    probe's median interval between requests, `send_interval_ms`; y: that outcome's share).

    `keepalive_ms` draws the app's keep-alive idle timeout (the app closes a connection idle that
    long) and `idle_timeout_ms` the DestinationRule's `connectionPool.http.idleTimeout` (Envoy
    closes first): the keep-alive race lives just past the app's line, in a window as wide as the
    time the app's close takes to reach Envoy.
    """
    if not probes:
        raise ValueError("race_window() needs at least one probe, e.g. {'125 ms': df}")
    points = []
    for label, df in probes.items():
        if len(df) == 0:
            raise ValueError(f"race_window(): the probe {label!r} is empty")
        x = send_interval_ms(df)
        counts = outcome(df).value_counts()
        for o, k in counts.items():
            points.append((x, str(o), int(k), len(df), str(label)))
    fig = Figure()
    labels = sorted({p[1] for p in points}, key=lambda s: (_outcome_color(s) == OUTCOME_COLORS["503"], s))
    xs = sorted({p[0] for p in points})
    for o in labels:
        by_x = {p[0]: p for p in points if p[1] == o}
        ys = [by_x[x][2] / by_x[x][3] if x in by_x else 0.0 for x in xs]
        data = [(by_x[x][2], by_x[x][3]) if x in by_x else (0, 0) for x in xs]
        fig.add_scatter(x=xs, y=ys, name=o, mode="lines+markers", customdata=data,
                        marker=dict(color=_outcome_color(o), size=9), line=dict(color=_outcome_color(o)),
                        hovertemplate="every %{x:.0f} ms: %{customdata[0]} of %{customdata[1]} requests "
                                      "(%{y:.0%})<extra>%{fullData.name}</extra>")
    marks = [(keepalive_ms, "the app closes idle connections", "#d62728"),
             (idle_timeout_ms, "Envoy closes idle connections (idleTimeout)", "#2ca02c")]
    for i, (at, text, color) in enumerate(m for m in marks if m[0] is not None):
        fig.add_vline(x=float(at), line=dict(color=color, dash="dash", width=1.5))
        fig.add_annotation(x=float(at), y=1.08 - 0.08 * i, yref="paper", text=f"{text}: {float(at):g} ms",
                           showarrow=False, xanchor="left", font=dict(size=11, color=color),
                           bgcolor="rgba(255,255,255,0.8)")
    fig.update_layout(template=_TEMPLATE, title=title or "What the requests got, by the time between them",
                      xaxis=dict(title="time between two requests (ms)", rangemode="tozero"),
                      yaxis=dict(title="share of requests", tickformat=".0%", range=[0, 1.05]),
                      legend_title="outcome")
    return fig


def flow(df: pd.DataFrame, host: str | None = None, title: str | None = None) -> go.Figure:
    """Request flow as a Sankey: host → route → cluster → pod (or the failure), 503s in red.

    The host comes from `host`, else from the probe's `df.attrs["url"]` (set by `Lab.probe`).
    Requests that never reached Envoy (DNS error, refused) flow straight from the host to their
    error, which is the point: no route and no cluster was involved.
    """
    _need(df, "route", "cluster", "pod", "status", "error", "flags")
    host = host or _host_of(df.attrs.get("url", "")) or "requests"
    labels = outcome(df)
    stages = ("host", "route", "cluster", "end")
    nodes: dict[tuple[str, str], int] = {}
    node_labels: list[str] = []
    node_colors: list[str] = []
    node_stage: list[int] = []
    node_count: list[int] = []

    def node(stage: str, name: str, color: str) -> int:
        key = (stage, name)
        if key not in nodes:
            nodes[key] = len(node_labels)
            node_labels.append(name)
            node_colors.append(color)
            node_stage.append(stages.index(stage))
            node_count.append(0)
        node_count[nodes[key]] += 1
        return nodes[key]

    links: dict[tuple[int, int, str], int] = {}
    for route, cluster, pod, version, flags, label in zip(
            df["route"].map(_str), df["cluster"].map(_str), df["pod"].map(_str), df["version"].map(_str),
            df["flags"].map(_str), labels):
        failed = not pod
        red = _outcome_color(label) if failed else None
        reached_envoy = flags != ""
        path = [node("host", host, "#555")]
        if route:
            path.append(node("route", f"route {route}", "#7f7f7f"))
        elif reached_envoy and "NR" in flags.split(","):
            path.append(node("route", "✗ no route matched", red or "#7f7f7f"))
        if cluster:
            path.append(node("cluster", cluster, red or "#9ecae1"))
        elif reached_envoy and "NC" in flags.split(","):
            path.append(node("cluster", "✗ cluster not found", red or "#9ecae1"))
        if failed:
            path.append(node("end", label, red or OUTCOME_COLORS["error"]))
        else:
            path.append(node("end", pod, _version_color(version)))
        color = _fade(red) if red else "rgba(120,120,120,0.25)"
        for a, b in zip(path, path[1:]):
            links[(a, b, color)] = links.get((a, b, color), 0) + 1
    # Fixed columns (host, route, cluster, pod) with room for long cluster names between the
    # cluster column and the pods; y stacks each column's nodes by their request counts.
    xs_by_stage = (0.001, 0.22, 0.43, 0.999)
    total = max(len(df), 1)
    ys, used = [], [0.0] * len(stages)
    for i in range(len(node_labels)):
        st = node_stage[i]
        share = node_count[i] / total
        ys.append(min(0.999, max(0.001, used[st] + share / 2)))
        used[st] += share
    fig = Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=node_labels, color=node_colors, pad=14, thickness=16,
                  x=[xs_by_stage[s] for s in node_stage], y=ys,
                  hovertemplate="%{label}<br>%{value} requests<extra></extra>"),
        link=dict(source=[a for a, _, _ in links], target=[b for _, b, _ in links],
                  value=list(links.values()), color=[c for _, _, c in links]),
    ))
    headers = ("host called", "route (VirtualService rule)", "Envoy cluster", "pod, or what failed")
    for st, text in enumerate(headers):
        if st in node_stage:
            fig.add_annotation(x=xs_by_stage[st], y=1.0, xref="paper", yref="paper", yanchor="bottom",
                               xanchor="right" if st == len(stages) - 1 else "left", showarrow=False,
                               text=f"<b>{text}</b>", font=dict(size=11, color="#444"))
    fig.update_layout(template=_TEMPLATE, title=title or f"How {len(df)} requests to {host} flowed",
                      font=dict(size=11), height=400, margin=dict(l=20, r=20, t=80, b=20))
    return fig


def latency(probes: Mapping[str, pd.DataFrame], title: str | None = None) -> go.Figure:
    """Latency per labelled probe as box plots (answered requests only), to compare policies."""
    if not probes:
        raise ValueError("latency() needs at least one probe")
    fig = Figure()
    for i, (label, df) in enumerate(probes.items()):
        _need(df, "latency_ms")
        ok = df[_ok(df)]
        fig.add_box(y=ok["latency_ms"], name=str(label), marker_color=_PALETTE[i % len(_PALETTE)],
                    boxpoints=False)
    fig.update_layout(template=_TEMPLATE, title=title or "Latency per request", showlegend=False,
                      yaxis_title="latency (ms)")
    return fig


# ------------------------------------------------------------------------------------ chapters 5 and 6

def _ms_of(label_value: str | float) -> float:
    """A timeout as milliseconds: a number (ms) or an Istio duration (`"80ms"`, `"0.5s"`)."""
    if isinstance(label_value, (int, float)) and not isinstance(label_value, bool):
        return float(label_value)
    return duration_seconds(str(label_value)) * 1000.0


def latency_timeouts(df: pd.DataFrame, timeouts: Mapping[str, str | float] | None = None,
                     title: str | None = None, bins: int = 40) -> go.Figure:
    """How long each request took, as a histogram stacked by outcome (`outcome`), with each
    timeout drawn as a labelled dashed line.

    `timeouts`: label → a timeout, in ms or as an Istio duration (`{"perTryTimeout": "80ms",
    "timeout": "300ms"}`). Every request is counted, answered or not: a 504 UT sits on its
    timeout's line, a retried 200 past one attempt's.
    """
    _need(df, "latency_ms", "status", "error", "flags")
    if len(df) == 0:
        raise ValueError("latency_timeouts() got an empty probe")
    lat = pd.to_numeric(df["latency_ms"], errors="coerce").fillna(0.0)
    lines = {k: _ms_of(v) for k, v in (timeouts or {}).items()}
    top = max([float(lat.max())] + [v * 1.1 for v in lines.values()] + [1.0])
    size = _nice_step(top / bins)
    labels = outcome(df)
    fig = Figure()
    for label in sorted(set(labels), key=lambda s: (_outcome_color(s) != OUTCOME_COLORS["ok"], s)):
        fig.add_histogram(x=lat[labels == label], name=label, marker_color=_outcome_color(label),
                          xbins=dict(start=0, end=top + size, size=size),
                          hovertemplate="%{x} ms: %{y} requests<extra>%{fullData.name}</extra>")
    for i, (label, ms) in enumerate(lines.items()):
        fig.add_vline(x=ms, line=dict(color="#222", dash="dash", width=1.5))
        fig.add_annotation(x=ms, y=1.0 - 0.08 * (i % 3), yref="paper", text=f"{label} {ms:g} ms",
                           showarrow=False, xanchor="left", bgcolor="rgba(255,255,255,0.8)", font=dict(size=11))
    fig.update_layout(template=_TEMPLATE, barmode="stack", bargap=0.05,
                      title=title or f"How long {len(df)} requests took", xaxis_title="latency seen by the client (ms)",
                      yaxis_title="requests", legend_title="outcome")
    return fig


def attempts(probes: pd.DataFrame | Mapping[str, pd.DataFrame], title: str | None = None) -> go.Figure:
    """Requests per number of attempts Envoy made upstream (`attempts`: Envoy's
    %UPSTREAM_REQUEST_ATTEMPT_COUNT%; 0 when no attempt left Envoy, e.g. a fault abort), stacked by
    outcome; several labelled probes side by side (`{"label": df}`) as groups of bars."""
    frames = {"": probes} if isinstance(probes, pd.DataFrame) else dict(probes)
    if not frames:
        raise ValueError("attempts() needs at least one probe")
    rows, order = [], []
    for name, df in frames.items():
        _need(df, "attempts", "status", "error", "flags")
        n = pd.to_numeric(df["attempts"], errors="coerce").fillna(0).astype(int)
        xs = [f"{a} attempt{'s' if a != 1 else ''}" if not name else f"{name} · {a}" for a in n]
        rows += list(zip(xs, outcome(df)))
        order += [x for _, x in sorted(set(zip(n, xs))) if x not in order]
    table = pd.DataFrame(rows, columns=["x", "outcome"])
    counts = table.groupby(["x", "outcome"]).size().unstack(fill_value=0).reindex(order)
    fig = Figure()
    for label in sorted(counts.columns, key=lambda s: (_outcome_color(s) != OUTCOME_COLORS["ok"], s)):
        fig.add_bar(x=counts.index, y=counts[label], name=label, marker_color=_outcome_color(label),
                    hovertemplate="%{x}: %{y} requests<extra>%{fullData.name}</extra>")
    total = sum(len(df) for df in frames.values())
    fig.update_layout(template=_TEMPLATE, barmode="stack", title=title or f"Attempts per request ({total} requests)",
                      xaxis_title="attempts Envoy made upstream", yaxis_title="requests", legend_title="outcome")
    fig.update_xaxes(type="category")
    return fig


def ejections(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """A timeline per endpoint: each request as a dot where it was answered (colour = outcome),
    and grey bands while Envoy's own `/clusters` said the endpoint was ejected by outlier detection
    (`failed_outlier_check`). Reads what `Lab.watch` recorded: the rows and `df.attrs["endpoints"]`
    (samples: t, endpoint, pod, outlier_check)."""
    _need(df, "t", "pod", "status", "error", "flags")
    samples = pd.DataFrame(df.attrs.get("endpoints") or [], columns=["t", "cluster", "endpoint", "pod",
                                                                      "status", "outlier_check"])
    if samples.empty:
        raise ValueError("ejections() needs what lab.watch(...) returned: its rows carry Envoy's /clusters samples")
    names = sorted(set(samples["pod"].map(_str)) - {""} | set(df["pod"].map(_str)) - {""})
    fig = Figure()
    step = float(samples["t"].diff().median() or 0.05)
    shown = False
    for pod in names:
        mine = samples[samples["pod"] == pod].sort_values("t")
        out = (mine["outlier_check"] == "FAILED").tolist()
        ts = mine["t"].tolist()
        i = 0
        while i < len(out):
            if out[i]:
                j = i
                while j + 1 < len(out) and out[j + 1]:
                    j += 1
                fig.add_scatter(x=[ts[i], ts[j] + step], y=[pod, pod], mode="lines", showlegend=not shown,
                                name="ejected (Envoy /clusters)", legendgroup="ejected",
                                line=dict(color="rgba(90,90,90,0.35)", width=22),
                                hovertemplate=f"{pod}: ejected %{{x:.2f}} s<extra></extra>")
                shown = True
                i = j + 1
            else:
                i += 1
    labels = outcome(df)
    answered = df["pod"].map(_str) != ""
    for label in sorted(set(labels[answered]), key=lambda s: (_outcome_color(s) != OUTCOME_COLORS["ok"], s)):
        sel = answered & (labels == label)
        fig.add_scatter(x=df.loc[sel, "t"], y=df.loc[sel, "pod"].map(_str), mode="markers", name=label,
                        marker=dict(color=_outcome_color(label), size=6, symbol="line-ns-open", line=dict(width=2)),
                        hovertemplate="t=%{x:.3f} s<extra>%{fullData.name}</extra>")
    missed = (~answered).sum()
    fig.update_layout(template=_TEMPLATE, title=title or (
        f"Which pod answered each request, and when Envoy ejected it ({len(df)} requests"
        + (f", {missed} answered by no pod" if missed else "") + ")"),
        xaxis_title="seconds since the probe started", yaxis_title="pod", legend_title="")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=names)
    return fig


#: The Envoy cluster counters `overflow` reads (cluster.<name>.<counter>, summed over clusters).
PENDING_COUNTERS = ("upstream_rq_pending_total", "upstream_rq_pending_overflow")


def _cluster_counter(stats: Mapping[str, object], counter: str) -> int:
    return int(sum(v for k, v in stats.items() if k.endswith("." + counter) and isinstance(v, (int, float))))


def overflow(probes: Mapping[object, pd.DataFrame], title: str | None = None) -> go.Figure:
    """Circuit breaking under concurrency: per labelled probe (e.g. the concurrency), how many
    requests Envoy sent at once, how many waited in the cluster's pending queue, and how many it
    refused (503 UO). The queue comes from Envoy's own counters over the probe
    (`upstream_rq_pending_total`, in `df.attrs["envoy_stats"]`, what `Lab.watch` records)."""
    if not probes:
        raise ValueError("overflow() needs at least one probe")
    xs, direct, queued, refused, other = [], [], [], [], []
    for label, df in probes.items():
        _need(df, "status", "error", "flags")
        stats = df.attrs.get("envoy_stats")
        if stats is None:
            raise ValueError("overflow() needs what lab.watch(...) returned: its rows carry Envoy's counters")
        labels = outcome(df)
        uo = int((labels == "503 UO").sum())
        pending = _cluster_counter(stats, "upstream_rq_pending_total")
        ok = int(_ok(df).sum())
        xs.append(str(label))
        queued.append(min(pending, ok))
        direct.append(ok - min(pending, ok))
        refused.append(uo)
        other.append(len(df) - ok - uo)
    fig = Figure()
    # always the same four traces (zeros too), each with a fixed uid: a live chart updates them in
    # place, and the browser keeps matching each trace to its own
    for i, (ys, name, colour) in enumerate(((direct, "sent at once", OUTCOME_COLORS["ok"]),
                                             (queued, "waited in the pending queue", "#98df8a"),
                                             (refused, "503 UO (overflow)", OUTCOME_COLORS["503"]),
                                             (other, "other outcomes", OUTCOME_COLORS["error"]))):
        fig.add_bar(x=xs, y=ys, name=name, marker_color=colour, uid=f"meshlab-overflow-{i}")
    fig.update_layout(template=_TEMPLATE, barmode="stack", title=title or "What the connection pool did with each request",
                      xaxis_title="probe", yaxis_title="requests", legend_title="")
    fig.update_xaxes(type="category")
    return fig


def config_table(config: Mapping[str, Sequence[Mapping]], section: str = "clusters",
                 match: str | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One section of `lab.envoy_config()` (clusters, endpoints, routes, listeners) as a table.

    `match` keeps rows whose name or cluster contains the text (like `istioctl proxy-config
    clusters … | grep reviews`); `columns` picks and orders columns.
    """
    if section not in config:
        raise ValueError(f"envoy config has no section {section!r}; sections: {', '.join(config)}")
    df = Table(list(config[section]))
    if df.empty:
        return Table(columns=list(columns or ["name"]))
    if match:
        text = df.astype(str).agg(" ".join, axis=1)
        df = df[text.str.contains(match, regex=False)]
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"section {section!r} has no column(s) {', '.join(missing)}; "
                             f"has {', '.join(map(str, df.columns))}")
        df = df[list(columns)]
    return df.reset_index(drop=True)


def endpoints(objects: Sequence[object], pods: pd.DataFrame, service: str,
              namespace: str = "default") -> pd.DataFrame:
    """What the Service's EndpointSlices hold, and which of those endpoints get traffic.

    Every pod the Service's selector matches, one row per Service port, the way the EndpointSlice
    controller lists it (`kubectl get endpointslices -l kubernetes.io/service-name=<service>
    -o yaml`): a running pod with an address is listed whether or not it is ready, with
    `conditions.ready` saying which (`ready`); a pod that has stopped (or has no address yet) is not
    listed. Only ready endpoints get traffic — kube-proxy and, by default, Istio's sidecars skip
    the others (`gets traffic`). Source: Kubernetes pkg/controller/endpointslice
    (`podToEndpoint`, `ShouldPodBeInEndpoints`).

    A targetPort given by name is resolved in each pod's own spec (its Pod, or the Deployment
    whose template made it), as the EndpointSlice controller resolves it: `ip:8080`, not
    `ip:http-web`. Takes `lab.objects()` and `lab.pods()`, so it reads the same on every backend.
    """
    svc = next((o for o in objects if getattr(o, "kind", None) == "Service"
                and getattr(o, "name", None) == service and (getattr(o, "namespace", None) or "default") == namespace),
               None)
    if svc is None:
        names = sorted(getattr(o, "name", "") for o in objects if getattr(o, "kind", None) == "Service")
        raise ValueError(f"no Service {namespace}/{service} in the lab; Services: {', '.join(names) or 'none'}")
    selector = dict(svc.spec.selector or {})  # type: ignore[attr-defined]
    rows = []
    for _, pod in pods.iterrows():
        labels = pod.get("labels") or {}
        if pod.get("namespace", namespace) != namespace or not selector or not labels_match(selector, labels):
            continue
        spec = _pod_spec(objects, str(pod["name"]), namespace, labels)
        listed = bool(pod.get("ip")) and pod.get("phase", "Running") not in ("Failed", "Succeeded")
        ready = listed and bool(pod.get("ready")) and pod.get("phase", "Running") == "Running"
        for port in svc.spec.ports:  # type: ignore[attr-defined]
            target = port.target_port if port.target_port is not None else port.port
            if isinstance(target, str):     # a named port: the number this pod declares under it
                target = spec.container_port(target) if spec is not None else None
            rows.append({"pod": pod["name"], "version": pod.get("version", ""),
                         "selector": selector_string(selector),
                         "port": f"{port.name or ''} {port.port}".strip(),
                         "address": f"{pod.get('ip') or '?'}:{target if target is not None else '?'}",
                         "in EndpointSlice": listed and target is not None,
                         "ready": ready, "gets traffic": ready and target is not None})
    return Table(rows, columns=["pod", "version", "selector", "port", "address", "in EndpointSlice",
                                "ready", "gets traffic"])


def _pod_spec(objects: Sequence[object], pod: str, namespace: str, labels: Mapping[str, str]) -> object | None:
    """The spec a running pod was made from: its own Pod object, else the Deployment in its
    namespace whose pod template carries the most of the pod's labels (a cluster's pods() frame
    leaves out pod-template-hash, so labels, not names, pair a pod with its Deployment)."""
    found, best = None, -1
    for o in objects:
        kind, ns = getattr(o, "kind", None), getattr(o, "namespace", None) or "default"
        if ns != namespace:
            continue
        if kind == "Pod" and getattr(o, "name", None) == pod:
            return o.spec  # type: ignore[attr-defined]
        if kind == "Deployment":
            template = o.spec.template  # type: ignore[attr-defined]
            if labels_match(template.metadata.labels, labels) and len(template.metadata.labels) > best:
                found, best = template.spec, len(template.metadata.labels)
    return found


def findings(found: Sequence[object]) -> pd.DataFrame:
    """`meshlab.analyze` findings as a table: level, code, resource, message and how to fix it.

    The same facts `istioctl analyze` prints one per line, with the fix beside each, so a notebook
    shows them with one call instead of a formatting loop.
    """
    columns = ["level", "code", "resource", "message", "fix"]
    rows = [{"level": str(getattr(f, "level", "")), "code": getattr(f, "code", ""),
             "resource": getattr(f, "origin", ""), "message": getattr(f, "message", ""),
             "fix": getattr(f, "fix", "")} for f in found]
    return Table(rows, columns=columns)


def conditions(objects: Sequence[object], kind: str | None = None) -> pd.DataFrame:
    """The status conditions of the objects that carry them (Gateway API Gateways and HTTPRoutes read
    from a lab: what istiod wrote), one row per condition: kind, name, parent, type, status, reason,
    message — `kubectl get httproute -o yaml`'s `status` as a table. `kind` keeps one kind."""
    columns = ["kind", "name", "parent", "type", "status", "reason", "message"]
    rows = []
    for o in objects:
        status = getattr(o, "status", None)
        if not isinstance(status, dict) or (kind and getattr(o, "kind", "") != kind):
            continue
        name = f"{getattr(o, 'namespace', None) or ''}/{getattr(o, 'name', '')}".lstrip("/")
        entries = [("", c) for c in status.get("conditions") or []]
        for p in status.get("parents") or []:
            ref = p.get("parentRef") or {}
            parent = f"{ref.get('kind', 'Gateway')} {ref.get('name', '')}" + (f":{ref['port']}" if ref.get("port") else "")
            entries += [(parent, c) for c in p.get("conditions") or []]
        for parent, c in entries:
            rows.append({"kind": getattr(o, "kind", ""), "name": name, "parent": parent, "type": c.get("type", ""),
                         "status": c.get("status", ""), "reason": c.get("reason", ""), "message": c.get("message", "")})
    return Table(rows, columns=columns)


# ------------------------------------------------------------------------------------ helpers

def _need(df: pd.DataFrame, *columns: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a probe DataFrame (from lab.probe), got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"probe DataFrame lacks column(s) {', '.join(missing)}; "
                         f"has {', '.join(map(str, df.columns)) or 'none'}")


def _version_color(version: str) -> str:
    return VERSION_COLORS.get(version, "#8c8c8c")


def _pod_colors(frames: object, pods: pd.DataFrame | None = None) -> dict[str, str]:
    """Each pod in its version's colour, lighter for each further pod of the same version."""
    versions: dict[str, str] = {}
    for df in frames:  # type: ignore[attr-defined]
        ok = df[_ok(df)]
        for pod, version in zip(ok["pod"].map(_str), ok["version"].map(_str)):
            versions.setdefault(pod, version)
    if pods is not None and len(pods) and "name" in pods:
        for pod, version in zip(pods["name"].map(_str), pods.get("version", pods["name"]).map(_str)):
            versions.setdefault(pod, version)
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for pod in sorted(versions):
        v = versions[pod]
        k = seen.get(v, 0)
        seen[v] = k + 1
        out[pod] = _lighten(_version_color(v), min(0.6, 0.3 * k))
    return out


def _lighten(hex_color: str, amount: float) -> str:
    h = hex_color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def _series_color(by: str, value: str, i: int) -> str:
    if by in ("version", "subset") and value in VERSION_COLORS:
        return VERSION_COLORS[value]
    return _PALETTE[i % len(_PALETTE)]


def _fade(hex_color: str, alpha: float = 0.45) -> str:
    h = hex_color.lstrip("#")
    r, g, b = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    return f"rgba({r},{g},{b},{alpha})"


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
