"""meshlab: see Kubernetes and Istio traffic management with a real Envoy."""

__version__ = "0.1.0"

# Public surface, imported lazily so `meshlab validate` stays fast (PEP 562).
# (Added by engineer F so the course notebooks run; the lead owns this file and may replace it.)
_EXPORTS = {
    "Lab": ("meshlab.lab", "Lab"),
    "load": ("meshlab.manifests", "load"),
    "analyze": ("meshlab.analyze", "analyze"),
    "check": ("meshlab.exercises", "check"),
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value     # `meshlab.analyze` is also a submodule: the function wins
        return value
    if name in ("charts", "widgets", "exercises"):
        import importlib
        return importlib.import_module(f"meshlab.{name}")
    raise AttributeError(f"module 'meshlab' has no attribute {name!r}")
