"""The errors meshlab raises on purpose: each says what to fix, never a bare traceback."""

from __future__ import annotations

from dataclasses import dataclass


class MeshlabError(Exception):
    """Base of meshlab's own errors."""

    def _render_traceback_(self) -> list[str]:
        """What Jupyter shows instead of a traceback: the message says what to fix, and the
        frames inside meshlab would only bury it."""
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, line, object, field) and what."""

    message: str
    file: str | None = None
    line: int | None = None
    object: str | None = None   # "VirtualService default/reviews"
    field: str | None = None    # "spec.http[0].route[1].weight"

    def __str__(self) -> str:
        where = ":".join(str(x) for x in (self.file, self.line) if x is not None)
        parts = [p for p in (where, self.object, self.field) if p]
        return f"{' '.join(parts)}: {self.message}" if parts else self.message


class ManifestError(MeshlabError, ValueError):
    """Manifests that cannot be applied; nothing was applied. Carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def _render_traceback_(self) -> list[str]:
        """What Jupyter shows instead of a traceback: the problems, one per line, and nothing else."""
        n = len(self.problems)
        return [f"ManifestError: {n} {'problem' if n == 1 else 'problems'}, nothing was applied",
                *(f"  {p}" for p in self.problems)]


class ApplyError(MeshlabError):
    """The cluster refused a change (e.g. a namespace that does not exist); nothing was changed."""


class LabClosed(MeshlabError):
    """The lab was closed (`lab.close()`): its Envoy proxies and pods are gone. The message says
    how to start a new one."""
