"""The command-line tools the kind backend drives (docker, kind, kubectl, istioctl).

Why a module of its own: every place that shells out needs the same three things — find the tool
or say in one line what to install, run it with a child that cannot outlive us, and stop it
cleanly on Ctrl-C (terminal) or "interrupt kernel" (notebook), which both arrive as
KeyboardInterrupt.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Callable, Sequence

from ._processes import spawn
from .errors import Interrupted, ToolFailed, ToolMissing

#: What to install, one line per tool, printed by `meshlab doctor` and by every ToolMissing.
INSTALL_HINTS: dict[str, str] = {
    "docker": "install Docker (Docker Desktop, or Docker Engine on Linux): https://docs.docker.com/get-docker/",
    "kind": "install kind v0.33.0 (kind-config.yaml pins a node image built for it): "
            "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl",
    "istioctl": "install istioctl {istio}: curl -L https://istio.io/downloadIstio | ISTIO_VERSION={istio} sh - "
                "(then put istio-{istio}/bin on PATH)",
}


def hint(tool: str, istio_version: str = "") -> str:
    return INSTALL_HINTS.get(tool, f"install {tool}").format(istio=istio_version or "<version>")


def find(tool: str, istio_version: str = "") -> str:
    """Absolute path of `tool` on PATH, or ToolMissing with the install hint."""
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(tool, hint(tool, istio_version))
    return path


# ------------------------------------------------------------------------------------ versions
# Each parser reads the tool's own version output (formats recorded under tests/data/kind/).

_SEMVER = r"v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?)"


def parse_kind_version(out: str) -> str | None:
    """`kind version` prints `kind v0.33.0 go1.23.4 linux/amd64` (kind: pkg/cmd/kind/version)."""
    m = re.search(r"kind " + _SEMVER, out)
    return m.group(1) if m else None


def parse_istioctl_version(out: str) -> str | None:
    """`istioctl version --remote=false` prints `client version: 1.32.0`."""
    m = re.search(r"client version:\s*" + _SEMVER, out)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\s*" + _SEMVER + r"\s*", out)   # `--short` and old releases print the bare version
    return m.group(1) if m else None


def parse_kubectl_version(out: str) -> str | None:
    """`kubectl version --client -o json` → clientVersion.gitVersion (e.g. v1.33.1)."""
    import json

    try:
        v = json.loads(out)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        m = re.search(r"Client Version:\s*" + _SEMVER, out)
        return m.group(1) if m else None
    m = re.match(_SEMVER, v)
    return m.group(1) if m else None


def parse_envoy_version(out: str) -> str | None:
    """`envoy --version` prints `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`."""
    m = re.search(r"version: \S*?/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else None


def version_tuple(v: str | None) -> tuple[int, ...]:
    if not v:
        return ()
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", v)
    return tuple(int(x) for x in m.groups()) if m else ()


# --------------------------------------------------------------------------------------- running

def _spawn(cmd: Sequence[str], *, stdin: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A tool that gets SIGTERM (and cleans up) if this process dies, in its own session."""
    return spawn(list(cmd), signal="TERM", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                 stdin=stdin if stdin is not None else subprocess.DEVNULL, text=True, bufsize=1, env=env)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a child the way Ctrl-C would (SIGINT to its group, so kind/istioctl clean up), then harder."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(cmd: Sequence[str], *, check: bool = True, on_line: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[int, str]:
    """Run `cmd`, return (status, combined output). Each output line goes to `on_line` as it comes
    (progress). KeyboardInterrupt stops the child and raises Interrupted; a missing binary raises
    ToolMissing; check=True raises ToolFailed on a non-zero status."""
    try:
        proc = _spawn(cmd, env=env)
    except FileNotFoundError:
        raise ToolMissing(cmd[0], hint(os.path.basename(cmd[0]))) from None
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        # Short waits, so an interrupt is noticed at once however it arrives (a real SIGINT, or
        # Jupyter/IPython raising KeyboardInterrupt in the main thread).
        while proc.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(cmd, timeout or 0)
            try:
                proc.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        stop(proc)
        reader.join(2)
        raise Interrupted(f"interrupted: `{' '.join(cmd)}` was stopped") from None
    except subprocess.TimeoutExpired:
        stop(proc)
        reader.join(2)
        raise ToolFailed(cmd, -1, "".join(lines) + f"\n(timed out after {timeout:.0f} s)") from None
    reader.join(5)
    out = "".join(lines)
    if check and proc.returncode != 0:
        raise ToolFailed(cmd, proc.returncode, out)
    return proc.returncode, out
