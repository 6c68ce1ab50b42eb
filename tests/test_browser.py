"""Real-browser checks: JupyterLab + Debian's chromium, driven by Playwright.

Why a browser at all: executing a notebook headless proves the Python side, but a widget whose
front-end module is missing or mismatched only fails in the browser (the kernel never knows).
These tests open notebooks in a real JupyterLab, run every cell, look at the plotly chart that the
browser actually drew, move the ipywidgets slider with the mouse and check the chart's data follows.

They never download a browser: chromium comes from Debian (`apt-get install chromium`, done by
`make test` / `.ci/run` when missing); Playwright only brings its driver. Screenshots land in
`build/browser/` so a person can look at what the test saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshlab._processes import spawn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "build" / "browser"
CHROMIUM = Path(os.environ.get("MESHLAB_CHROMIUM", "/usr/bin/chromium"))
# JupyterLab (and so the kernel) runs from this interpreter: the project's venv by default; point
# it at another environment to try other versions, e.g. those in Binder's base image.
JUPYTER_PYTHON = os.environ.get("MESHLAB_JUPYTER_PYTHON", sys.executable)
# Chromium as root needs --no-sandbox; the rest keep it from phoning home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
# Front-end messages that mean a widget did not come alive (ipywidgets manager, anywidget, plotly).
WIDGET_ERROR = re.compile(
    r"not found in module|Failed to load model class|Could not create (a )?model|"
    r"Could not create view|Could not instantiate widget|Error displaying widget|"
    r"No version of module|Module .* not found|is not registered|widget manager|"
    r"Failed to fetch dynamically imported module|"
    # any error raised inside the widget manager, anywidget or plotly's extension (their URLs
    # appear in the stack trace)
    r"anywidget|jupyterlab-plotly|jupyter-widgets",
    re.IGNORECASE,
)


def _free_port() -> int:
    """A loopback port nobody listens on right now (the server retries are off, so a clash fails
    loudly instead of silently moving)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Lab:
    """A JupyterLab server started for one test, on loopback, with its own config dirs."""

    root: Path
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _start_jupyterlab(root: Path, home: Path, disabled: tuple[str, ...] = (),
                      app_settings: Path | None = None) -> _Lab:
    """Start `jupyter lab` from the project's venv (the interpreter running the tests), isolated
    from the user's settings so a personal theme or workspace cannot change what the test sees.

    `app_settings` (a folder with an overrides.json) replaces the environment's JupyterLab
    defaults and keeps the news plugin on: the test of the course's own settings uses it."""
    for sub in ("config", "data", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    # The announcements plugin asks "get notified about news?" in a toast that can cover cells.
    (home / "config" / "labconfig").mkdir(exist_ok=True)
    off = {**({} if app_settings else {"@jupyterlab/apputils-extension:announcements": True}),
           **{d: True for d in disabled}}
    (home / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": off})
    )
    # Attach every cell to the page: JupyterLab 4.4 (Binder's base image) only puts cells near the
    # viewport in the DOM by default, and the test reads and clicks cells anywhere in a chapter.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    token = os.urandom(12).hex()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
        # as `make lab` does: `!meshlab doctor` in chapter 0 finds this environment's CLI
        "PATH": f"{Path(JUPYTER_PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = home / "jupyterlab.log"
    cmd = [
        JUPYTER_PYTHON, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
    ]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    if app_settings is not None:
        cmd.append(f"--LabApp.app_settings_dir={app_settings}")
    with log.open("wb") as out:
        # SIGTERM when pytest dies, so no JupyterLab outlives a crash
        proc = spawn(cmd, signal="TERM", cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                     stderr=subprocess.STDOUT)
    lab = _Lab(root=root, port=port, token=token, proc=proc, log=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=2) as r:
                if r.status == 200:
                    return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    _stop(lab)
    raise RuntimeError(f"jupyter lab did not answer within 90 s:\n{lab.log_tail()}")


def _stop(lab: _Lab) -> None:
    """Stop the server and the kernels it started; then kill whatever is left in its process group.
    (A kernel that somehow survives exits on its own when its parent is gone: ipykernel polls it.)"""
    if lab.proc.poll() is None:
        lab.proc.terminate()  # SIGTERM: jupyter's clean shutdown, kernels first, no prompt
        try:
            lab.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(lab.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    lab.proc.wait(timeout=10)


@dataclass
class _Console:
    """Everything the page said on its console, and the uncaught exceptions."""

    lines: list[str] = field(default_factory=list)

    def widget_errors(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith(("error", "pageerror")) and WIDGET_ERROR.search(ln)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright; skipped (with the reason) where chromium is absent."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):    # CI must really run the browser; `make test` installs chromium
            pytest.fail(f"{CHROMIUM} not found in CI: `make test` should have installed it with apt-get")
        pytest.skip(f"{CHROMIUM} not found: `apt-get install -y chromium` (make test does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
    pw = sync_api.sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


def _open_page(pw: Any, profile: Path, console: _Console) -> Any:
    """A fresh chromium profile per test: no cache or stored state leaks between runs."""
    context = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.on("console", lambda m: console.lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.lines.append(f"pageerror: {e}"))
    return context, page


def _open_notebook(page: Any, lab: _Lab, rel: str) -> None:
    """Open a notebook and wait until its kernel reports Idle in the status bar."""
    page.goto(lab.url(f"lab/tree/{rel}") + "&reset", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        # A notebook without kernelspec metadata makes JupyterLab ask; take its default (Python 3).
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count() and dialog.first.is_visible():
            dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
        if page.locator("#jp-main-statusbar", has_text=re.compile(r"\|\s*Idle")).count():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"kernel of {rel} never became idle")


def _run_all_cells(page: Any, timeout_s: float) -> None:
    """Run > Run All Cells, as a learner would, then wait until every cell has run."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    _wait_until_done(page, timeout_s)


def _python_errors(page: Any) -> list[str]:
    """Tracebacks or widget-error placeholders printed in the notebook's outputs."""
    return page.evaluate(
        """() => [...document.querySelectorAll(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
              .map(e => e.innerText)
              .filter(t => /Traceback|Error/.test(t))
              .concat([...document.querySelectorAll('.jp-OutputArea-output')]
                .map(e => e.innerText)
                .filter(t => /Error displaying widget|Failed to load model class/.test(t)))"""
    )


# Plotly keeps the figure on its graph <div> (gd.data); `_fullData` holds the decoded arrays,
# including the binary-encoded numpy arrays plotly >= 6 sends.
_PLOT_DATA_JS = """(sel) => [...document.querySelectorAll(sel)].map(gd => (gd._fullData || gd.data || [])
    .map(t => ({name: t.name ?? null, type: t.type,
                x: t.x ? Array.from(t.x) : null, y: t.y ? Array.from(t.y) : null})))"""


def _failure_evidence(context: Any, name: str, lab: _Lab) -> None:
    """On failure, keep what a person needs to see why: the page and the server log."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"{name}-server.log").write_text(lab.log_tail(400))
    if context is not None and context.pages:
        try:
            context.pages[0].screenshot(path=str(SHOTS / f"{name}-failure.png"), full_page=True)
        except Exception:  # the page may be gone; the logs still help
            pass


def _plots(page: Any, selector: str = ".js-plotly-plot") -> list[list[dict[str, Any]]]:
    return page.evaluate(_PLOT_DATA_JS, selector)


def _plot_drawn(page: Any, selector: str, *, unlike: list[dict[str, Any]] | None = None,
                timeout_s: float = 120) -> list[dict[str, Any]]:
    """The traces of the first plot under `selector`, once plotly has drawn some (and, with
    `unlike`, once they differ from those): the kernel's status line is written before the
    browser redraws the figure, and on a loaded machine the redraw comes seconds later."""
    page.wait_for_function(
        """([sel, old]) => {
            const gd = document.querySelector(sel), d = gd && (gd._fullData || gd.data);
            const key = (ts) => JSON.stringify(ts.map(t => [t.name ?? null, t.y ? Array.from(t.y) : null]));
            return !!d && d.length > 0 && (old === null || key(d) !== key(old));
        }""", arg=[selector, unlike], timeout=int(timeout_s * 1000), polling=250)
    return page.evaluate(_PLOT_DATA_JS, selector)[0]


def _sankey_labels(page: Any, box: Any, expect: str, timeout_s: float = 60) -> list[str]:
    """The node labels of the Sankey in `box` (a flow explorer), once one of them is `expect` or
    `timeout_s` has passed: the status line is written before plotly redraws the figure."""
    js = "gd => { const d = gd && (gd._fullData || gd.data) || []; const t = d.find(t => t.node);" \
         " return t ? Array.from(t.node.label) : []; }"
    plot = box.locator(".js-plotly-plot").first
    try:
        page.wait_for_function(f"([gd, want]) => ({js})(gd).includes(want)", arg=[plot.element_handle(), expect],
                               timeout=int(timeout_s * 1000), polling=250)
    except Exception as e:                      # playwright's TimeoutError
        if "Timeout" not in type(e).__name__:
            raise           # else the caller's assertion shows what was drawn instead
    return plot.evaluate(js)


def _drag_slider(page: Any, slider: Any, fraction: float) -> None:
    """Move an ipywidgets slider with the mouse: press on its handle, drag along the track."""
    slider.scroll_into_view_if_needed()
    track = slider.locator(".noUi-target, .slider-container").first
    handle = slider.locator(".noUi-handle").first
    tb, hb = track.bounding_box(), handle.bounding_box()
    assert tb and hb, "slider has no layout box (not rendered?)"
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    target_x = tb["x"] + tb["width"] * fraction
    page.mouse.move(target_x, hb["y"] + hb["height"] / 2, steps=12)
    page.mouse.up()


def _slider_value(slider: Any) -> str:
    # text_content, not inner_text: a cell outside the viewport may be skipped by the renderer
    return (slider.locator(".widget-readout").first.text_content() or "").strip()


# ---------------------------------------------------------------------------------------------
# The widget stack on its own: plotly FigureWidget + ipywidgets slider, no meshlab involved.
# ---------------------------------------------------------------------------------------------

_SCRATCH_CELLS = [
    "import ipywidgets as widgets\nimport plotly.graph_objects as go",
    # FigureWidget: plotly >= 6 renders it through anywidget; updates are sent as deltas.
    (
        "fig = go.FigureWidget(go.Bar(x=['v1', 'v2'], y=[90, 10], name='configured'))\n"
        "fig.update_layout(title='scratch: FigureWidget', height=320, yaxis_range=[0, 100])\n"
        "slider = widgets.IntSlider(value=90, min=0, max=100, description='v1 weight')\n"
        "slider.add_class('scratch-figurewidget-slider')\n"
        "def _redraw(change):\n"
        "    fig.data[0].y = [change['new'], 100 - change['new']]\n"
        "slider.observe(_redraw, names='value')\n"
        "widgets.VBox([slider, fig])"
    ),
    # The fallback: a plain figure re-shown inside an ipywidgets.Output on every change.
    (
        "out = widgets.Output()\n"
        "slider2 = widgets.IntSlider(value=90, min=0, max=100, description='v1 weight')\n"
        "slider2.add_class('scratch-output-slider')\n"
        "def _show(w):\n"
        "    f = go.Figure(go.Bar(x=['v1', 'v2'], y=[w, 100 - w], name='configured'))\n"
        "    f.update_layout(title='scratch: Output + show', height=320, yaxis_range=[0, 100])\n"
        "    with out:\n"
        "        out.clear_output(wait=True)\n"
        "        f.show()\n"
        "slider2.observe(lambda c: _show(c['new']), names='value')\n"
        "_show(slider2.value)\n"
        "widgets.VBox([slider2, out])"
    ),
]


def _write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


def _bars(plot: list[dict[str, Any]]) -> list[float]:
    return [float(v) for v in plot[0]["y"]]


@contextlib.contextmanager
def _session(
    pw: Any, tmp_path: Path, root: Path, name: str, disabled: tuple[str, ...] = (),
    app_settings: Path | None = None,
) -> Iterator[tuple[_Lab, Any, _Console]]:
    """JupyterLab on `root` + a fresh chromium page; on failure keep a screenshot and the server
    log; always keep the browser console under build/browser/<name>-console.log."""
    lab = _start_jupyterlab(root, tmp_path / "jupyter", disabled, app_settings)
    console = _Console()
    context = None
    try:
        context, page = _open_page(pw, tmp_path / "profile", console)
        yield lab, page, console
    except BaseException:
        _failure_evidence(context, name, lab)
        raise
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{name}-console.log").write_text("\n".join(console.lines) + "\n")
        if context is not None:
            context.close()
        _stop(lab)


def _shoot(page: Any, name: str, chart: Any | None = None) -> None:
    """The whole JupyterLab window, plus the chart alone (JupyterLab scrolls inside the page,
    so a full-page shot would not show a chart below the fold)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if chart is not None:
        chart.scroll_into_view_if_needed()
        chart.screenshot(path=str(SHOTS / f"{name}-chart.png"))
    page.screenshot(path=str(SHOTS / f"{name}.png"))


_SCRATCH_SLIDERS = ("scratch-figurewidget-slider", "scratch-output-slider")


def test_figurewidget_and_output_charts_follow_a_slider(browser: Any, tmp_path: Path) -> None:
    """Both ways of drawing a live plotly chart render in JupyterLab 4 and follow a dragged
    slider: the FigureWidget (anywidget) and the Output + fig.show() fallback."""
    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root / "scratch.ipynb", _SCRATCH_CELLS)
    with _session(browser, tmp_path, root, "scratch") as (lab, page, console):
        _open_notebook(page, lab, "scratch.ipynb")
        _run_all_cells(page, timeout_s=120)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2",
                               timeout=60_000)
        chart = page.locator(".js-plotly-plot").first
        _shoot(page, "scratch-before", chart)
        before = _plots(page)
        assert [_bars(p) for p in before] == [[90.0, 10.0], [90.0, 10.0]], before

        for cls in _SCRATCH_SLIDERS:
            _drag_slider(page, page.locator(f".{cls}"), fraction=0.25)
        page.wait_for_function(
            """() => [...document.querySelectorAll('.js-plotly-plot')]
                     .every(gd => (gd._fullData || gd.data)[0].y[0] < 50)""",
            timeout=30_000,
        )
        _shoot(page, "scratch-after", chart)
        after = _plots(page)
        readouts = [int(_slider_value(page.locator(f".{c}"))) for c in _SCRATCH_SLIDERS]
        assert all(v < 50 for v in readouts), readouts
        for plot, value in zip(after, readouts):
            assert _bars(plot) == [float(value), float(100 - value)], (after, readouts)
        assert not _python_errors(page), _python_errors(page)
        assert not console.widget_errors(), console.widget_errors()


def test_a_missing_widget_front_end_is_caught(browser: Any, tmp_path: Path) -> None:
    """Negative control: with anywidget's JupyterLab extension switched off (what a learner gets
    when the front end is missing), the console check must report it and the FigureWidget must
    not draw, while the Output + show() chart, which needs no widget module of its own, still does.
    Without this, a console filter that matched nothing would pass every time."""
    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root / "scratch.ipynb", _SCRATCH_CELLS)
    with _session(browser, tmp_path, root, "scratch-broken", disabled=("anywidget",)) as (
        lab, page, console,
    ):
        _open_notebook(page, lab, "scratch.ipynb")
        _run_all_cells(page, timeout_s=120)
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        deadline = time.monotonic() + 30
        while not console.widget_errors() and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        errors = console.widget_errors()
        assert any("anywidget" in e for e in errors), console.lines
        assert [_bars(p) for p in _plots(page)] == [[90.0, 10.0]]


# ---------------------------------------------------------------------------------------------
# Helpers for the course tests.
# ---------------------------------------------------------------------------------------------

def _tree_memory_mb(root_pid: int) -> tuple[float, int]:
    """(PSS in MB, process count) of a process and all its descendants: JupyterLab, the kernel,
    and what the kernel started (Envoy, pods). PSS splits shared pages fairly, so forked pods are
    not counted many times over. Linux /proc only."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, seen = [root_pid], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    total_kb = 0
    for pid in seen:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024, len(seen)


def _wait_until_done(page: Any, timeout_s: float, upto: int | None = None) -> None:
    """Wait until no code cell is queued or running, then insist each ran (a number in its prompt);
    a cell that raised stops the run, and its traceback becomes the failure message."""
    page.wait_for_function(
        """(upto) => {
            let p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            if (upto !== null) p = p.slice(0, upto);
            const busy = p.some(e => e.textContent.includes('*'));
            const done = p.every(e => /\\[\\d+\\]/.test(e.textContent));
            const failed = document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
            return !busy && p.length > 0 && (done || failed !== null);
        }""",
        arg=upto,
        timeout=int(timeout_s * 1000),
        polling=500,
    )
    prompts = page.evaluate("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                            ".map(e => e.textContent)")
    todo = prompts if upto is None else prompts[:upto]
    not_run = [i for i, t in enumerate(todo) if not re.search(r"\[\d+\]", t)]
    assert not not_run, f"code cells {not_run} did not run: {_python_errors(page)}"


def _shares(plot: list[dict[str, Any]], name: str) -> dict[str, float]:
    trace = next((t for t in plot if t["name"] == name), None)
    assert trace is not None, f"no trace named {name!r} in {plot}"
    return {str(x): float(y) for x, y in zip(trace["x"], trace["y"])}


# ---------------------------------------------------------------------------------------------
# The course itself, as a learner lives it: Run All, then move each chapter's widget.
# ---------------------------------------------------------------------------------------------

CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))

# Markdown that did not render: emphasis or code marks left as text (outside code blocks).
_UNRENDERED_MARKDOWN_JS = """() => [...document.querySelectorAll('.jp-MarkdownOutput')].map(el => {
        const c = el.cloneNode(true);
        c.querySelectorAll('pre, code').forEach(x => x.remove());
        return c.textContent;
    }).filter(t => /\\*\\*|\\*["“”]|["“”]\\*|`/.test(t)).map(t => t.slice(0, 160))"""

# Controls whose label is cut short (text wider than the button).
_TRUNCATED_JS = """(sel) => [...document.querySelectorAll(sel)]
    .filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent)"""


def _copy_course(tmp_path: Path) -> Path:
    """A copy of the chapters for JupyterLab to open (it saves what it shows; the course is
    stored without outputs)."""
    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


def _box(page: Any, css: str) -> Any:
    box = page.locator(f".meshlab-explorer.{css}").first
    box.wait_for(timeout=60_000)
    box.scroll_into_view_if_needed()
    return box


def _status(box: Any) -> str:
    return (box.locator(".meshlab-status").first.text_content() or "").strip()


def _arm(box: Any) -> None:
    """Start counting changes of the explorer's status line (call before moving its control).
    A move writes the line at least twice (⏳, then ✔ or ✘), even when the final text happens
    to equal the one before, so counting changes is what tells a new result from an old one."""
    box.locator(".meshlab-status").first.evaluate(
        """el => { el.__changes = 0;
                   if (el.__observer) el.__observer.disconnect();
                   el.__observer = new MutationObserver(() => { el.__changes += 1; });
                   el.__observer.observe(el, {subtree: true, childList: true, characterData: true}); }""")


def _after_move(page: Any, box: Any, timeout_s: float = 120) -> str:
    """Wait until the status line (see `_arm`) was rewritten and is no longer busy; its text."""
    handle = box.locator(".meshlab-status").first.element_handle()
    page.wait_for_function(
        "(el) => el.__changes >= 2 && el.textContent.trim().length > 0 && !el.textContent.includes('⏳')",
        arg=handle, timeout=int(timeout_s * 1000), polling=250)
    return _status(box)


def _output_of(page: Any, needle: str) -> Any:
    """The output area of the first code cell whose source contains `needle`."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=needle)).first
    out = cell.locator(".jp-OutputArea").first
    out.scroll_into_view_if_needed()
    return out


def _shoot_output(page: Any, needle: str, name: str) -> Any:
    out = _output_of(page, needle)
    SHOTS.mkdir(parents=True, exist_ok=True)
    out.screenshot(path=str(SHOTS / f"{name}.png"))
    return out


def _chapter_0(page: Any, lab: _Lab) -> None:
    # the seed quote renders (no literal *"…"*), the probe table shows who answered first
    quote = page.locator(".jp-MarkdownOutput blockquote").first
    assert quote.locator("strong").count() == 1, quote.inner_html()
    quote.screenshot(path=str(SHOTS / "ch00-quote.png"))
    table = _shoot_output(page, "first.head()", "ch00-probe-table")
    headers = [h.strip() for h in table.locator("thead th").all_text_contents() if h.strip()]
    assert headers.index("pod") < headers.index("cluster") and headers.index("pod") <= 4, headers
    box = table.bounding_box()
    pod_x = table.locator("thead th", has_text=re.compile(r"^pod$")).first.bounding_box()
    assert box and pod_x and pod_x["x"] + pod_x["width"] <= box["x"] + box["width"], "pod column off-screen"
    doctor = _shoot_output(page, "meshlab doctor", "ch00-doctor")
    assert (doctor.inner_text().strip().splitlines() or [""])[0].startswith("local backend: ready")
    _shoot_output(page, 'check("0.predict-versions"', "ch00-predict-check")

    ex = _box(page, "meshlab-probe")
    slider = ex.locator(".meshlab-requests-slider").first
    n0 = int(_slider_value(slider))
    _arm(ex)
    _drag_slider(page, slider, 0.9)
    status = _after_move(page, ex)
    n1 = int(_slider_value(slider))
    assert n1 > n0 + 100 and f"all {n1} requests got 200" in status, (n0, n1, status)
    plot = _plot_drawn(page, ".meshlab-probe .js-plotly-plot")
    assert sum(1 for t in plot for y in t["y"] if y > 0) == 3, plot       # three pods answered
    _shoot(page, "ch00-widget-after-move", ex.locator(".js-plotly-plot").first)


def _chapter_1(page: Any, lab: _Lab) -> None:
    # the unready pod is shown at 0 %, marked, instead of vanishing
    out = _shoot_output(page, "v2 not ready", "ch01-unready-pod-at-0")
    labels = out.locator(".bartext").all_text_contents()
    assert any(t.startswith("not ready") and t.endswith("0%") for t in labels), labels
    slices = _shoot_output(page, 'set_pod(v2_pod, ready=False)', "ch01-endpointslice")
    assert "in EndpointSlice" in slices.inner_text()

    ex = _box(page, "meshlab-connections")
    slider = ex.locator(".meshlab-connections-slider").first
    assert _slider_value(slider) == "new per request"          # where Run All's cell left it
    _arm(ex)
    _drag_slider(page, slider, 0.0)
    status = _after_move(page, ex)
    assert _slider_value(slider) == "1" and "1 connection(s) carried 48 requests; 1 pod(s)" in status, status
    _shoot(page, "ch01-widget-after-move", ex.locator(".js-plotly-plot").first)


def _chapter_2(page: Any, lab: _Lab) -> None:
    _shoot_output(page, "over_tcp = lab.probe", "ch02-tcp-per-connection")
    ex = _box(page, "meshlab-lb")
    assert not page.evaluate(_TRUNCATED_JS, ".meshlab-lb-picker button")
    _arm(ex)
    ex.locator(".meshlab-lb-picker button", has_text="RANDOM").first.click()
    status = _after_move(page, ex)
    assert status.startswith("✔ RANDOM"), status
    assert "DestinationRule default/reviews" in (ex.locator(".meshlab-scope").first.text_content() or "")
    ex.screenshot(path=str(SHOTS / "ch02-widget-after-move.png"))


def _chapter_3(page: Any, lab: _Lab) -> None:
    box = _box(page, "meshlab-weights")
    slider = box.locator(".meshlab-weight-slider").first
    moved = (slider.locator(".widget-label").first.text_content() or "").split()[0]   # "v2 %" -> v2
    w0 = int(_slider_value(slider))
    before = _plot_drawn(page, ".meshlab-weights .js-plotly-plot")
    assert _shares(before, "configured")[moved] == pytest.approx(w0 / 100), before
    _shoot(page, "weights-before", box.locator(".js-plotly-plot").first)
    _arm(box)
    _drag_slider(page, slider, 0.95 if w0 <= 50 else 0.05)
    status = _after_move(page, box)
    w1 = int(_slider_value(slider))
    after = _plot_drawn(page, ".meshlab-weights .js-plotly-plot", unlike=before)
    _shoot(page, "weights-after", box.locator(".js-plotly-plot").first)
    assert status.startswith("✔") and abs(w1 - w0) >= 40, (w0, w1, status)
    assert _shares(after, "configured")[moved] == pytest.approx(w1 / 100), after
    # real Envoy traffic: the observed share follows the configured one (seeded requests, a few
    # points of noise; half the configured move is a generous margin)
    observed_before = _shares(before, "observed").get(moved, 0.0)
    observed_after = _shares(after, "observed").get(moved, 0.0)
    assert (observed_after - observed_before) * (w1 - w0) > 0, (before, after)
    assert abs(observed_after - observed_before) >= abs(w1 - w0) / 200, (before, after)
    scope = box.locator(".meshlab-scope").first.text_content() or ""
    assert "changes VirtualService default/reviews" in scope and "VirtualService default/reviews (2 http rules)" in scope

    # the slider did not change what the path explorer below sees: the seed's VirtualService
    flow = _box(page, "meshlab-flow")
    _arm(flow)
    field = flow.locator(".meshlab-path-input input").first
    field.fill("/wpcatalog/after-the-slider")
    field.press("Enter")
    status = _after_move(page, flow)
    labels = _sankey_labels(page, flow, "route reviews-v2-routes")
    assert "all 20 requests got 200" in status, status
    assert "route reviews-v2-routes" in labels, labels
    assert not any("|v1|" in x or x.startswith("reviews-v1") for x in labels), labels
    flow.screenshot(path=str(SHOTS / "ch03-path-after-the-slider.png"))

    # Binder guarantees 1 GB and caps at 2 GB: everything the learner's session runs must fit.
    mb, procs = _tree_memory_mb(lab.proc.pid)
    (SHOTS / "weights-memory.txt").write_text(
        f"JupyterLab + kernel + lab after chapter 3 and a slider move: {mb:.0f} MB PSS in {procs} processes\n")
    assert mb < 2048, f"{mb:.0f} MB in {procs} processes: over Binder's 2 GB"


def _chapter_4(page: Any, lab: _Lab) -> None:
    ex = _box(page, "meshlab-order")
    picker = ex.locator(".meshlab-order-picker").first
    picker.screenshot(path=str(SHOTS / "ch04-order-buttons.png"))
    assert not page.evaluate(_TRUNCATED_JS, ".meshlab-order-picker button"), "order buttons cut short"
    texts = [t.strip() for t in picker.locator("button").all_text_contents()]
    assert "VirtualService first (unsafe)" in texts and "DestinationRule first (safe)" in texts, texts
    before = (_plots(page, ".meshlab-order .js-plotly-plot") or [[]])[0]
    _arm(ex)
    picker.locator("button", has_text="VirtualService first").first.click()
    status = _after_move(page, ex)
    plot = _plot_drawn(page, ".meshlab-order .js-plotly-plot", unlike=before or None)
    assert any(t["name"] == "503 NC" for t in plot), plot
    assert "got 503 NC" in status and "×" not in status, status
    _shoot(page, "ch04-widget-after-move", ex.locator(".js-plotly-plot").first)
    _shoot_output(page, 'check("4.fix-with-serviceentry"', "ch04-serviceentry-check")


def _chapter_7(page: Any, lab: _Lab) -> None:
    box = _box(page, "meshlab-gap")
    slider = box.locator(".meshlab-gap-slider").first
    _arm(box)
    _drag_slider(page, slider, 0.05)
    status = _after_move(page, box)
    ms = int(_slider_value(slider))
    assert status.startswith("✔") and f"one every {ms} ms" in status, (ms, status)
    plot = page.evaluate(_PLOT_DATA_JS, ".meshlab-gap .js-plotly-plot")[0]
    assert plot and all(len(t["x"]) >= 6 for t in plot), plot    # the 5 intervals of Run All and this one
    _shoot(page, "ch07-widget-after-move", box.locator(".js-plotly-plot").first)


def _chapter_8(page: Any, lab: _Lab) -> None:
    box = _box(page, "meshlab-hash")
    picker = box.locator(".meshlab-hash-picker").first
    assert not page.evaluate(_TRUNCATED_JS, ".meshlab-hash-picker button"), "hash buttons cut short"
    _arm(box)
    picker.locator("button", has_text="header end-user").first.click()
    status = _after_move(page, box)
    assert status.startswith("✔") and "jason 1, ana 1, li 1" in status, status    # one pod per user
    _shoot(page, "ch08-widget-after-move", box.locator(".js-plotly-plot").first)


def _chapter_5(page: Any, lab: _Lab) -> None:
    ex = _box(page, "meshlab-timeouts")
    slider = ex.locator(".meshlab-timeout-slider").first
    assert _slider_value(slider) == "100"                      # where Run All's cell left it
    _arm(ex)
    _drag_slider(page, slider, 0.0)
    status = _after_move(page, ex)
    assert _slider_value(slider) == "25" and status.startswith("✔") and "retried" in status, status
    plot = _plot_drawn(page, ".meshlab-timeouts .js-plotly-plot")
    assert {t["type"] for t in plot} == {"histogram"} and sum(len(t["x"]) for t in plot) == 60, plot
    _shoot(page, "ch05-widget-after-move", ex.locator(".js-plotly-plot").first)


def _chapter_6(page: Any, lab: _Lab) -> None:
    ex = _box(page, "meshlab-concurrency")
    slider = ex.locator(".meshlab-concurrency-slider").first
    assert _slider_value(slider) == "16"
    before = (_plots(page, ".meshlab-concurrency .js-plotly-plot") or [[]])[0]
    _arm(ex)
    _drag_slider(page, slider, 0.0)
    status = _after_move(page, ex)
    # the lab ends the chapter without a connection pool (v2 answering 500): nothing refused
    assert _slider_value(slider) == "1" and status.startswith("✔ 1 at a time: ") and "UO" not in status, status
    _shoot(page, "ch06-widget-after-move", ex.locator(".js-plotly-plot").first)
    plot = _plot_drawn(page, ".meshlab-concurrency .js-plotly-plot", unlike=before or None)
    assert "1 at a time" in _shares(plot, "sent at once"), plot


MOVES = {"00": _chapter_0, "01": _chapter_1, "02": _chapter_2, "03": _chapter_3, "04": _chapter_4,
         "05": _chapter_5, "06": _chapter_6}
MOVES.update({"07": _chapter_7, "08": _chapter_8})


def _chapter_9(page: Any, lab: _Lab) -> None:
    # the path explorer sends through the Gateway's own Envoy (web-istio): /wpcatalogue is not under
    # the PathPrefix /wpcatalog segment, so the HTTPRoute's last rule serves it from reviews-v1
    flow = _box(page, "meshlab-flow")
    _arm(flow)
    field = flow.locator(".meshlab-path-input input").first
    field.fill("/wpcatalogue")
    field.press("Enter")
    status = _after_move(page, flow)
    labels = _sankey_labels(page, flow, "route default.reviews.1")
    assert "all 20 requests got 200" in status, status
    assert "route default.reviews.1" in labels, labels
    assert not any("reviews-v2" in x for x in labels), labels
    flow.screenshot(path=str(SHOTS / "ch09-wpcatalogue-through-web-istio.png"))


def _poke_path(page: Any) -> None:
    field = page.locator(".meshlab-flow .meshlab-path-input input").first
    field.fill("/wpcatalog/closed")
    field.press("Enter")


MOVES.update({"09": _chapter_9})
# After the lab is closed: the control each chapter pokes once more, to see the widget say so.
POKES = {
    "00": lambda page: _drag_slider(page, page.locator(".meshlab-requests-slider").first, 0.2),
    "01": lambda page: _drag_slider(page, page.locator(".meshlab-connections-slider").first, 0.5),
    "02": lambda page: page.locator(".meshlab-lb-picker button", has_text="ROUND_ROBIN").first.click(),
    "03": lambda page: _drag_slider(page, page.locator(".meshlab-weight-slider").first, 0.5),
    "04": lambda page: page.locator(".meshlab-order-picker button", has_text="DestinationRule first").first.click(),
    "05": lambda page: _drag_slider(page, page.locator(".meshlab-timeout-slider").first, 0.5),
    "06": lambda page: _drag_slider(page, page.locator(".meshlab-concurrency-slider").first, 0.5),
}
POKED = {"00": "meshlab-probe", "01": "meshlab-connections", "02": "meshlab-lb", "03": "meshlab-weights",
         "04": "meshlab-order", "05": "meshlab-timeouts", "06": "meshlab-concurrency"}
POKES.update({
    "07": lambda page: _drag_slider(page, page.locator(".meshlab-gap-slider").first, 0.3),
    "08": lambda page: page.locator(".meshlab-hash-picker button", has_text="no hash").first.click(),
})
POKED.update({"07": "meshlab-gap", "08": "meshlab-hash"})
POKES.update({"09": _poke_path})
POKED.update({"09": "meshlab-flow"})


@pytest.mark.timeout(900)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_run_all_leaves_working_widgets(browser: Any, tmp_path: Path, chapter: Path) -> None:
    """A learner's Run All, then a widget move, in a real JupyterLab: every widget still works
    (no last cell closes the lab), each says what it changes and runs against, markdown renders,
    buttons show their whole labels; then the close button closes the lab and the widget says
    how to start a new one."""
    nn = chapter.name[:2]
    root = _copy_course(tmp_path)
    with _session(browser, tmp_path, root, f"ch{nn}") as (lab, page, console):
        _open_notebook(page, lab, chapter.name)
        _run_all_cells(page, timeout_s=600)
        assert not _python_errors(page), _python_errors(page)
        assert not page.evaluate(_UNRENDERED_MARKDOWN_JS), page.evaluate(_UNRENDERED_MARKDOWN_JS)
        explorers = page.locator(".meshlab-explorer")
        assert explorers.count() >= 1
        for i in range(explorers.count()):
            box = explorers.nth(i)
            scope = box.locator(".meshlab-scope").first.text_content() or ""
            assert "changes" in scope and "runs against" in scope, scope
            assert "✘" not in (box.inner_text() or ""), box.inner_text()
        _shoot(page, f"ch{nn}-after-run-all")

        MOVES[nn](page, lab)
        assert not _python_errors(page), _python_errors(page)
        assert not console.widget_errors(), console.widget_errors()

        # closing is one obvious button, never a cell; a closed lab says how to start again
        closer = page.locator(".meshlab-lab-closer").first
        closer.scroll_into_view_if_needed()
        assert "lab is running" in (closer.inner_text() or "")
        closer.locator(".meshlab-close-lab").first.click()
        page.wait_for_function("() => document.querySelector('.meshlab-close-status').textContent.includes('Closed')",
                               timeout=60_000)
        closer.screenshot(path=str(SHOTS / f"ch{nn}-lab-closed.png"))
        box = _box(page, POKED[nn])
        _arm(box)
        POKES[nn](page)
        status = _after_move(page, box)
        assert status.startswith("✘") and "this lab is closed" in status and "Run All Cells" in status, status
        box.screenshot(path=str(SHOTS / f"ch{nn}-widget-on-a-closed-lab.png"))


# ---------------------------------------------------------------------------------------------
# The course's settings: JupyterLab opens without the "news?" pop-up.
# ---------------------------------------------------------------------------------------------

def _news_toast_within(page: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.locator(".jp-toast-message, .Toastify__toast", has_text="Jupyter news").count():
            return True
        page.wait_for_timeout(250)
    return False


@pytest.mark.parametrize("course_settings", [True, False], ids=["course-settings", "control-without"])
def test_no_news_pop_up_with_the_course_settings(browser: Any, tmp_path: Path, course_settings: bool) -> None:
    """With course/jupyterlab/overrides.json as the environment's defaults (what course/prepare.py
    installs) JupyterLab does not ask about news; without it (the control) it does, so the check
    can fail."""
    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root / "scratch.ipynb", ["1 + 1"])
    settings = tmp_path / "app-settings"
    settings.mkdir()
    if course_settings:
        shutil.copy(REPO / "course" / "jupyterlab" / "overrides.json", settings / "overrides.json")
    name = "news-" + ("off" if course_settings else "control")
    with _session(browser, tmp_path, root, name, app_settings=settings) as (lab, page, console):
        _open_notebook(page, lab, "scratch.ipynb")
        asked = _news_toast_within(page, 20 if course_settings else 60)
        _shoot(page, name)
        assert asked is (not course_settings)


# ---------------------------------------------------------------------------------------------
# `make course`: the HTML pages show every chart with the network cut off.
# ---------------------------------------------------------------------------------------------

def test_course_html_shows_every_chart_offline(browser: Any, tmp_path: Path) -> None:
    """`make course` for chapter 0 in a copy of the project, then the page in chromium with every
    request that is not a local file refused: each chart (the widget's static twin included) is
    drawn by the one plotly.min.js beside the page. Control: without that file the charts say
    so in words."""
    project = tmp_path / "project"
    for part in ("notebooks", "course"):
        shutil.copytree(REPO / part, project / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    shutil.copy(REPO / "Makefile", project / "Makefile")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    venv = Path(JUPYTER_PYTHON).parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    built = subprocess.run(["make", "-C", str(project), "course", "NO_INSTALL=1", f"VENV={venv}",
                            "CHAPTERS=notebooks/00-orientation.ipynb"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    page_file = project / "build" / "00-orientation.html"
    size = page_file.stat().st_size
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "course-page-size.txt").write_text(
        f"build/00-orientation.html: {size / 1e6:.2f} MB (+ one build/plotly.min.js for every page)\n")
    assert size < 1_000_000, f"{size} bytes: widget state or plotly.js inside the page?"

    asked: list[str] = []
    context = browser.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1300, "height": 1000})
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                      else (asked.append(route.request.url), route.abort()))
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.meshlab-chart').length > 0 && "
                               "[...document.querySelectorAll('.meshlab-chart')].every(e => e.querySelector('svg'))",
                               timeout=60_000)
        charts = page.locator(".meshlab-chart")
        assert charts.count() >= 3            # pod_share, the widget's static twin, explorer.chart()
        bars = page.evaluate("() => [...document.querySelectorAll('.meshlab-chart')].map(e => e.querySelectorAll('.point').length)")
        assert all(b > 0 for b in bars), bars
        charts.first.scroll_into_view_if_needed()
        charts.first.screenshot(path=str(SHOTS / "course-offline-chart.png"))
        assert asked == [], f"the page asked the network for {asked}"

        (project / "build" / "plotly.min.js").unlink()        # the control: no plotly.js at all
        page.reload()
        page.wait_for_timeout(1000)
        texts = page.evaluate("() => [...document.querySelectorAll('.meshlab-chart')].map(e => e.textContent)")
        assert texts and all("needs plotly.js" in t for t in texts), texts
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# Binder: what a learner sees first after clicking the badge.
# ---------------------------------------------------------------------------------------------

def test_binder_postbuild_opens_jupyterlab_on_the_course(browser: Any, tmp_path: Path) -> None:
    """Run binder/postBuild as repo2docker would (from the repository root, after the install),
    then open plain `/lab` (what `jupyter-repo2docker .` opens): chapter 0 must be the open tab,
    with its kernel up, and the file browser in notebooks/."""
    root = tmp_path / "repo"
    for part in ("notebooks", "binder", "course"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    home = tmp_path / "jupyter"
    (home / "workspaces").mkdir(parents=True)
    env = {**os.environ, "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "PATH": f"{Path(JUPYTER_PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    built = subprocess.run(["bash", "binder/postBuild"], cwd=root, env=env, capture_output=True,
                           text=True, timeout=180)
    assert built.returncode == 0, f"binder/postBuild failed:\n{built.stdout}\n{built.stderr}"
    assert "envoy OK" in built.stdout, built.stdout

    first = json.loads((REPO / "binder" / "workspace.json").read_text())["data"][
        "layout-restorer:data"]["main"]["current"].split(":", 1)[1]
    with _session(browser, tmp_path, root, "binder") as (lab, page, console):
        page.goto(lab.url("lab"), wait_until="domcontentloaded")
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
        tab.wait_for(timeout=90_000)
        page.wait_for_function(
            """(name) => {
                const t = document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');
                return t && t.textContent.includes(name);
            }""",
            arg=Path(first).name, timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.locator("#jp-main-statusbar", has_text=re.compile(r"\|\s*Idle")).wait_for(timeout=90_000)
        crumbs = page.locator(".jp-FileBrowser .jp-BreadCrumbs").first.text_content() or ""
        _shoot(page, "binder-landing")
        assert Path(first).name == "00-orientation.ipynb" or Path(first).name.startswith("00-")
        assert "my-notebooks" in crumbs, crumbs          # the learner's working copy, not the course's
        assert (root / "my-notebooks" / "00-orientation.ipynb").is_file()
        assert not console.widget_errors(), console.widget_errors()
