"""meshlab: see Kubernetes and Istio traffic management with a real Envoy.

The public surface, re-exported here; everything else is private. Imports are lazy (PEP 562) so
`meshlab validate` starts without pandas and plotly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import charts, widgets
    from .analysis import Finding, analyze
    from .errors import ApplyError, EnvoyConfigRejected, ManifestError, MeshlabError, Problem
    from .exercises import check
    from .explanation import Explanation, explain
    from .lab import Lab
    from .manifests import LoadReport, Manifests, load, load_report
    from .objects import Source

_EXPORTS: dict[str, tuple[str, str | None]] = {
    "Lab": ("meshlab.lab", "Lab"),
    "load": ("meshlab.manifests", "load"),
    "load_report": ("meshlab.manifests", "load_report"),
    "LoadReport": ("meshlab.manifests", "LoadReport"),
    "Manifests": ("meshlab.manifests", "Manifests"),
    "Source": ("meshlab.objects", "Source"),
    "analyze": ("meshlab.analysis", "analyze"),
    "Finding": ("meshlab.analysis", "Finding"),
    "explain": ("meshlab.explanation", "explain"),
    "Explanation": ("meshlab.explanation", "Explanation"),
    "check": ("meshlab.exercises", "check"),
    "MeshlabError": ("meshlab.errors", "MeshlabError"),
    "ManifestError": ("meshlab.errors", "ManifestError"),
    "ApplyError": ("meshlab.errors", "ApplyError"),
    "Problem": ("meshlab.errors", "Problem"),
    "EnvoyConfigRejected": ("meshlab.errors", "EnvoyConfigRejected"),
    "charts": ("meshlab.charts", None),
    "widgets": ("meshlab.widgets", None),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'meshlab' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
