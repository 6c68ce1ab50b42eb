"""`explain(probe_df, lab)`: why did I get this 503? One short answer per kind of outcome.

A probe's rows are grouped by outcome (status, Envoy flags, details, client error). Each group is
explained from what the lab really holds — its objects, its pods and the live Envoy config, read
through the Backend protocol (`context.py`) — and named by a stable code (`causes.py`:
`NC.undefined-subset`, `UH.no-ready-endpoints`, `dns.no-service`, …). Every explanation also
lists what you would run on a real cluster to see the same thing.

The package is `explanation`, not `explain`: a subpackage `meshlab.explain` would take the place
of the public function `meshlab.explain` once imported.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..errors import ProbeError
from .causes import CAUSES, Cause, explain_group
from .context import Context, text

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
        """The cause for a cause code (`"NC.undefined-subset"`), an outcome label (`"503 NC"`) or
        a flag (`"NC"`)."""
        for c in self.causes:
            if outcome in (c.code, c.outcome) or outcome in c.outcome.split()[-1].split(","):
                return c
        raise KeyError(f"no outcome {outcome!r}; outcomes: {', '.join(c.outcome for c in self.causes)}")

    @property
    def codes(self) -> list[str]:
        """The cause codes, most requests first (`["NC.undefined-subset", "ok"]`)."""
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
                lines.append(f"  Cause: {c.why}")
            if c.fix:
                lines.append(f"  Fix: {c.fix}")
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
                parts.append(f"<div><b>Cause:</b> {e(c.why)}</div>")
            if c.fix:
                parts.append(f"<div><b>Fix:</b> {e(c.fix)}</div>")
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
        cause = explain_group(ctx, key, grp, rows)
        cause.count, cause.share = len(grp), len(grp) / total if total else 0.0
        if not cause.ok:
            cause.findings = [str(f) for f in ctx.findings if f.origin in cause.objects][:4]
            if cause.findings and "istioctl analyze" not in cause.commands:
                cause.commands.append("istioctl analyze")
        causes.append(cause)
    causes.sort(key=lambda c: (c.ok, -c.count))
    return Explanation(causes, total)
