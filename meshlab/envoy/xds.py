"""Filesystem xDS: how meshlab hands configuration to a running Envoy without a restart.

Why files rather than an ADS gRPC server: Envoy watches the files itself (inotify), so a change
reaches traffic in about a millisecond, and we need neither grpc nor Envoy's protos in Python.
What ADS would give us — ordering and ACK/NACK — we rebuild on top:

* **ordering**: every resource type lives in its own file (LDS and CDS one state-of-the-world file
  each, RDS one file per route configuration, EDS one file per cluster), so we decide exactly which
  type Envoy sees first. The default order imitates istiod: EDS → CDS → wait until new clusters have
  left warming → RDS → LDS; removed clusters leave CDS only after routes stopped naming them.
  (RDS before LDS because a listener's route file must exist when the listener arrives; a route
  configuration is only used once a listener names it, so this changes nothing for traffic.)
  Each file is watched on its own (`path`, no `watched_directory`): a watched directory reloads
  every subscription in it on any rename, which would undo the per-type ordering.
* **ACK/NACK**: each file carries the push's `version_info`. Envoy publishes per subscription
  `version_text` (set only when an update is accepted) and `update_rejected`/`update_failure`
  counters; we poll those on the admin API and read Envoy's own "config update rejected" log line
  to raise `EnvoyConfigRejected` with Envoy's message. The rejected file is then replaced by the
  last accepted one, so what is on disk is always what Envoy runs.

Envoy reacts only to renames into place (`os.replace`), never to in-place writes, and a file a
config refers to (an EDS or RDS path) must exist before that config arrives — both handled here.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .._processes import own_open_files
from ..errors import EnvoyConfigRejected, EnvoyError
from .accesslog import access_log_config

if TYPE_CHECKING:
    from .admin import AdminClient

T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_CLA = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

#: The subscription stats a push reads (anchored so that a name never matches a longer one).
_SUB_STATS = "(version_text|update_rejected|update_failure)"

#: istiod's order: endpoints, clusters (then wait for warming), routes, listeners.
ISTIOD_ORDER: tuple[str, ...] = ("eds", "cds", "rds", "lds")
_TYPES = ("eds", "cds", "rds", "lds")


@dataclass
class ProxyConfig:
    """Everything one Envoy should run, as plain xDS dicts (proto3 JSON field names).

    `routes` maps route-configuration name → RouteConfiguration; `endpoints` maps cluster name →
    ClusterLoadAssignment. EDS clusters and RDS references may leave their config source unset:
    the driver fills in where the files live (and adds the access log to every HCM/tcp_proxy).
    `warnings` lists what the generator could not honour (surfaced to the learner).
    """

    listeners: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _safe(name: str) -> str:
    """A file name for a resource name (cluster names contain `|`)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.json"


def _rds_stats(route_config: str) -> str:
    """The regex of a route configuration's RDS stats. Envoy writes `:` in a stat name as `_`
    (source/common/stats/utility.cc, sanitizeStatsName): `rds.reviews.default.svc.cluster.local_9080.`
    for Istio's route configuration `reviews.default.svc.cluster.local:9080`."""
    return rf"\.rds\.{re.escape(route_config.replace(':', '_'))}\.{_SUB_STATS}$"


def _path_source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}


#: Runtime values Istio's bootstrap sets where Envoy's defaults differ. Envoy refuses a regex whose
#: compiled RE2 program exceeds 100; Istio raises that to 32768, so `/item/[0-9]{200}` that works
#: on a real cluster must work here too.
ISTIO_RUNTIME = {"re2.max_program_size.error_level": 32768}


def bootstrap(node: str, admin_socket: Path, xds_dir: Path) -> dict[str, Any]:
    """Bootstrap: admin on a UNIX socket only the owner may open (mode 0600), LDS and CDS from
    files in `xds_dir`, Istio's runtime values."""
    return {
        "node": {"id": f"{node}~meshlab", "cluster": node},
        "admin": {"address": {"pipe": {"path": str(admin_socket), "mode": 0o600}}},
        "dynamic_resources": {
            "lds_config": _path_source(xds_dir / "lds.json"),
            "cds_config": _path_source(xds_dir / "cds.json"),
        },
        "layered_runtime": {"layers": [
            {"name": "istio", "static_layer": dict(ISTIO_RUNTIME)},
            {"name": "admin", "admin_layer": {}},
        ]},
    }


