"""Every backend offers the whole Backend protocol (meshlab/backends/base.py), with its signatures:
Lab, explain and the widgets read a lab only through it, so a backend missing a method, or
taking a keyword under another name, would break one of them on that backend only."""

from __future__ import annotations

import inspect

import pytest

from meshlab.backends.base import Backend, EnvoyAdmin, RunningProbe
from meshlab.backends.kind import ClusterBackend, KindBackend
from meshlab.backends.kind.admin import ProxyAdmin
from meshlab.backends.kind.probe import KindProbeRun
from meshlab.backends.local import LocalBackend
from meshlab.envoy import Envoy
from meshlab.probe import ProbeRun


def _members(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if callable(member) and (not name.startswith("_") or name in ("__enter__", "__exit__"))}


@pytest.mark.parametrize("protocol, implementation", [
    (Backend, LocalBackend), (Backend, KindBackend), (Backend, ClusterBackend),
    (EnvoyAdmin, Envoy), (EnvoyAdmin, ProxyAdmin), (RunningProbe, ProbeRun), (RunningProbe, KindProbeRun),
], ids=lambda c: c.__name__)
def test_implementation_takes_every_call_of_the_protocol(protocol: type, implementation: type) -> None:
    for name, wanted in _members(protocol).items():
        have = getattr(implementation, name, None)
        assert have is not None and callable(have), f"{implementation.__name__} has no {name}()"
        params = inspect.signature(have).parameters
        for p in wanted.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            assert p.name in params, f"{implementation.__name__}.{name}() takes no {p.name!r}"
            assert params[p.name].kind == p.kind, f"{implementation.__name__}.{name}({p.name}): {params[p.name].kind}"
        extra = [q for q in params.values() if q.name not in wanted.parameters and q.default is q.empty
                 and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
        assert not extra, f"{implementation.__name__}.{name}() requires {[q.name for q in extra]} the protocol does not give"
    for attribute in getattr(protocol, "__annotations__", {}):      # name, warnings
        assert any(attribute in vars(c) or f"self.{attribute}" in inspect.getsource(c)
                   for c in implementation.__mro__ if c.__module__.startswith("meshlab.")), \
            f"{implementation.__name__} has no {attribute}"
