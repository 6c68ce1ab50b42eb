"""`explain(probe_df, lab)`: why did I get this 503 — and why did that request go where it went?

A probe's rows are grouped by outcome (status, Envoy flags, details, client error). Each group is
explained from what the lab really holds — its objects, its pods and the live Envoy config, read
through the Backend protocol (`context.py`) — and named by a stable code (`causes.CAUSES`:
`NC.undefined-subset`, `ok.virtualservice-route`, `note.vs-gateway-only`, …). A group's main cause
comes from the flag that decided it (`flags.py`), or, for answered requests, from the route they
took (`routing.py`); its `parts` add a cause for every other flag, the other routes, the
DestinationRule policy and the VirtualServices that did not apply. Every explanation also lists
what you would run on a real cluster to see the same thing.

The package is `explanation`, not `explain`: a subpackage `meshlab.explain` would take the place
of the public function `meshlab.explain` once imported.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..errors import ProbeError
from . import causes, flags, resilience, routing
from .causes import CAUSES, Cause
from .context import Context, client, text

__all__ = ["CAUSES", "Cause", "Explanation", "explain"]


@dataclass
class Explanation:
    """What a probe saw, explained. Prints as text; renders as HTML in a notebook."""

    causes: list[Cause]
    total: int

    def __iter__(self):
        return iter(self.causes)

    def __len__(self) -> int:
        return len(self.causes)

    def __getitem__(self, outcome: str) -> Cause:
        """The cause for a cause code (`"NC.undefined-subset"`, also one of a group's parts such as
        `"DI.fault-delay"`), an outcome label (`"503 NC"`) or a flag (`"NC"`)."""
        for c in self.causes:
            if outcome in (c.code, c.outcome) or outcome in c.outcome.split()[-1].split(","):
                return c
        for c in self.causes:
            for p in c.parts:
                if p.code == outcome:
                    return p
        raise KeyError(f"no outcome {outcome!r}; outcomes: {', '.join(c.outcome for c in self.causes)}")

    @property
    def codes(self) -> list[str]:
        """The groups' main cause codes, failures first (`["NC.undefined-subset", "ok.virtualservice-route"]`);
        each cause's `codes` adds its parts'."""
        return [c.code for c in self.causes]

    def to_frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame([c.to_dict() for c in self.causes])

    def __str__(self) -> str:
        if not self.causes:
            return "No requests to explain."
        lines = []
        for c in self.causes:
            lines.append(f"{c.outcome} — {c.count} of {self.total} requests ({c.share:.0%}) · {c.code}")
            lines.append(f"  {c.what}")
            if c.why:
                lines.append(f"  {'Why' if c.ok else 'Cause'}: {c.why}")
            if c.fix:
                lines.append(f"  Fix: {c.fix}")
            for p in c.parts:
                lines.append(f"  + {p.code}: {p.what}")
                if p.why:
                    lines.append(f"      {p.why}")
                if p.fix and not p.ok:
                    lines.append(f"      Fix: {p.fix}")
            for cmd in c.commands:
                lines.append(f"  $ {cmd}")
                if cmd == "istioctl analyze":
                    lines += [f"    {f}" for f in c.findings]
            lines.append("")
        return "\n".join(lines).rstrip()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self.causes:
            return "<p>No requests to explain.</p>"
        e = html.escape
        parts = ['<div class="meshlab-explain" style="font-family:sans-serif;line-height:1.4">']
        for c in self.causes:
            color = "#2e7d32" if c.ok else "#c62828"
            parts.append(f'<div style="border-left:4px solid {color};padding:4px 10px;margin:6px 0">'
                         f'<b style="color:{color}">{e(c.outcome)}</b> '
                         f'<span style="color:#666">{c.count} of {self.total} requests ({c.share:.0%}) · '
                         f'<code>{e(c.code)}</code></span>'
                         f'<div>{e(c.what)}</div>')
            if c.why:
                parts.append(f"<div><b>{'Why' if c.ok else 'Cause'}:</b> {e(c.why)}</div>")
            if c.fix:
                parts.append(f"<div><b>Fix:</b> {e(c.fix)}</div>")
            if c.parts:
                parts.append('<ul style="margin:2px 0 2px 0;padding-left:18px">' + "".join(
                    f'<li><code>{e(p.code)}</code> {e(p.what)}'
                    + (f' <span style="color:#555">{e(p.why)}</span>' if p.why else "")
                    + (f" <b>Fix:</b> {e(p.fix)}" if p.fix and not p.ok else "") + "</li>"
                    for p in c.parts) + "</ul>")
            if c.commands:
                cmds = "\n".join("$ " + cmd + "".join("\n  " + f for f in c.findings if cmd == "istioctl analyze")
                                  for cmd in c.commands)
                parts.append('<details><summary>On a real cluster</summary>'
                             f'<pre style="margin:2px 0">{e(cmds)}</pre></details>')
            parts.append("</div>")
        parts.append("</div>")
        return "".join(parts)


def explain(probe_df: Any, lab: Any, *, url: str | None = None, namespace: str | None = None) -> Explanation:
    """Group `probe_df` rows by outcome and explain each group from `lab`'s state and Envoy config.

    `lab` is a `meshlab.Lab` or a Backend (read only through `meshlab.backends.base.Backend`: its
    objects, pods and live Envoy config), or just a list of objects (then explanations rest on
    the objects alone). `url` / `namespace` say what the probe asked for (default:
    `probe_df.attrs`, if the probe recorded them); they sharpen the `dns` and `refused`
    explanations, which have no Envoy row to go by. Each cause carries a stable `code`
    (`meshlab.explanation.causes.CAUSES`).
    """
    if not hasattr(probe_df, "to_dict") and not (
            isinstance(probe_df, (list, tuple)) and all(isinstance(r, dict) for r in probe_df)):
        raise ProbeError(f"explain() takes what a probe returned (df = lab.probe(url); lab.explain(df)), "
                         f"not {type(probe_df).__name__} {probe_df!r:.60}")
    attrs = dict(getattr(probe_df, "attrs", {}) or {})
    attrs.update({k: v for k, v in (("url", url), ("namespace", namespace)) if v})
    ctx = Context(lab, attrs)
    rows = probe_df.to_dict("records") if hasattr(probe_df, "to_dict") else list(probe_df)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (int(r.get("status") or 0), text(r.get("flags")), text(r.get("details")), text(r.get("error")))
        groups.setdefault(key, []).append(r)
    total = len(rows)
    causes = []
    for key, grp in groups.items():
        cause = _explain_group(ctx, key, grp, rows)
        cause.count, cause.share = len(grp), len(grp) / total if total else 0.0
        if not cause.ok:
            cause.findings = [str(f) for f in ctx.findings if f.origin in cause.objects][:4]
            if cause.findings and "istioctl analyze" not in cause.commands:
                cause.commands.append("istioctl analyze")
        causes.append(cause)
    causes.sort(key=lambda c: (c.ok, -c.count))
    return Explanation(causes, total)


def _explain_group(ctx: Context, key: tuple, grp: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> Cause:
    """One outcome group: the main cause (what decided the outcome), with a part for every other
    Envoy flag, and for answered or unrouted requests the VirtualServices that did not apply."""
    status, flag_text, details, error = key
    flag_list = [f for f in flag_text.split(",") if f and f != "-"]
    label = (f"{status} {flag_text}" if flag_list else str(status)) if status else (error or flag_text or "no answer")
    proxy = text(grp[0].get("proxy")) or "sidecar"
    decided = flags.deciding(flag_list)
    if error == "dns":
        main = causes.dns(ctx, label)
    elif error == "refused":
        main = causes.refused(ctx, label, grp)
    elif decided:
        main = flags.cause(ctx, decided, label, grp, proxy, all_rows, flag_list, status)
    elif error in ("timeout", "reset"):
        main = causes.client_error(ctx, label, grp, error)
    elif 200 <= status < 400:
        main = routing.served(ctx, label, grp, proxy, all_rows)
    elif status >= 400 and (not flag_list or details == "via_upstream"):
        main = causes.app_error(ctx, label, grp, status)
        main.parts += resilience.outlier_parts(ctx, label, grp, proxy, status)
        main.parts += resilience.retried_parts(ctx, label, grp, proxy)
    elif flag_list:
        decided = flag_list[0]
        main = flags.cause(ctx, decided, label, grp, proxy, all_rows, flag_list, status)
    else:
        main = Cause("other.unexplained", label,
                     f"Status {status}, Envoy flags {flag_text or '(none)'}, details {details or '(none)'}"
                     f"{', client error ' + error if error else ''}.",
                     commands=[f"istioctl proxy-config all {client(proxy)}"])
    main.parts += [flags.cause(ctx, f, label, grp, proxy, all_rows, flag_list, status)
                   for f in flag_list if f != decided]
    if main.ok or main.code.startswith("NR."):
        # a note about the very object the main cause already names would say it twice
        main.parts += [n for n in routing.vs_notes(ctx, label, grp, proxy)
                       if main.ok or not set(n.objects) <= set(main.objects)]
    return main