NETWORK_RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"


def original_dst_guard(allowed: str) -> dict[str, Any]:
    """A network RBAC filter that keeps a connection only when its destination is in the CIDR
    `allowed` (the lab's own block, e.g. `127.66.0.0/16`); others are closed.

    Why: with no iptables in the local lab, a sidecar learns a connection's original destination
    from the PROXY protocol header the client sends to `virtualOutbound` (istiod/listeners.py),
    and ORIGINAL_DST clusters (Istio's PassthroughCluster, headless Services, DestinationRule
    `simple: PASSTHROUGH`) connect to it. Any local user can send such a header; a pod's iptables
    only ever redirect the pod's own connections, so passthrough stays within the lab here too.
    Envoy's RBAC `destination_ip` reads the connection's local address, which the PROXY protocol
    filter has restored (envoy/config/rbac/v3/rbac.proto).
    """
    prefix, _, length = allowed.partition("/")
    return {"name": "envoy.filters.network.rbac", "typed_config": {
        "@type": NETWORK_RBAC_TYPE,
        "stat_prefix": "meshlab_original_dst_guard.",
        "rules": {"action": "ALLOW", "policies": {"lab-addresses-only": {
            "permissions": [{"destination_ip": {"address_prefix": prefix, "prefix_len": int(length or 32)}}],
            "principals": [{"any": True}],
        }}}}}


def _inotify_instances_held() -> int:
    """inotify instances this user's processes hold now (each open `anon_inode:inotify`; one shared
    by two processes is counted twice, which errs on the safe side)."""
    return sum(link == "anon_inode:inotify" for link in own_open_files())


def max_user_instances() -> int | None:
    """fs.inotify.max_user_instances: the inotify instances each user may hold (None if unknown)."""
    try:
        with open("/proc/sys/fs/inotify/max_user_instances") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def watch_problem(proxy: str, adding: int, reserved: int = 0) -> str | None:
    """Why `adding` more xDS files cannot be watched by Envoy `proxy`, or None.

    Envoy watches every file subscription (LDS, CDS, each RDS and each EDS file) with an inotify
    instance of its own (source/common/filesystem/inotify/watcher_impl.cc), and the kernel allows
    each user `fs.inotify.max_user_instances` of them (128 by default) across all their
    processes — every lab's Envoys and the notebook server's own. Past it Envoy does not refuse
    the update: it aborts ("assert failure: inotify_fd_ >= 0"), taking the lab down. So a push is
    refused before it is written."""
    if adding <= 0:
        return None
    limit = max_user_instances()
    if limit is None:
        return None
    held = _inotify_instances_held() + reserved       # reserved: this process's starts still under way
    if held + adding <= limit:
        return None
    return (f"Envoy '{proxy}' would need {adding} more xDS file watches (one inotify instance per cluster's "
            f"endpoints and per route configuration), but this user may hold {limit} "
            f"(fs.inotify.max_user_instances) and its processes — every lab's Envoys, the notebook server — "
            f"already hold {held}. Delete Services or DestinationRule subsets you no longer use, or close other "
            f"labs; an administrator can raise fs.inotify.max_user_instances (sysctl)")


def _bound_inodes(name: bytes) -> frozenset[str]:
    """`socket:[inode]` of the sockets bound to the abstract UNIX name `name` (/proc/net/unix)."""
    shown = "@" + name[1:].decode()
    try:
        with open("/proc/net/unix") as f:
            return frozenset(f"socket:[{p[6]}]" for p in (line.split() for line in f) if len(p) >= 8 and p[7] == shown)
    except OSError:
        return frozenset()


