"""Every error meshlab raises on purpose, in one tree: each says what to fix, never a bare traceback.

```
MeshlabError
├── ManifestError (ValueError)   the input cannot be loaded: `.problems`, each naming file, line,
│                                object and field; nothing was applied
├── ApplyError                   the cluster (or the lab's API-server rules) refused a change;
│                                nothing was changed
├── ProbeError (ValueError)      a probe cannot be sent as asked (URL, header, argument), or
│                                explain() was given something that is not a probe's rows
├── LabError                     the lab cannot do what was asked (unknown pod, closed lab)
│   ├── LabClosed                the lab was closed; the message says how to start a new one
│   ├── LabOptionError (ValueError)  `Lab(...)`: a backend meshlab does not have, or a keyword
│   │                            that backend does not take
│   ├── AddressBlockExhausted    every 127.A.0.0/16 block is held by another lab
│   ├── PodStartError            a pod process did not come up (carries its stderr)
│   └── KubeProxyError           the kube-proxy child could not apply its table
├── EnvoyError                   Envoy did not start, died, or did not take a config in time
│   ├── EnvoyConfigRejected      Envoy refused a pushed config (`.envoy_message`: Envoy's words;
│   │                            `.applying`: the objects, files and field that made it)
│   └── EnvoyAdminError          Envoy's admin API could not be reached or answered an error
├── UnknownCode (LookupError)    an analysis code neither Istio's table nor meshlab's has
├── InternalError                meshlab itself failed (a bug): one paragraph, not 88 lines of
│                                traceback; the cause stays attached for `%tb` and bug reports
└── ClusterError                 talking to a real cluster, or to the tools that build one, failed
    ├── ContextError             no such kube context, or one meshlab may not change unasked
    ├── KubeError                the API server answered an error (`.status`, its own message)
    ├── ToolMissing              kind / istioctl / docker … is not on PATH (says what to install)
    ├── ToolFailed               a tool exited non-zero (its command and the tail of its output)
    └── Interrupted              the user interrupted a long step; its child was stopped
```

Errors that never leave the module that raises them (the YAML reader's, the RE2 check's) stay
private there and become `Problem`s of a `ManifestError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MeshlabError(Exception):
    """Base of meshlab's own errors."""

    def _render_traceback_(self) -> list[str]:
        """What Jupyter shows instead of a traceback: the message says what to fix, and the
        frames inside meshlab would only bury it."""
        return [f"{type(self).__name__}: {self}"]


# ------------------------------------------------------------------------------------------ input

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


class UnknownCode(MeshlabError, LookupError):
    """An analysis code (`IST0101`, `MLB0003`) that neither Istio's message table nor meshlab's has."""

    def __init__(self, code: str, known: str):
        self.code = code
        super().__init__(f"no analysis code {code!r}: {known}")


class ApplyError(MeshlabError):
    """The cluster refused a change (e.g. a namespace that does not exist); nothing was changed."""


class ProbeError(MeshlabError, ValueError):
    """A probe that cannot be sent as asked (bad URL, bad header, bad parameter), or probe rows
    that are not what explain() needs."""


# -------------------------------------------------------------------------------------- the lab

class LabError(MeshlabError):
    """The lab could not do what was asked (unknown pod, closed lab, a process that would not start)."""


class LabOptionError(LabError, ValueError):
    """`Lab(...)` named a backend meshlab does not have, or gave a keyword its backend does not take
    (the message lists the ones it does)."""


class LabClosed(LabError):
    """The lab was closed (`lab.close()`): its Envoy proxies and pods are gone. The message says
    how to start a new one."""


class AddressBlockExhausted(LabError):
    """Every 127.A.0.0/16 block is held by another lab."""


class PodStartError(LabError):
    """A pod process did not come up (port taken, crashed); carries its stderr."""


class KubeProxyError(LabError):
    """The kube-proxy child could not apply the table (e.g. a ClusterIP:port already in use)."""


# ------------------------------------------------------------------------------------------ Envoy

class EnvoyError(MeshlabError):
    """Envoy did not start, died, or did not take a config in time."""


class EnvoyConfigRejected(EnvoyError):
    """Envoy refused a pushed configuration; `.envoy_message` is Envoy's own explanation.

    Envoy keeps running its last accepted version of the refused resource, and meshlab restores
    that file on disk. Steps of the same push that Envoy accepted before the refusal stay applied
    (as with a NACK from istiod's point of view); the next push brings everything in line.
    """

    def __init__(self, proxy: str, resource: str, envoy_message: str, applying: str = "") -> None:
        self.proxy, self.resource, self.envoy_message, self.applying = proxy, resource, envoy_message, applying
        made = f" made from {applying}" if applying else ""
        super().__init__(f"Envoy '{proxy}' rejected the {resource} update{made}: {envoy_message}"
                         + ("; nothing was applied" if applying else ""))


class EnvoyAdminError(EnvoyError):
    """The admin API could not be reached or answered with an error."""


class InternalError(MeshlabError):
    """meshlab failed inside (a bug, not the learner's input): said in one paragraph, with the
    original exception attached as `__cause__` for `%tb` and the bug report."""

    def __init__(self, doing: str, cause: BaseException) -> None:
        self.doing = doing
        text = str(cause).strip().splitlines()[0][:300] if str(cause).strip() else ""
        super().__init__(f"meshlab failed while {doing} ({type(cause).__name__}{': ' + text if text else ''}). "
                         f"This is a bug in meshlab, not in your manifests: please report it with the output of "
                         f"%tb (in Jupyter) or MESHLAB_DEBUG=1 (on the command line)")


# --------------------------------------------------------------------------------- real clusters

class ClusterError(MeshlabError):
    """Talking to a real cluster, or running the tools that build one, failed."""


class ContextError(ClusterError):
    """The kube context is missing, or meshlab was asked to mutate a context not named explicitly."""


class KubeError(ClusterError):
    """The API server answered with an error; carries its HTTP status, its own message, and its
    Status' `reason` and `details.causes` (each a dict with `field`, `message`, `reason`)."""

    def __init__(self, status: int, message: str, what: str = "", *, reason: str = "",
                 causes: Sequence[dict[str, str]] = ()) -> None:
        self.status, self.message, self.reason, self.causes = status, message, reason, list(causes)
        super().__init__(f"{what}: {message}" if what else message)


class ToolMissing(ClusterError):
    """A command-line tool is not on PATH; the message says what to install."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool, self.hint = tool, hint
        super().__init__(f"{tool} not found on PATH: {hint}")


class ToolFailed(ClusterError):
    """A tool ran and exited non-zero; carries its command and the tail of its output."""

    def __init__(self, cmd: Sequence[str], returncode: int, output: str) -> None:
        self.cmd, self.returncode, self.output = list(cmd), returncode, output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"`{' '.join(cmd)}` exited with status {returncode}" + (f":\n{tail}" if tail else ""))


class Interrupted(ClusterError):
    """The user interrupted a long step; the child process was stopped."""