def _held_by_this_user(inodes: frozenset[str]) -> bool:
    """Is one of these sockets (`_bound_inodes`) open in a process of this user? Abstract names
    have no owner or permissions, so any user can bind another's name. True when unknown."""
    if not inodes:
        return True                   # unreadable, or released meanwhile: wait, as before
    return any(link in inodes for link in own_open_files())


_budget_mutex = threading.Lock()
_budget: dict[str, Any] = {"lock": None, "users": 0, "pending": 0}


@contextmanager
def watch_budget(proxy: str, adding: int, timeout: float = 60.0) -> Iterator[None]:
    """Run a push (or an Envoy's start) that adds `adding` xDS file watches only if this user's
    inotify instances leave room (`watch_problem`, else EnvoyError).

    The check and the watches Envoy then creates must be one step, or labs starting together
    would all pass the check and then overrun the limit together (Envoy aborts). So this user's
    processes take turns — the turn is the abstract UNIX socket `@meshlab-inotify/<uid>`, which
    the kernel releases if its holder dies — while the threads of one process (a lab's sidecar
    and gateway starting side by side) share the turn, each counting what the others have
    reserved but not yet watched. Any user may bind any abstract name: one bound by another
    user's process is not waited for (the check then runs without the turn), or that user could
    keep every lab of this one from starting."""
    if adding <= 0:
        yield
        return
    deadline = time.monotonic() + timeout
    name = b"\0meshlab-inotify/%d" % os.geteuid()
    with _budget_mutex:
        if _budget["lock"] is None:
            lock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            mine: frozenset[str] = frozenset()       # a holder already found to be this user's
            while True:
                try:
                    lock.bind(name)
                    break
                except OSError as e:
                    if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                        lock.close()
                        raise EnvoyError(f"Envoy '{proxy}': waited {timeout:g}s for another lab's push") from e
                    holder = _bound_inodes(name)
                    if holder != mine:
                        if not _held_by_this_user(holder):
                            break    # another user squats the name: no turn to wait for (the check still runs)
                        mine = holder
                    time.sleep(0.005)
            _budget["lock"] = lock
        _budget["users"] += 1
        problem = watch_problem(proxy, adding, reserved=_budget["pending"])
        if problem is None:
            _budget["pending"] += adding
    try:
        if problem:
            raise EnvoyError(problem)
        yield
    finally:
        with _budget_mutex:
            if problem is None:
                _budget["pending"] -= adding
            _budget["users"] -= 1
            if _budget["users"] == 0:
                _budget["lock"].close()
                _budget["lock"] = None


def _eds_name(cluster: dict[str, Any]) -> str:
    return cluster.get("eds_cluster_config", {}).get("service_name") or cluster["name"]


class XdsFiles:
    """Writes one Envoy's xDS files and pushes configs in a chosen order, checking each step."""

    def __init__(self, proxy: str, xds_dir: Path, admin: AdminClient, log_path: Path,
                 access_log_path: Path, original_dst: str | None = None) -> None:
        self.proxy = proxy
        self.original_dst = original_dst
        self.dir = xds_dir
        self.admin = admin
        self.log_path = log_path
        self.access_log_path = access_log_path
        self._version = 0
        # What Envoy accepted, per type: name → resource (already finalized).
        self.accepted: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in _TYPES}
        (self.dir / "rds").mkdir(parents=True, exist_ok=True)
        (self.dir / "eds").mkdir(parents=True, exist_ok=True)

    # ---- paths -------------------------------------------------------------------------------
    def lds_path(self) -> Path:
        return self.dir / "lds.json"

    def cds_path(self) -> Path:
        return self.dir / "cds.json"

    def rds_path(self, name: str) -> Path:
        return self.dir / "rds" / _safe(name)

    def eds_path(self, name: str) -> Path:
        return self.dir / "eds" / _safe(name)

    # ---- turning a ProxyConfig into file contents --------------------------------------------
    def finalize(self, config: ProxyConfig) -> dict[str, dict[str, dict[str, Any]]]:
        """Resources per type, with file config sources and access logs filled in, and (when
        `original_dst` is set) `original_dst_guard` first in every filter chain."""
        listeners = {}
        for lis in config.listeners:
            lis = copy.deepcopy(lis)
            for chain in lis.get("filter_chains", []) + (
                    [lis["default_filter_chain"]] if "default_filter_chain" in lis else []):
                if self.original_dst is not None and not any(
                        f.get("name") == "envoy.filters.network.rbac" for f in chain.get("filters", [])):
                    chain.setdefault("filters", []).insert(0, original_dst_guard(self.original_dst))
                for flt in chain.get("filters", []):
                    tc = flt.get("typed_config", {})
                    if tc.get("@type") == HCM_TYPE:
                        rds = tc.get("rds")
                        if rds is not None and "config_source" not in rds:
                            rds["config_source"] = _path_source(
                                self.rds_path(rds["route_config_name"]))
                        tc.setdefault("access_log", access_log_config(self.access_log_path))
                    elif tc.get("@type") == TCP_PROXY_TYPE:
                        tc.setdefault("access_log", access_log_config(self.access_log_path))
            listeners[lis["name"]] = lis
        clusters, eds = {}, {}
        for c in config.clusters:
            c = copy.deepcopy(c)
            if c.get("type") == "EDS":
                ecc = c.setdefault("eds_cluster_config", {})
                svc = _eds_name(c)
                ecc.setdefault("eds_config", _path_source(self.eds_path(svc)))
                cla = copy.deepcopy(config.endpoints.get(c["name"], {"endpoints": []}))
                cla["cluster_name"] = svc
                eds[svc] = cla
            clusters[c["name"]] = c
        routes = {}
        for name, rc in config.routes.items():
            rc = copy.deepcopy(rc)
            rc["name"] = name
            routes[name] = rc
        return {"lds": listeners, "cds": clusters, "rds": routes, "eds": eds}

    # ---- writing -----------------------------------------------------------------------------
    def _write(self, path: Path, type_url: str, resources: list[dict[str, Any]], version: str) -> None:
        body = {"version_info": version,
                "resources": [{"@type": type_url, **r} for r in resources]}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, separators=(",", ":")))
        os.replace(tmp, path)  # Envoy reacts to the rename, never to an in-place write

    def watches_needed(self, config: ProxyConfig) -> int:
        """The xDS files (so inotify instances) a fresh Envoy watches for `config`: LDS, CDS, each
        route configuration and each EDS cluster."""
        res = self.finalize(config)
        return 2 + len(res["eds"]) + len(res["rds"])

    def write_initial(self, config: ProxyConfig) -> None:
        """Files for a fresh Envoy (before it starts): everything in version "0" (start it inside
        `watch_budget(…, watches_needed(config))`)."""
        res = self.finalize(config)
        for name, cla in res["eds"].items():
            self._write(self.eds_path(name), T_CLA, [cla], "0")
        for name, rc in res["rds"].items():
            self._write(self.rds_path(name), T_ROUTE, [rc], "0")
        self._write(self.cds_path(), T_CLUSTER, list(res["cds"].values()), "0")
        self._write(self.lds_path(), T_LISTENER, list(res["lds"].values()), "0")
        self.accepted = res  # confirmed by check_initial() once Envoy is up

    def check_initial(self) -> None:
        """After start: raise if Envoy rejected any part of the initial files."""
        stats = self.admin.stats(r"(update_rejected|update_failure)$")
        bad = {k: v for k, v in stats.items() if isinstance(v, int) and v > 0}
        if bad:
            msg = self._rejection_message(0) or ", ".join(f"{k}={v}" for k, v in bad.items())
            raise EnvoyConfigRejected(self.proxy, "initial", msg)

    # ---- pushing -----------------------------------------------------------------------------
    def push(self, config: ProxyConfig, order: Sequence[str] | str = "istiod",
             gap_s: float = 0.0, timeout: float = 10.0) -> dict[str, list[str]]:
        """Bring Envoy to `config`; returns the names changed per type.

        `order="istiod"` is the safe order (see module docstring). A sequence such as
        `("rds", "cds")` writes the types in that order (missing types follow in istiod order),
        waiting only until Envoy has *accepted* each step (not for cluster warming), with `gap_s`
        seconds between steps — the race istiod's pushes can hit (make-before-break, 503 NC).
        """
        new = self.finalize(config)
        growth = sum(len(new[t]) - len(self.accepted[t]) for t in ("eds", "rds"))
        with watch_budget(self.proxy, growth):
            return self._push(new, order, gap_s, timeout)

    def _push(self, new: dict[str, dict[str, dict[str, Any]]], order: Sequence[str] | str,
              gap_s: float, timeout: float) -> dict[str, list[str]]:
        self._version += 1
        ver = f"{self._version}"
        old = {t: dict(self.accepted[t]) for t in _TYPES}
        changed = {t: sorted(n for n, r in new[t].items() if old[t].get(n) != r) for t in _TYPES}
        removed = {t: sorted(n for n in old[t] if n not in new[t]) for t in _TYPES}
        # Files that nobody subscribes to yet can be written first without changing behaviour;
        # Envoy needs them to exist before the config that names them.
        for name in changed["eds"]:
            if name not in old["eds"]:
                self._write(self.eds_path(name), T_CLA, [new["eds"][name]], ver)
                self.accepted["eds"][name] = new["eds"][name]
        for name in changed["rds"]:
            if name not in old["rds"]:
                self._write(self.rds_path(name), T_ROUTE, [new["rds"][name]], ver)
        if order == "istiod":
            steps: list[str] = list(ISTIOD_ORDER)
            safe = True
        else:
            steps = [t for t in order if t in _TYPES]
            steps += [t for t in ISTIOD_ORDER if t not in steps]
            safe = False
        deadline = time.monotonic() + timeout
        for i, step in enumerate(steps):
            if i and gap_s:
                time.sleep(gap_s)
            if step == "eds":
                upd = [n for n in changed["eds"] if n in old["eds"]]
                if upd:
                    self._apply(
                        "eds", ver, deadline,
                        {n: (self.eds_path(n), T_CLA, [new["eds"][n]]) for n in upd},
                        {n: rf"^cluster\.{re.escape(self._cluster_of(n, new))}\.{_SUB_STATS}$" for n in upd},
                        new)
            elif step == "cds":
                if changed["cds"] or removed["cds"]:
                    clusters = dict(new["cds"])
                    if safe:  # removed clusters stay until routes no longer name them
                        for n in removed["cds"]:
                            clusters[n] = old["cds"][n]
                    self._apply_sotw("cds", self.cds_path(), T_CLUSTER, clusters, ver, deadline)
                    if safe:
                        self._wait_no_warming(deadline)
            elif step == "rds":
                upd = [n for n in changed["rds"] if n in old["rds"]]
                if upd:
                    self._apply(
                        "rds", ver, deadline,
                        {n: (self.rds_path(n), T_ROUTE, [new["rds"][n]]) for n in upd},
                        {n: _rds_stats(n) for n in upd}, new)
            elif step == "lds":
                if changed["lds"] or removed["lds"]:
                    errors_before = set(listener_errors(self.admin.config_dump(include_eds=False)))
                    self._apply_sotw("lds", self.lds_path(), T_LISTENER, new["lds"], ver, deadline)
                    self._wait_listeners(deadline, errors_before)
        # Route configs first seen in this push were subscribed by the new listeners: confirm.
        fresh_rds = [n for n in changed["rds"] if n not in old["rds"]]
        still_named = {rds_name for rds_name in _rds_names(new["lds"])}
        fresh_rds = [n for n in fresh_rds if n in still_named]
        if fresh_rds:
            self._confirm(ver, deadline, {n: _rds_stats(n) for n in fresh_rds},
                          "rds", new, fresh_rds)
        for n in fresh_rds:
            self.accepted["rds"][n] = new["rds"][n]
        if safe and removed["cds"]:
            self._apply_sotw("cds", self.cds_path(), T_CLUSTER, new["cds"], ver + ".1", deadline)
        # Forget files of resources nobody names any more.
        for n in removed["eds"]:
            self.eds_path(n).unlink(missing_ok=True)
            self.accepted["eds"].pop(n, None)
        for n in removed["rds"]:
            self.rds_path(n).unlink(missing_ok=True)
            self.accepted["rds"].pop(n, None)
        for n in changed["rds"]:
            if n not in still_named:
                self.accepted["rds"][n] = new["rds"][n]
        return {t: changed[t] + removed[t] for t in _TYPES}

    @staticmethod
    def _cluster_of(eds_name: str, res: dict[str, dict[str, dict[str, Any]]]) -> str:
        for c in res["cds"].values():
            if c.get("type") == "EDS" and _eds_name(c) == eds_name:
                return c["name"]
        return eds_name

    def _apply_sotw(self, typ: str, path: Path, type_url: str, resources: dict[str, Any],
                    ver: str, deadline: float) -> None:
        prefix = "listener_manager.lds." if typ == "lds" else "cluster_manager.cds."
        pattern = "^" + re.escape(prefix)
        before = self._counters(pattern)
        log_offset = self._log_size()
        self._write(path, type_url, list(resources.values()), ver)
        ok, detail = self._wait_one(pattern, prefix, ver, before, deadline)
        if not ok:
            # restore what Envoy actually runs, then report Envoy's reason
            self._write(path, type_url, list(self.accepted[typ].values()), ver + ".restore")
            raise EnvoyConfigRejected(self.proxy, typ.upper(),
                                      self._rejection_message(log_offset) or detail)
        self.accepted[typ] = dict(resources)

    def _apply(self, typ: str, ver: str, deadline: float,
               files: dict[str, tuple[Path, str, list[dict[str, Any]]]],
               patterns: dict[str, str], new: dict[str, dict[str, dict[str, Any]]]) -> None:
        joined = "|".join(f"({p})" for p in patterns.values())
        before = self._counters(joined)
        log_offset = self._log_size()
        for path, type_url, res in files.values():
            self._write(path, type_url, res, ver)
        self._confirm(ver, deadline, patterns, typ, new, list(files), before, log_offset)
        for n in files:
            self.accepted[typ][n] = new[typ][n]

    def _confirm(self, ver: str, deadline: float, patterns: dict[str, str], typ: str,
                 new: dict[str, dict[str, dict[str, Any]]], names: list[str],
                 before: dict[str, int] | None = None, log_offset: int = 0) -> None:
        joined = "|".join(f"({p})" for p in patterns.values())
        before = before or {}
        pending = dict(patterns)
        delay = 0.0005
        while True:
            stats = self.admin.stats(joined)
            for n, p in list(pending.items()):
                rx = re.compile(p)
                mine = {k: v for k, v in stats.items() if rx.search(k)}
                vt = [v for k, v in mine.items() if k.endswith("version_text")]
                if vt and all(v == ver for v in vt):
                    del pending[n]
                    continue
                for k, v in mine.items():
                    if k.endswith(("update_rejected", "update_failure")) and isinstance(v, int) \
                            and v > before.get(k, 0):
                        for m in names:  # put the accepted versions back on disk
                            if m in self.accepted[typ]:
                                path = self.eds_path(m) if typ == "eds" else self.rds_path(m)
                                self._write(path, T_CLA if typ == "eds" else T_ROUTE,
                                            [self.accepted[typ][m]], ver + ".restore")
                        raise EnvoyConfigRejected(
                            self.proxy, f"{typ.upper()} {n}",
                            self._rejection_message(log_offset) or f"{k}={v}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy '{self.proxy}' did not confirm {typ.upper()} "
                                 f"{sorted(pending)} (version {ver}) in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _counters(self, pattern: str) -> dict[str, int]:
        return {k: v for k, v in self.admin.stats(pattern).items() if isinstance(v, int)}

    def _wait_one(self, pattern: str, prefix: str, ver: str, before: dict[str, int],
                  deadline: float) -> tuple[bool, str]:
        delay = 0.0005
        while True:
            stats = self.admin.stats(pattern)
            if stats.get(prefix + "version_text") == ver:
                return True, ""
            for k in ("update_rejected", "update_failure"):
                v = stats.get(prefix + k, 0)
                if isinstance(v, int) and v > before.get(prefix + k, 0):
                    return False, f"{prefix}{k}={v}"
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy '{self.proxy}' did not confirm {prefix}version {ver} in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _wait_zero(self, stat: str, deadline: float, what: str) -> None:
        """Poll an admin gauge (e.g. warming clusters) until it reads 0, backing off to 10 ms."""
        delay = 0.0005
        while self.admin.stats(rf"^{re.escape(stat)}$").get(stat, 0) != 0:
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy '{self.proxy}': {what} after the push")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _wait_no_warming(self, deadline: float) -> None:
        self._wait_zero("cluster_manager.warming_clusters", deadline, "clusters still warming")

    def _wait_listeners(self, deadline: float, errors_before: set[str]) -> None:
        self._wait_zero("listener_manager.total_listeners_warming", deadline, "listeners still warming")
        errors = [e for e in listener_errors(self.admin.config_dump(include_eds=False))
                  if e not in errors_before]
        if errors:
            raise EnvoyConfigRejected(self.proxy, "LDS", "; ".join(errors))

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _rejection_message(self, offset: int, wait: float = 0.2) -> str:
        """Envoy's own words from its log since `offset` (the log line may lag the counter)."""
        end = time.monotonic() + wait
        while True:
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                text = ""
            entries: list[list[str]] = []     # a log entry may span lines (a proto dump)
            for line in text.splitlines():
                if line.startswith("[") or not entries:
                    entries.append([line])
                else:
                    entries[-1].append(line)
            msgs = []
            for entry in entries:
                if any(k in "\n".join(entry) for k in ("rejected", "update failed", "update failure",
                                                         "error adding listener")):
                    # keep Envoy's message, drop the "[time][thread][level][component] [file]" prefix
                    msgs.append(_one_line(re.sub(r"^(\[[^\]]*\]\s*)+", "", entry[0]).strip(), entry[1:]))
            if msgs or time.monotonic() > end:
                return " | ".join(dict.fromkeys(msgs))
            time.sleep(0.01)


def _one_line(head: str, more: list[str]) -> str:
    """A multi-line Envoy message as one line. A proto-constraint failure prints the offending
    proto (after a `goo.gle/debug…` marker) and ends with the reason: keep head and reason."""
    head = re.sub(r"\s+", " ", head)
    cut = head.find("): {")          # an unparsable file: Envoy appends the whole file after the reason
    if cut >= 0:
        head = head[:cut + 1]
    if not more:
        return head
    marker = re.search(r"goo\.gle/debug\w*", head)      # Envoy varies the marker's last word
    if marker:
        reason = more[-1].strip().lstrip(": ")
        return f"{head[:marker.start()].strip()} {reason}"
    return " ".join([head, *(m.strip() for m in more)])[:1000]


def _rds_names(listeners: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for lis in listeners.values():
        for chain in lis.get("filter_chains", []) + (
                [lis["default_filter_chain"]] if "default_filter_chain" in lis else []):
            for flt in chain.get("filters", []):
                rds = flt.get("typed_config", {}).get("rds")
                if rds:
                    out.append(rds["route_config_name"])
    return out


def listener_errors(config_dump: dict[str, Any]) -> list[str]:
    """Listener update failures Envoy records in `/config_dump` (`error_state`)."""
    errs = []
    for section in config_dump.get("configs", []):
        for lis in section.get("dynamic_listeners", []):
            es = lis.get("error_state")
            if es:
                errs.append(f"listener {lis.get('name')}: {es.get('details', es)}")
    return errs
