"""YAML → typed objects, with errors a learner can act on.

`load()` takes what a learner has at hand (files, folders, YAML strings, dicts, objects, lists of
those) and returns typed objects, or raises `ManifestError` listing every problem: file and line
of the offending field, the object (`VirtualService default/reviews`), the field path as written
in YAML (`spec.http[0].route[1].weight`), what was expected and what was found. Nothing is
returned when anything is wrong, so nothing can be half-applied.

What counts as wrong follows the API server (with Istio's CRDs installed): strict types, required
fields, unknown fields (kubectl's default strict field validation), enum values, names that are
not DNS names, Istio's CRD rules, duplicate objects. Kinds meshlab does not model are kept as
`UnmodelledObject` and reported as notes, never dropped silently.
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from . import _yaml
from .errors import ManifestError, Problem
from .objects import (
    MODELLED, Deployment, Destination, DestinationRule, Gateway, HTTPRoute, K8sObject, Namespace, Pod, Service,
    ServiceEntry, Source, StringMatch, UnmodelledObject, VirtualService, duration_ns,
)
from .names import labels_match

Loadable = str | Path | dict[str, Any] | K8sObject | Iterable["Loadable"]

# API groups meshlab knows the served versions of: a known kind in another version, or an unknown
# version of a known group, is an error (as "no matches for kind" is on a real cluster). Kinds in
# groups not listed here (other CRDs) are kept as unmodelled.
_SERVED_VERSIONS: dict[str, tuple[str, ...]] = {
    "": ("v1",),
    "apps": ("v1",),
    "batch": ("v1",),
    "autoscaling": ("v1", "v2"),
    "policy": ("v1",),
    "networking.k8s.io": ("v1",),
    "rbac.authorization.k8s.io": ("v1",),
    "apiextensions.k8s.io": ("v1",),
    "admissionregistration.k8s.io": ("v1",),
    "storage.k8s.io": ("v1",),
    "discovery.k8s.io": ("v1",),
    "coordination.k8s.io": ("v1",),
    "scheduling.k8s.io": ("v1",),
    "networking.istio.io": ("v1", "v1beta1", "v1alpha3"),
    "security.istio.io": ("v1", "v1beta1"),
    "telemetry.istio.io": ("v1", "v1alpha1"),
    "extensions.istio.io": ("v1alpha1",),
    "gateway.networking.k8s.io": ("v1", "v1beta1", "v1alpha2", "v1alpha3"),
    "extensions": (),
}

# Every kind of the groups a course manifest uses, so a misspelt kind is an error ("no matches for
# kind" on a real cluster), not a silently kept unmodelled object. Other groups are not checked.
_KINDS: dict[str, frozenset[str]] = {
    "": frozenset("""Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node PersistentVolume
        PersistentVolumeClaim Pod PodTemplate ReplicationController ResourceQuota Secret Service
        ServiceAccount""".split()),
    "apps": frozenset("ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet".split()),
    "networking.istio.io": frozenset("""DestinationRule EnvoyFilter Gateway ProxyConfig ServiceEntry Sidecar
        VirtualService WorkloadEntry WorkloadGroup""".split()),
    "security.istio.io": frozenset("AuthorizationPolicy PeerAuthentication RequestAuthentication".split()),
    "telemetry.istio.io": frozenset({"Telemetry"}),
    "extensions.istio.io": frozenset({"TrafficExtension", "WasmPlugin"}),
}

# Field names of the big Kubernetes structs meshlab keeps open (PodSpec, Container), written from
# the Kubernetes API reference (v1.33), so a typo such as `contianers` is caught, not kept.
_POD_SPEC_FIELDS = frozenset("""
activeDeadlineSeconds affinity automountServiceAccountToken containers dnsConfig dnsPolicy
enableServiceLinks ephemeralContainers hostAliases hostIPC hostNetwork hostPID hostUsers hostname
hostnameOverride imagePullSecrets initContainers nodeName nodeSelector os overhead preemptionPolicy
priority priorityClassName readinessGates resourceClaims resources restartPolicy runtimeClassName
schedulerName schedulingGates securityContext serviceAccount serviceAccountName setHostnameAsFQDN
shareProcessNamespace subdomain terminationGracePeriodSeconds tolerations topologySpreadConstraints
volumes""".split())
_CONTAINER_FIELDS = frozenset("""
args command env envFrom image imagePullPolicy lifecycle livenessProbe name ports readinessProbe
resizePolicy resources restartPolicy restartPolicyRules securityContext startupProbe stdin stdinOnce
terminationMessagePath terminationMessagePolicy tty volumeDevices volumeMounts workingDir""".split())

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------------------------- the report

@dataclass
class LoadReport:
    """Everything one load found: objects (only meaningful when `ok`), problems, and notes.

    Notes are not errors: kinds meshlab keeps but does not model, files that held no objects.
    """

    objects: list[K8sObject] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unmodelled(self) -> list[UnmodelledObject]:
        return [o for o in self.objects if isinstance(o, UnmodelledObject)]

    def summary(self) -> str:
        """One line: how many objects of which kinds."""
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o.kind] = counts.get(o.kind, 0) + 1
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        noun = "object" if len(self.objects) == 1 else "objects"
        return f"{len(self.objects)} {noun}" + (f" ({kinds})" if kinds else "")


class Manifests(list):
    """The objects `load()` returns: a plain list of K8sObject, plus the load's `notes`."""

    notes: list[Problem]

    def __init__(self, objects: Iterable[K8sObject] = (), notes: Iterable[Problem] = ()):
        super().__init__(objects)
        self.notes = list(notes)


def load(source: Loadable) -> Manifests:
    """Load and validate manifests; raise ManifestError listing every problem, returning nothing.

    `source` may be a path (file or folder, read recursively for *.yaml / *.yml), a YAML string
    (one or more documents), a dict, a K8sObject, or a list of any of these. Objects without a
    namespace are put in `default`. Unmodelled kinds are returned as UnmodelledObject and listed
    in the result's `.notes`.
    """
    report = load_report(source)
    if report.problems:
        raise ManifestError(report.problems)
    return Manifests(report.objects, report.notes)


def load_report(source: Loadable) -> LoadReport:
    """Like `load()`, but never raises for bad input: returns objects, problems and notes."""
    report = _Loader()
    report.add(source)
    report.check_duplicates()
    return report.result


# ------------------------------------------------------------------------------------ the loading

@dataclass
class _Doc:
    data: Any
    node: Any            # yaml Node of the document root (None for dicts)
    file: str
    line: int | None


class _Loader:
    def __init__(self) -> None:
        self.result = LoadReport()

    # -- inputs -----------------------------------------------------------------------------------
    def add(self, source: Any) -> None:
        if isinstance(source, K8sObject):
            self._add_object(source)
        elif isinstance(source, dict):
            self._add_doc(_Doc(source, None, "<dict>", None))
        elif isinstance(source, Path):
            self._add_path(source)
        elif isinstance(source, str):
            if _looks_like_path(source):
                self._add_path(Path(source))
            else:
                self._add_text(source, "<string>")
        elif isinstance(source, bytes):
            self._add_bytes(source, "<bytes>")
        elif isinstance(source, Iterable):
            for item in source:
                self.add(item)
        else:
            self._problem(f"cannot load a {type(source).__name__}: give a path, a YAML string, a dict "
                          f"or a meshlab object", file=f"<{type(source).__name__}>")

    def _add_path(self, path: Path) -> None:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(_yaml.MAX_BYTES + 1)
            self.result.files.append("<stdin>")
            self._add_bytes(raw, "<stdin>")
            return
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.suffix in (".yaml", ".yml") and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                self.result.notes.append(Problem("folder holds no *.yaml or *.yml files", file=str(path)))
            for f in files:
                self._add_file(f)
        elif path.is_file():
            self._add_file(path)
        elif path.exists():
            self._problem("not a regular file (a device, pipe or socket): give a YAML file or a folder",
                          file=str(path))
        else:
            self._problem("no such file or folder", file=str(path))

    def _add_file(self, path: Path) -> None:
        name = str(path)
        self.result.files.append(name)
        try:
            size = path.stat().st_size
            _yaml.check_size(size)
            with path.open("rb") as f:
                raw = f.read(_yaml.MAX_BYTES + 1)
        except _yaml.YamlError as e:
            self._problem(e.message, file=name)
            return
        except OSError as e:
            self._problem(f"cannot read: {e.strerror or e}", file=name)
            return
        self._add_bytes(raw, name)

    def _add_bytes(self, raw: bytes, name: str) -> None:
        try:
            _yaml.check_size(len(raw))
            text = _yaml.decode(raw)
        except _yaml.YamlError as e:
            self._problem(e.message, file=name, line=e.line)
            return
        self._add_text(text, name)

    def _add_text(self, text: str, name: str) -> None:
        try:
            docs = _yaml.parse(text)
        except _yaml.YamlError as e:
            self._problem(e.message + " — nothing from this file was loaded", file=name, line=e.line)
            return
        found = 0
        for d in docs:
            if d.data is None:
                continue
            found += 1
            self._add_doc(_Doc(d.data, d.node, name, d.line))
        if not found:
            self.result.notes.append(Problem("held no objects (empty, or only comments)", file=name))

    def _add_object(self, obj: K8sObject) -> None:
        """Validated again from its fields, as a fresh copy: objects are mutable, so an edit made
        after loading must meet the same checks as YAML, and an edit made after `apply` must not
        reach into the lab (kubectl sends a copy too)."""
        src = obj.source
        data = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
        self._add_doc(_Doc(data, None, src.file if src else f"<{obj.kind}>", src.line if src else None))

    # -- one document ---------------------------------------------------------------------------
    def _add_doc(self, doc: _Doc) -> None:
        data = doc.data
        if not isinstance(data, dict):
            hint = (" — a list of objects is written as separate documents (---) or as "
                    "`kind: List` with `items:`" if isinstance(data, list) else "")
            self._problem(f"a manifest must be a mapping with apiVersion, kind and metadata; found {_describe(data)}"
                          + hint, file=doc.file, line=doc.line)
            return
        try:
            data = _without_nulls(data)
        except _TooDeep:
            self._problem(f"nested too deeply: more than {_yaml.MAX_DEPTH} levels", file=doc.file, line=doc.line)
            return
        api_version, kind = data.get("apiVersion"), data.get("kind")
        where = _Where(doc, kind if isinstance(kind, str) else None, data)
        for key, value in (("apiVersion", api_version), ("kind", kind)):
            if value is None:
                where.problem(self, [key], f"required field {key} is missing", missing=True)
            elif not isinstance(value, str) or not value:
                where.problem(self, [key], f"expected a non-empty string, found {_describe(value)}")
        if not (isinstance(api_version, str) and isinstance(kind, str) and api_version and kind):
            return
        if kind.endswith("List") and isinstance(data.get("items"), list) and api_version == "v1":
            self._add_list(doc, data)
            return
        cls = self._model_for(where, api_version, kind)
        if cls is None:
            return
        before = len(self.result.problems)
        _check_metadata(kind, cls, data, where, self)
        try:
            obj = cls.model_validate(data, strict=True, by_alias=True, by_name=False)
        except ValidationError as e:
            for path, message, at_key in _explain(e, data, cls):
                where.problem(self, path, message, at_key=at_key, missing=message.startswith("required"))
            return
        if obj.NAMESPACED and not obj.metadata.namespace:   # absent or "": kubectl's default namespace
            obj.metadata.namespace = "default"
        if not obj.NAMESPACED:
            obj.metadata.namespace = None
        where.obj = obj
        _check_object(obj, data, where, self)
        if isinstance(obj, Service):   # the API server's defaulting: targetPort 0 means the port itself
            for port in obj.spec.ports:
                if port.target_port == 0:
                    port.target_port = port.port
        if len(self.result.problems) > before:
            return
        obj.with_source(Source(doc.file, doc.line))
        self.result.objects.append(obj)
        self._note_if_unmodelled(obj)

    def _add_list(self, doc: _Doc, data: dict[str, Any]) -> None:
        _, items_node = _yaml.child(doc.node, "items")
        for i, item in enumerate(data["items"]):
            _, node = _yaml.child(items_node, i)
            self._add_doc(_Doc(item, node, doc.file, _yaml.line_of(node) or doc.line))

    def _model_for(self, where: _Where, api_version: str, kind: str) -> type[K8sObject] | None:
        cls = MODELLED.get((api_version, kind))
        if cls is not None:
            return cls
        group, _, version = api_version.rpartition("/")
        if api_version.count("/") > 1 or not version or (group == "" and "/" in api_version):
            where.problem(self, ["apiVersion"], f'"{api_version}" is not an apiVersion; expected "group/version" '
                          f'(apps/v1) or "v1"')
            return None
        served_for_kind = sorted(av for av, k in MODELLED if k == kind)
        if served_for_kind:
            where.problem(self, ["apiVersion"], f'{kind} is not served in "{api_version}"; '
                          f"use {_or(served_for_kind)}")
            return None
        if group in _KINDS and kind not in _KINDS[group]:
            where.problem(self, ["kind"], _unknown_kind_message(kind, group))
            return None
        if group in _SERVED_VERSIONS and version not in _SERVED_VERSIONS[group]:
            served = _SERVED_VERSIONS[group]
            use = f"; this group serves {_or([f'{group}/{v}' if group else v for v in served])}" if served else \
                "; this group is no longer served by Kubernetes"
            where.problem(self, ["apiVersion"], f'"{api_version}" is not a version the API server knows{use}')
            return None
        return UnmodelledObject

    def _note_if_unmodelled(self, obj: K8sObject) -> None:
        if isinstance(obj, UnmodelledObject):
            src = obj.source
            self.result.notes.append(Problem(
                f"{obj.kind} ({obj.api_version}) is not modelled by meshlab: kept as is, it has no effect on "
                f"the local lab", file=src.file if src else None, line=src.line if src else None, object=obj.ref))

    def check_duplicates(self) -> None:
        seen: dict[tuple[str, str, str], K8sObject] = {}
        for obj in self.result.objects:
            first = seen.setdefault(obj.key, obj)
            if first is not obj:
                src = obj.source
                self._problem(f"the same object is given twice in one apply (first at {first.source or 'an object'}); "
                              f"remove one, or give them different names",
                              file=src.file if src else None, line=src.line if src else None, object=obj.ref)

    def _problem(self, message: str, **kw: Any) -> None:
        self.result.problems.append(Problem(message, **kw))


def _unknown_kind_message(kind: str, group: str) -> str:
    where = f"the {group} group" if group else "the core group (apiVersion v1)"
    msg = f'no kind "{kind}" in {where}'
    known = sorted(_KINDS[group])
    close = [k for k in known if k.lower() == kind.lower()] or difflib.get_close_matches(kind, known, n=1, cutoff=0.7)
    if close:
        return msg + f' — did you mean "{close[0]}"?'
    elsewhere = [g for g, kinds in _KINDS.items() if kind in kinds]
    if elsewhere:
        api = "v1" if elsewhere[0] == "" else f"{elsewhere[0]}/…"
        return msg + f"; {kind} is in apiVersion {api}"
    return msg


def _looks_like_path(s: str) -> bool:
    """A one-line string without YAML syntax is a path (so a typo says 'no such file')."""
    if "\n" in s or len(s) > 4096:
        return False
    try:
        if s == "-" or Path(s).exists():
            return True
    except (OSError, ValueError):  # not a possible path name at all
        return False
    return ": " not in s and not s.rstrip().endswith(":") and not s.lstrip().startswith(("{", "[", "---", "#"))


class _TooDeep(Exception):
    pass


def _without_nulls(data: Any) -> Any:
    """Drop `key: null` entries: the API server prunes them (CRDs) or reads them as unset (core)."""
    out: Any = {} if isinstance(data, dict) else []
    stack = [(data, out, 0)]
    while stack:
        src, dst, depth = stack.pop()
        if depth > _yaml.MAX_DEPTH:
            raise _TooDeep
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            if v is None and isinstance(src, dict):
                continue
            if isinstance(v, (dict, list)):
                nv: Any = {} if isinstance(v, dict) else []
                stack.append((v, nv, depth + 1))
                v = nv
            if isinstance(dst, dict):
                dst[k] = v
            else:
                dst.append(v)
    return out


# --------------------------------------------------------------------------------- error messages

class _Where:
    """The document being checked: turns a field path into file, line and object name."""

    def __init__(self, doc: _Doc, kind: str | None, data: dict[str, Any]):
        self.doc = doc
        self.kind = kind
        self.data = data
        self.obj: K8sObject | None = None

    def object_name(self) -> str | None:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        kind = self.kind or "object"
        if not isinstance(name, str):
            return f"{kind} (unnamed)"
        if kind == "Namespace" or (self.obj is not None and not self.obj.NAMESPACED):
            return f"{kind} {name}"
        return f"{kind} {ns if isinstance(ns, str) and ns else 'default'}/{name}"

    def line(self, path: list[str | int], at_key: bool = False, missing: bool = False) -> int | None:
        node = self.doc.node
        if node is None:
            return None
        best = node
        steps = path[:-1] if missing else path
        for i, step in enumerate(steps):
            key_node, value_node = _yaml.child(node, step)
            if value_node is None:
                break
            node = value_node
            best = key_node if (at_key and i == len(steps) - 1 and key_node is not None) else value_node
        return _yaml.line_of(best)

    def problem(self, loader: _Loader, path: list[str | int], message: str, *, at_key: bool = False,
                missing: bool = False) -> None:
        loader._problem(message, file=self.doc.file, line=self.line(path, at_key, missing) or self.doc.line,
                        object=self.object_name(), field=_format_path(path) or None)


def _format_path(path: list[str | int]) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _SIMPLE_KEY.match(step):
            out += f".{step}" if out else step
        else:
            out += f'["{step}"]'
    return out


def _describe(value: Any) -> str:
    """How a found value reads in a sentence: `the string "80"`, `the number 80`, `a list`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'the string "{shown}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "string_type": "a string",
    "bool_type": "a boolean (true or false)", "float_type": "a number", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "literal_error": None, "is_instance_of": None,
}


def _or(items: list[str]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _explain(e: ValidationError, data: dict[str, Any], cls: type[BaseModel]) -> list[tuple[list[str | int], str, bool]]:
    """Pydantic errors → (YAML field path, sentence, points-at-key) — type alternatives merged."""
    merged: dict[tuple, dict[str, Any]] = {}
    order: list[tuple] = []
    for err in e.errors(include_url=False):
        path, found, at_key_name = _clean_loc(err["loc"], data, err["type"])
        key = (tuple(path), "type" if err["type"] in _EXPECTED else err["type"] + str(len(order)))
        if key not in merged:
            merged[key] = {"errs": [], "path": path, "found": found, "key": at_key_name}
            order.append(key)
        merged[key]["errs"].append(err)
    out = []
    for key in order:
        m = merged[key]
        out.append((m["path"], _sentence(m["errs"], m["path"], m["found"], m["key"], cls), m["key"]))
    return out


def _clean_loc(loc: tuple, data: Any, etype: str) -> tuple[list[str | int], Any, bool]:
    """Drop pydantic's union/validator tags from `loc`, keeping only steps present in the data."""
    path: list[str | int] = []
    current = data
    at_key = False
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict) and isinstance(step, str) and step in current:
            path.append(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            path.append(step)
            current = current[step]
        elif step == "[key]":
            at_key = True
        elif etype == "missing" and last:
            path.append(step)
            current = None
        else:
            continue
    if etype == "extra_forbidden":
        at_key = True
    return path, current, at_key


def _sentence(errs: list[dict[str, Any]], path: list[str | int], found: Any, at_key: bool,
              cls: type[BaseModel]) -> str:
    err = errs[0]
    etype = err["type"]
    ctx = err.get("ctx") or {}
    name = path[-1] if path else ""
    if etype == "missing":
        return f"required field {name} is missing"
    if etype == "extra_forbidden":
        known = _known_fields(cls, path[:-1])
        return _unknown_field_message(str(name), known) + _misplaced_hint(cls, path)
    if etype in _EXPECTED:
        wanted: list[str] = []
        for x in errs:
            if x["type"] == "literal_error":
                wanted.append("one of " + x["ctx"]["expected"].replace("'", '"'))
            elif _EXPECTED.get(x["type"]):
                wanted.append(_EXPECTED[x["type"]])
            elif x["type"] == "is_instance_of":
                wanted.append(x["ctx"].get("class", "a value"))
        wanted = list(dict.fromkeys(wanted))
        msg = f"expected {_or(wanted)}, found {_describe(found)}"
        if at_key:
            msg = f"keys must be strings, found {_describe(err.get('input'))}"
        elif "a string" in wanted and isinstance(found, (int, float, bool)) and len(path) >= 2 \
                and path[-2] in ("labels", "annotations", "matchLabels", "selector"):
            msg += f' — quote it: "{str(found).lower() if isinstance(found, bool) else found}"'
        return msg
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[etype]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}, found {_describe(found)}"
    if etype == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} {'item' if n == 1 else 'items'}, found {ctx.get('actual_length', 0)}"
    if etype == "string_too_short":
        return "must not be empty"
    if etype in ("string_too_long", "too_long"):
        return f"too long: at most {ctx.get('max_length')} {'characters' if etype == 'string_too_long' else 'items'}"
    if etype == "string_pattern_mismatch":
        return f"{_describe(found)} does not have the expected form ({ctx.get('pattern')})"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _unknown_field_message(name: str, known: list[str]) -> str:
    msg = f'unknown field "{name}"'
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        msg += f' — did you mean "{close[0]}"?'
    if known:
        shown = known if len(known) <= 20 else known[:20] + ["…"]
        msg += f" (fields here: {', '.join(shown)})"
    return msg


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, dict) and args:
        return _inner_model(args[-1])
    if origin in (typing.Union, types.UnionType):
        for a in args:
            m = _inner_model(a)
            if m is not None:
                return m
        return None
    if origin is typing.Annotated:
        return _inner_model(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(cls: type[BaseModel], path: list[str | int]) -> type[BaseModel] | None:
    """The model of the struct at `path` under model `cls`, or None where it is a plain dict."""
    model: type[BaseModel] | None = cls
    for step in path:
        if model is None:
            return None
        if isinstance(step, int):
            continue
        by_alias = {(f.alias or n): f for n, f in model.model_fields.items()}
        f = by_alias.get(step)
        if f is None:  # a map key (labels, headers); the value's model stays the same
            continue
        model = _inner_model(f.annotation)
    return model


def _known_fields(cls: type[BaseModel], path: list[str | int]) -> list[str]:
    """The YAML field names of the struct at `path` under model `cls` (for 'did you mean')."""
    model = _model_at(cls, path)
    return sorted((f.alias or n) for n, f in model.model_fields.items()) if model else []


def _misplaced_hint(cls: type[BaseModel], path: list[str | int]) -> str:
    """An unknown field that is a real field one level up or down is an indentation slip: say so."""
    if len(path) < 2 or not isinstance(path[-1], str):
        return ""
    name, here = path[-1], _model_at(cls, path[:-1])
    if here is None:
        return ""
    for alias, f in ((f.alias or n, f) for n, f in here.model_fields.items()):
        child = _inner_model(f.annotation)
        if child is not None and name in {(g.alias or m) for m, g in child.model_fields.items()}:
            return f" — {name} is a field of {alias}{'[]' if _is_list(f.annotation) else ''}: check the indentation"
    # the struct holding this one: one step up for a field, two for an item of a list field
    container = path[:-1] if isinstance(path[-2], str) else path[:-2]
    parent = _model_at(cls, container[:-1])
    if parent is not None and name in {(g.alias or m) for m, g in parent.model_fields.items()}:
        return f" — {name} belongs one level up, beside {_format_path(container)}: check the indentation"
    return ""


def _is_list(annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in args)
    return origin is list


# ----------------------------------------------------------------------- checks beyond the models

def _check_metadata(kind: str, cls: type[K8sObject], data: dict[str, Any], where: _Where, loader: _Loader) -> None:
    """Names and labels as the API server checks them; on raw data, so they show up with type errors."""
    p = lambda path, msg, at_key=False: where.problem(loader, path, msg, at_key=at_key)  # noqa: E731
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return
    name, namespace, labels = meta.get("name"), meta.get("namespace"), meta.get("labels")
    if isinstance(name, str):
        if cls is Namespace:
            _check_name(name, _DNS1123_LABEL, 63, "an RFC 1123 label", p)
        elif cls is Service:
            _check_name(name, _DNS1035_LABEL, 63, "an RFC 1035 label (it must start with a letter)", p)
        elif cls is not UnmodelledObject:
            _check_name(name, _DNS1123_SUBDOMAIN, 253, "an RFC 1123 subdomain", p)
        elif not name or name in (".", "..") or "/" in name or "%" in name:
            p(["metadata", "name"], f'"{name}" is not a valid name (it may not be empty, ".", ".." or contain "/" or "%")')
    if isinstance(namespace, str) and namespace and cls.NAMESPACED and not _valid(namespace, _DNS1123_LABEL, 63):
        p(["metadata", "namespace"], f'"{namespace}" is not a valid namespace name: lower case letters, '
          f"digits and '-', starting and ending with a letter or digit, at most 63 characters")
    if isinstance(labels, dict):
        _check_labels({k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)},
                      ["metadata", "labels"], p)


def _check_object(obj: K8sObject, data: dict[str, Any], where: _Where, loader: _Loader) -> None:
    """What the API server checks that a per-field type cannot say: cross-field and per-kind rules."""
    p = lambda path, msg, at_key=False: where.problem(loader, path, msg, at_key=at_key)  # noqa: E731
    if isinstance(obj, Service):
        _check_service(obj, p)
    elif isinstance(obj, Deployment):
        _check_labels(obj.spec.template.metadata.labels, ["spec", "template", "metadata", "labels"], p)
        _check_labels(obj.spec.selector.match_labels, ["spec", "selector", "matchLabels"], p)
        sel = obj.spec.selector.match_labels
        if not sel and not obj.spec.selector.match_expressions:
            p(["spec", "selector"], "an empty selector is invalid for a Deployment: set matchLabels")
        elif not labels_match(sel, obj.spec.template.metadata.labels):
            p(["spec", "template", "metadata", "labels"],
              f"selector does not match template labels: the selector {sel} needs every one of these labels "
              f"on the pod template (found {obj.spec.template.metadata.labels})")
        _check_pod_spec(data.get("spec", {}).get("template", {}).get("spec", {}), ["spec", "template", "spec"], p)
    elif isinstance(obj, Pod):
        _check_pod_spec(data.get("spec", {}), ["spec"], p)
    elif isinstance(obj, VirtualService):
        _check_virtual_service(obj, p)
    elif isinstance(obj, DestinationRule):
        _check_destination_rule(obj, p)
    elif isinstance(obj, Gateway):
        for i, server in enumerate(obj.spec.servers):
            if server.port.name is None:
                p(["spec", "servers", i, "port", "name"], "required field name is missing")
    elif isinstance(obj, ServiceEntry):
        for i, port in enumerate(obj.spec.ports):
            if port.name is None:
                p(["spec", "ports", i, "name"], "required field name is missing")


def _valid(value: str, pattern: re.Pattern[str], max_len: int) -> bool:
    return len(value) <= max_len and bool(pattern.match(value))


def _check_name(name: str, pattern: re.Pattern[str], max_len: int, what: str, p: Any) -> None:
    if not _valid(name, pattern, max_len):
        p(["metadata", "name"], f'"{name}" is not a valid name: it must be {what} — lower case letters, digits '
          f"and '-'{', and .' if 'subdomain' in what else ''}, starting and ending with a letter or digit, "
          f"at most {max_len} characters")


def _check_labels(labels: dict[str, str], path: list[str | int], p: Any) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _valid(name, _LABEL_NAME, 63) or (prefix and not _valid(prefix, _DNS1123_SUBDOMAIN, 253)) \
                or key.count("/") > 1:
            p([*path, key], f'"{key}" is not a valid label key: a name of at most 63 letters, digits, '
              f"'-', '_' or '.' (starting and ending with a letter or digit), optionally prefixed by a "
              f"DNS subdomain and '/'", at_key=True)
        if value and not _valid(value, _LABEL_NAME, 63):
            p([*path, key], f'"{value}" is not a valid label value: at most 63 letters, digits, '
              f"'-', '_' or '.', starting and ending with a letter or digit (or empty)")


def _check_service(svc: Service, p: Any) -> None:
    spec = svc.spec
    if not spec.ports and spec.type != "ExternalName" and not spec.headless:
        p(["spec", "ports"], "required: a Service needs at least one port (only headless and ExternalName "
          "Services may have none)", )
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[int, str], int] = {}
    for i, port in enumerate(spec.ports):
        if len(spec.ports) > 1 and not port.name:
            p(["spec", "ports", i], "a Service with more than one port must name every port (and Istio picks "
              "the protocol from names like http-web)")
        if port.name is not None:
            if not _valid(port.name, _DNS1123_LABEL, 63):
                p(["spec", "ports", i, "name"], f'"{port.name}" is not a valid port name: an RFC 1123 label '
                  f"(lower case letters, digits and '-')")
            if port.name in seen_names:
                p(["spec", "ports", i, "name"], f'duplicate port name "{port.name}" (also spec.ports[{seen_names[port.name]}])')
            seen_names.setdefault(port.name, i)
        if (port.port, port.protocol) in seen_ports:
            p(["spec", "ports", i, "port"], f"duplicate port {port.port}/{port.protocol} "
              f"(also spec.ports[{seen_ports[(port.port, port.protocol)]}])")
        seen_ports.setdefault((port.port, port.protocol), i)
        tp = port.target_port
        if isinstance(tp, int) and tp != 0 and not 1 <= tp <= 65535:   # 0: defaulted to port
            p(["spec", "ports", i, "targetPort"], f"must be between 1 and 65535, found {tp}")
        if isinstance(tp, str) and not (_valid(tp, _IANA_SVC_NAME, 15) and "--" not in tp
                                        and any(c.isalpha() for c in tp)):
            p(["spec", "ports", i, "targetPort"], f'"{tp}" is neither a port number nor a valid port name '
              f"(at most 15 lower case letters, digits and '-', with at least one letter)")


def _check_pod_spec(spec: Any, path: list[str | int], p: Any) -> None:
    if not isinstance(spec, dict):
        return
    for key in spec:
        if key not in _POD_SPEC_FIELDS:
            p([*path, key], _unknown_field_message(key, sorted(_POD_SPEC_FIELDS)), at_key=True)
    names: dict[str, str] = {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            for key in c:
                if key not in _CONTAINER_FIELDS:
                    p([*path, group, i, key], _unknown_field_message(key, sorted(_CONTAINER_FIELDS)), at_key=True)
            name = c.get("name")
            if isinstance(name, str):
                if not _valid(name, _DNS1123_LABEL, 63):
                    p([*path, group, i, "name"], f'"{name}" is not a valid container name: an RFC 1123 label')
                elif name in names:
                    p([*path, group, i, "name"], f'duplicate container name "{name}" (also {names[name]})')
                names.setdefault(name, _format_path([*path, group, i]))
            for j, var in enumerate(c.get("env") or []):
                if not isinstance(var, dict):
                    continue
                value = var.get("value")
                if value is not None and not isinstance(value, str):
                    p([*path, group, i, "env", j, "value"], f"expected a string, found {_describe(value)} — environment "
                      f'values are strings: quote it ("{str(value).lower() if isinstance(value, bool) else value}")')
                if not isinstance(var.get("name"), str) or not var.get("name"):
                    p([*path, group, i, "env", j, "name"], "required field name is missing", )
            for j, port in enumerate(c.get("ports") or []):
                pname = port.get("name") if isinstance(port, dict) else None
                if isinstance(pname, str) and not (_valid(pname, _IANA_SVC_NAME, 15) and "--" not in pname
                                                   and any(ch.isalpha() for ch in pname)):
                    p([*path, group, i, "ports", j, "name"], f'"{pname}" is not a valid port name: at most 15 lower '
                      f"case letters, digits and '-', with at least one letter")


def _check_virtual_service(vs: VirtualService, p: Any) -> None:
    """Rules Istio's validating webhook adds to the CRD schema (pkg/config/validation)."""
    for i, route in enumerate(vs.spec.http):
        dests = route.route or []
        if len(dests) > 1 and sum(d.weight or 0 for d in dests) == 0:
            p(["spec", "http", i, "route"], "with more than one destination the weights must add up to more "
              "than 0 (Istio's webhook refuses a total weight of 0)")
        _check_http_route(route, ["spec", "http", i], p)


# ------------------------------------------------------------------ Istio's validating webhook

# What istiod's webhook (pkg/config/validation) refuses on top of the CRD schema, for the fields
# meshlab models. Without these a value would pass here and fail later, in Envoy, where the error
# no longer names the object or the field.

_MS = 1_000_000
_S = 1_000_000_000
#: gRPC status names the webhook takes for fault.abort.grpcStatus (grpc-go's codes)
_GRPC_STATUS = frozenset("""OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS
    PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED INTERNAL
    UNAVAILABLE DATA_LOSS UNAUTHENTICATED""".split())
#: retryOn policies the webhook knows (Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on)
_RETRY_ON = frozenset("""5xx gateway-error reset reset-before-request connect-failure retriable-4xx refused-stream
    retriable-status-codes retriable-headers envoy-ratelimited http3-post-connect-failure cancelled
    deadline-exceeded internal resource-exhausted unavailable""".split())
#: status codes Go's net/http has a name for: the webhook takes these as retryOn policies too
_HTTP_STATUS_NAMED = frozenset([100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308,
                                *range(400, 419), *range(421, 427), 428, 429, 431, 451, *range(500, 509), 510, 511])
_CORS_METHODS = frozenset("GET HEAD POST PUT PATCH DELETE CONNECT OPTIONS TRACE *".split())
_MAX_REGEX = 1024          # the webhook's limit on a regex's length
_MAX_DIRECT_BODY = 1 << 20


def _webhook_duration(value: str | None, path: list[str | int], p: Any, *, zero_ok: bool = False,
                      unit: int = _MS) -> None:
    """The webhook's duration rule: at least 1ms and a whole number of milliseconds (Envoy's
    timers count milliseconds; `unit=_S` where whole seconds are asked); `zero_ok` for
    tcp.idleTimeout, where 0 switches the timeout off."""
    if value is None:
        return
    if not isinstance(value, str):
        p(path, f"expected a duration string such as \"30s\", found {_describe(value)}")
        return
    try:
        ns = duration_ns(value)
    except ValueError as e:
        p(path, str(e))
        return
    if zero_ok and int(ns / _MS) == 0 and ns >= 0:
        return
    if ns < _MS:
        p(path, f"must be a duration of at least 1ms, found \"{value}\"")
    elif ns % _MS:
        p(path, f"must be a whole number of milliseconds (Istio's webhook refuses finer durations), "
          f"found \"{value}\"")
    elif ns % unit:
        p(path, f"must be a whole number of seconds (Istio's webhook refuses finer), found \"{value}\"")


def _non_negative(value: int | None, path: list[str | int], p: Any) -> None:
    if value is not None and value < 0:
        p(path, f"must be >= 0 (Istio's webhook refuses a negative value), found {_describe(value)}")


def _percent_0_100(value: int | float | None, path: list[str | int], p: Any) -> None:
    if value is not None and not 0 <= value <= 100:
        p(path, f"must be a percentage between 0 and 100, found {_describe(value)}")


def _check_regex(regex: str, path: list[str | int], p: Any) -> None:
    if regex == "":
        p(path, "a regex match must not be empty (Istio's webhook refuses it); leave the field out to match anything")
    elif len(regex) > _MAX_REGEX:
        p(path, f"regex too long: at most {_MAX_REGEX} characters (Istio's webhook limit), found {len(regex)}")
    else:
        why = re2_problem(regex)
        if why:
            p(path, f"not a valid RE2 regular expression ({why}); Istio and Envoy use RE2 syntax, not "
              f"Perl's or Python's: {_RE2_SYNTAX} — found {_describe(regex)}")


def _check_string_match(sm: StringMatch | None, path: list[str | int], p: Any, *, empty_prefix_ok: bool = False) -> None:
    if sm is None:
        return
    if sm.prefix == "" and not empty_prefix_ok:
        p([*path, "prefix"], "a prefix match must not be empty (Istio's webhook refuses it; only uri takes an "
          "empty prefix)")
    if sm.regex is not None:
        _check_regex(sm.regex, [*path, "regex"], p)


def _check_destination(dest: Destination | None, path: list[str | int], p: Any) -> None:
    if dest is None:
        return
    if dest.host == "*":
        p([*path, "host"], 'a destination host cannot be "*": name a service')
    if dest.subset and not _valid(dest.subset, _DNS1123_LABEL, 63):
        p([*path, "subset"], f'"{dest.subset}" is not a valid subset name: an RFC 1123 label (lower case letters, '
          f"digits and '-', starting and ending with a letter or digit)")
    if dest.port is not None and not 1 <= dest.port.number <= 65535:
        p([*path, "port", "number"], f"must be between 1 and 65535, found {_describe(dest.port.number)}")


def _check_http_route(route: HTTPRoute, path: list[str | int], p: Any) -> None:
    """One `http[]` rule, as the webhook's validateHTTPRoute checks it."""
    for k, m in enumerate(route.match or []):
        mp = [*path, "match", k]
        _check_string_match(m.uri, [*mp, "uri"], p, empty_prefix_ok=True)
        for name in ("scheme", "method", "authority"):
            _check_string_match(getattr(m, name), [*mp, name], p)
        for field_name, alias in (("headers", "headers"), ("query_params", "queryParams"),
                                  ("without_headers", "withoutHeaders")):
            for key, sm in (getattr(m, field_name) or {}).items():
                if alias == "withoutHeaders" and sm.regex == "*":   # Istio's "header absent" spelling
                    continue
                _check_string_match(sm, [*mp, alias, key], p)
        if m.port and not 1 <= m.port <= 65535:
            p([*mp, "port"], f"must be between 1 and 65535, found {_describe(m.port)}")
        if m.source_namespace and not _valid(m.source_namespace, _DNS1123_LABEL, 63):
            p([*mp, "sourceNamespace"], f'"{m.source_namespace}" is not a valid namespace name (an RFC 1123 label)')
    for j, rd in enumerate(route.route or []):
        _check_destination(rd.destination, [*path, "route", j, "destination"], p)
    _check_destination(route.mirror, [*path, "mirror"], p)
    for j, mirror in enumerate(route.mirrors or []):
        _check_destination(mirror.destination, [*path, "mirrors", j, "destination"], p)
    if route.mirror is not None and route.mirrors:
        p([*path, "mirrors"], "only one of mirror or mirrors may be set")
    for alias, value in (("mirrorPercent", route.mirror_percent), ("mirror_percent", route.mirror_percent_legacy)):
        if value is not None and value > 100:
            p([*path, alias], f"must be at most 100, found {_describe(value)}")
    _webhook_duration(route.timeout, [*path, "timeout"], p)
    if route.redirect is not None:
        _check_redirect(route, [*path, "redirect"], p)
    if route.rewrite is not None:
        _check_rewrite(route.rewrite, [*path, "rewrite"], p)
    if route.retries is not None:
        _check_retries(route.retries, [*path, "retries"], p)
    if route.fault is not None:
        _check_fault(route.fault, [*path, "fault"], p)
    if route.cors_policy is not None:
        _check_cors(route.cors_policy, [*path, "corsPolicy"], p)
    if route.direct_response is not None:
        status = route.direct_response["status"]
        if not 200 <= status <= 599:
            p([*path, "directResponse", "status"], f"must be an HTTP status from 200 to 599, found {_describe(status)}")
        body = next(iter((route.direct_response.get("body") or {}).values()), "")
        if len(body.encode()) > _MAX_DIRECT_BODY:
            p([*path, "directResponse", "body"], "a direct response body must be less than 1MB (Istio's webhook limit)")
    for other in ("route", "fault", "rewrite"):
        for action, value in (("redirect", route.redirect), ("directResponse", route.direct_response)):
            if value is not None and getattr(route, other):
                p([*path, other], f"a rule with {action} cannot also have {other}")
    if route.redirect is not None and route.direct_response is not None:
        p([*path, "directResponse"], "a rule cannot have both redirect and directResponse")


def _check_cors(cors: dict[str, Any], path: list[str | int], p: Any) -> None:
    """corsPolicy is kept as a dict; the webhook checks its origins (RE2), methods and maxAge."""
    origins = cors.get("allowOrigins")
    for k, origin in enumerate(origins if isinstance(origins, list) else []):
        if not isinstance(origin, dict):
            continue
        kinds = [key for key in ("exact", "prefix", "regex") if key in origin]
        if not kinds or not origin.get(kinds[0]):
            p([*path, "allowOrigins", k], "an allowed origin needs a non-empty exact, prefix or regex")
        elif kinds[0] == "regex" and isinstance(origin["regex"], str):
            _check_regex(origin["regex"], [*path, "allowOrigins", k, "regex"], p)
    methods = cors.get("allowMethods")
    for k, method in enumerate(methods if isinstance(methods, list) else []):
        if method not in _CORS_METHODS:
            p([*path, "allowMethods", k], f"not an HTTP method Istio allows here ({', '.join(sorted(_CORS_METHODS))}), "
              f"found {_describe(method)}")
    _webhook_duration(cors.get("maxAge"), [*path, "maxAge"], p, unit=_S)


def _check_redirect(route: HTTPRoute, path: list[str | int], p: Any) -> None:
    rd = route.redirect
    assert rd is not None
    if rd.uri and rd.prefix_rewrite:
        p(path, "only one of uri or prefixRewrite may be set")
    if rd.prefix_rewrite and any(m.uri is not None and m.uri.prefix is None for m in route.match or []):
        p([*path, "prefixRewrite"], "prefixRewrite needs every uri match of the rule to be a prefix match")
    if not (rd.uri or rd.prefix_rewrite or rd.authority or rd.scheme or rd.port is not None or rd.derive_port):
        p(path, "a redirect must set at least one of uri, prefixRewrite, authority, scheme or port")
    if rd.redirect_code and not 300 <= rd.redirect_code <= 399:
        p([*path, "redirectCode"], f"must be a 3xx redirect code, 300 to 399 (use 301, 302, 303, 307 or 308: "
          f"istiod drops the redirect for other codes), found {_describe(rd.redirect_code)}")
    if rd.scheme and rd.scheme not in ("http", "https"):
        p([*path, "scheme"], f'must be "http" or "https", found {_describe(rd.scheme)}')
    if rd.port and not 1 <= rd.port <= 65535:
        p([*path, "port"], f"must be between 1 and 65535, found {_describe(rd.port)}")


def _check_rewrite(rw: Any, path: list[str | int], p: Any) -> None:
    if rw.uri and rw.uri_regex_rewrite is not None:
        p(path, "only one of uri or uriRegexRewrite may be set")
    if not rw.uri and rw.uri_regex_rewrite is None and not rw.authority:
        p(path, "a rewrite must set at least one of uri, uriRegexRewrite or authority")
    rr = rw.uri_regex_rewrite
    if rr is not None:
        if not rr.match or not rr.rewrite:
            p([*path, "uriRegexRewrite"], "uriRegexRewrite needs both match and rewrite")
        if rr.match:
            _check_regex(rr.match, [*path, "uriRegexRewrite", "match"], p)


def _check_retries(rt: Any, path: list[str | int], p: Any) -> None:
    _non_negative(rt.attempts, [*path, "attempts"], p)
    if not rt.attempts and (rt.per_try_timeout is not None or rt.retry_on or rt.retry_remote_localities is not None):
        p([*path, "attempts"], "retries are switched off by attempts 0 (the default), so perTryTimeout, retryOn and "
          "retryRemoteLocalities may not be set; give attempts > 0")
    _webhook_duration(rt.per_try_timeout, [*path, "perTryTimeout"], p)
    _webhook_duration(rt.backoff, [*path, "backoff"], p)
    for policy in (rt.retry_on or "").split(",") if rt.retry_on else []:
        if policy not in _RETRY_ON and not (policy.isdigit() and int(policy) in _HTTP_STATUS_NAMED):
            p([*path, "retryOn"], f'"{policy}" is not a retryOn policy: a comma-separated list (no spaces) of '
              f"{', '.join(sorted(_RETRY_ON))} or HTTP status codes")


def _check_fault(fault: Any, path: list[str | int], p: Any) -> None:
    if fault.abort is None and fault.delay is None:
        p(path, "a fault needs an abort, a delay or both")
    for part, value in (("abort", fault.abort), ("delay", fault.delay)):
        pct = value.percentage if value is not None else None
        if pct is not None and 0 < pct.value < 0.0001:
            p([*path, part, "percentage", "value"], f"must be 0 or between 0.0001 and 100, found {_describe(pct.value)}")
    if fault.abort is not None:
        a = fault.abort
        if a.http_status is not None and not 200 <= a.http_status <= 599:
            p([*path, "abort", "httpStatus"], f"must be an HTTP status from 200 to 599, found {_describe(a.http_status)}")
        if a.grpc_status is not None and a.grpc_status not in _GRPC_STATUS:
            p([*path, "abort", "grpcStatus"], f"not a gRPC status name (e.g. UNAVAILABLE, NOT_FOUND), "
              f"found {_describe(a.grpc_status)}")
        if a.http2_error is not None:
            p([*path, "abort", "http2Error"], "HTTP/2 abort faults are not supported by Istio; use httpStatus")
    if fault.delay is not None:
        _webhook_duration(fault.delay.fixed_delay, [*path, "delay", "fixedDelay"], p)
        if fault.delay.exponential_delay is not None:
            p([*path, "delay", "exponentialDelay"], "exponentialDelay is not supported by Istio; use fixedDelay")


def _check_traffic_policy(tp: Any, path: list[str | int], p: Any, *, port_level: bool = False) -> None:
    """A trafficPolicy (or one of its portLevelSettings), as the webhook's validateTrafficPolicy does."""
    if tp is None:
        return
    fields = ("outlier_detection", "connection_pool", "load_balancer", "tls") + (
        () if port_level else ("port_level_settings", "tunnel", "proxy_protocol", "retry_budget"))
    if all(getattr(tp, f) is None for f in fields):
        p(path, "a traffic policy must set at least one field")
    if not port_level and tp.tunnel is not None and tp.proxy_protocol is not None:
        p(path, "only one of tunnel or proxyProtocol may be set")
    if port_level and tp.port is None:
        p([*path, "port"], "required field port is missing")
    _check_outlier_detection(tp.outlier_detection, [*path, "outlierDetection"], p)
    _check_connection_pool(tp.connection_pool, [*path, "connectionPool"], p)
    lb = tp.load_balancer
    if lb is not None and lb.consistent_hash is not None and lb.consistent_hash.http_cookie is not None \
            and not lb.consistent_hash.http_cookie.get("name"):
        p([*path, "loadBalancer", "consistentHash", "httpCookie", "name"], "required field name is missing")
    if not port_level:
        for i, plp in enumerate(tp.port_level_settings or []):
            _check_traffic_policy(plp, [*path, "portLevelSettings", i], p, port_level=True)


def _check_outlier_detection(od: Any, path: list[str | int], p: Any) -> None:
    if od is None:
        return
    _webhook_duration(od.interval, [*path, "interval"], p)
    _webhook_duration(od.base_ejection_time, [*path, "baseEjectionTime"], p)
    _percent_0_100(od.max_ejection_percent, [*path, "maxEjectionPercent"], p)
    _percent_0_100(od.min_health_percent, [*path, "minHealthPercent"], p)
    if od.consecutive_local_origin_failures and not od.split_external_local_origin_errors:
        p([*path, "consecutiveLocalOriginFailures"], "needs splitExternalLocalOriginErrors: true (local origin "
          "failures are only counted apart when split)")


def _check_connection_pool(cp: Any, path: list[str | int], p: Any) -> None:
    if cp is None:
        return
    if cp.tcp is None and cp.http is None:
        p(path, "a connection pool must set tcp, http or both")
    if cp.tcp is not None:
        t, tp = cp.tcp, [*path, "tcp"]
        _non_negative(t.max_connections, [*tp, "maxConnections"], p)
        _webhook_duration(t.connect_timeout, [*tp, "connectTimeout"], p)
        _webhook_duration(t.max_connection_duration, [*tp, "maxConnectionDuration"], p)
        _webhook_duration(t.idle_timeout, [*tp, "idleTimeout"], p, zero_ok=True)
        for key in ("time", "interval"):
            _webhook_duration((t.tcp_keepalive or {}).get(key), [*tp, "tcpKeepalive", key], p)
    if cp.http is not None:
        h, hp = cp.http, [*path, "http"]
        for field_name in ("http1_max_pending_requests", "http2_max_requests", "max_requests_per_connection",
                           "max_retries", "max_concurrent_streams"):
            _non_negative(getattr(h, field_name), [*hp, type(h).model_fields[field_name].alias or field_name], p)
        _webhook_duration(h.idle_timeout, [*hp, "idleTimeout"], p)
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            p([*hp, "useClientProtocol"], "must not be true when h2UpgradePolicy is UPGRADE")
        if h.http2_keep_alive is not None:
            for key in ("interval", "timeout"):
                if h.http2_keep_alive.get(key) is None:
                    p([*hp, "http2KeepAlive", key], f"required field {key} is missing")
                _webhook_duration(h.http2_keep_alive.get(key), [*hp, "http2KeepAlive", key], p)


def _check_destination_rule(dr: DestinationRule, p: Any) -> None:
    """Rules Istio's validating webhook adds to the CRD schema for a DestinationRule."""
    _check_traffic_policy(dr.spec.traffic_policy, ["spec", "trafficPolicy"], p)
    for i, subset in enumerate(dr.spec.subsets):
        if subset.name and not _valid(subset.name, _DNS1123_LABEL, 63):
            p(["spec", "subsets", i, "name"], f'"{subset.name}" is not a valid subset name: an RFC 1123 label '
              f"(lower case letters, digits and '-', starting and ending with a letter or digit)")
        _check_traffic_policy(subset.traffic_policy, ["spec", "subsets", i, "trafficPolicy"], p)


# ------------------------------------------------------------------- RE2, the regex dialect of Istio

#: Where a learner reads what RE2 takes; every regex message points there.
_RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"
_RE2_FLAGS = frozenset("imsU")
_POSIX_CLASSES = frozenset("alnum alpha ascii blank cntrl digit graph lower print punct space upper word xdigit".split())
_PERL_ONLY_GROUPS = (   # what follows "(?" → what it is (Perl/PCRE/Python syntax RE2 does not have)
    ("=", "lookahead (?=...)"), ("!", "negative lookahead (?!...)"), ("<=", "lookbehind (?<=...)"),
    ("<!", "negative lookbehind (?<!...)"), (">", "atomic group (?>...)"), ("#", "comment (?#...)"),
    ("(", "conditional (?(...)...)"), ("P=", "named backreference (?P=name)"), ("P>", "recursion (?P>name)"),
    ("&", "recursion (?&name)"), ("R", "recursion (?R)"), ("|", "branch reset (?|...)"),
)
_MAX_REPEAT = 1000   # RE2 refuses {n,m} counts above this
_MAX_NESTING = 1000  # and groups nested deeper than this
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


class _RE2Error(ValueError):
    pass


def re2_problem(pattern: str) -> str | None:
    """Why RE2 (Envoy's regex engine; Istio's webhook checks with Go's RE2-syntax regexp) refuses
    `pattern`, or None when it accepts it. Python's `re` is a different dialect, so the RE2-only
    constructs are read here and rewritten for Python, the Perl-only ones refused, and `re.compile`
    then finds what is left (unclosed groups, bad ranges, nothing to repeat)."""
    try:
        python = _re2_to_python(pattern)
    except _RE2Error as e:
        return str(e)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # "possible nested set" and the like: not errors
        try:
            re.compile(python)
        except re.error as e:
            return e.msg.replace("nothing to repeat", "missing argument to repetition operator")
        except (OverflowError, RecursionError):
            return None     # nested deeper than Python's parser goes; RE2 takes up to 1000 levels (checked above)
    return None


def _re2_to_python(p: str) -> str:
    out: list[str] = []
    i, n = 0, len(p)
    repeated = False   # the previous token was a repetition operator (so another one is refused)
    lazy = False
    # Per open group, the largest product of {n,m} counts inside it: RE2 refuses nested counted
    # repetitions that multiply past 1000, e.g. (a{100}){20}. `closed` is the group just closed.
    counts: list[int] = [1]
    closed: int | None = None
    while i < n:
        c = p[i]
        if c in "*+?" or (c == "{" and _REPEAT.match(p, i)):
            m = _REPEAT.match(p, i) if c == "{" else None
            op = m.group(0) if m else c
            if c == "?" and repeated and not lazy:
                lazy = True
                out.append("?")
                i += 1
                continue
            if repeated:
                kind = "possessive quantifier" if c == "+" else "nested repetition"
                raise _RE2Error(f"bad repetition operator {p[max(0, i - 4):i + len(op)]!r}: "
                                f"a {kind} is not RE2 (wrap the inner part in (?:...) to repeat it again)")
            if m:
                lo, hi = int(m.group(1)), m.group(3)
                if lo > _MAX_REPEAT or (hi and int(hi) > _MAX_REPEAT):
                    raise _RE2Error(f"bad repetition operator {op}: RE2 allows counts up to {_MAX_REPEAT}")
                total = (int(hi) if hi else lo) * (closed or 1)
                if total > _MAX_REPEAT:
                    raise _RE2Error(f"invalid repetition size {op}: nested counted repetitions multiply to {total}, "
                                    f"RE2 allows up to {_MAX_REPEAT}")
                counts[-1] = max(counts[-1], total)
            out.append(op)
            i += len(op)
            repeated, lazy, closed = True, False, None
            continue
        repeated, closed = False, None
        if c == "\\":
            text, i = _re2_escape(p, i, in_class=False)
            out.append(text)
        elif c == "[":
            text, i = _re2_class(p, i)
            out.append(text)
        elif c == "(":
            text, i, opens = _re2_group(p, i) if p.startswith("(?", i) else ("(", i + 1, True)
            out.append(text)
            if opens:
                counts.append(1)
                if len(counts) > _MAX_NESTING + 1:
                    raise _RE2Error(f"expression nests too deeply: RE2 allows {_MAX_NESTING} levels")
        elif c == ")":
            if len(counts) > 1:
                closed = counts.pop()
                counts[-1] = max(counts[-1], closed)
            out.append(c)
            i += 1
        else:
            # RE2 repeats an anchor (`^*`); Python only a group, so anchors go in one
            out.append(f"(?:{c})" if c in "^$" else c)
            i += 1
    return "".join(out)


def _clip(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


def _re2_group(p: str, i: int) -> tuple[str, int, bool]:
    """`(?...`: named groups and flags are RE2; lookarounds, atomic groups, … are not."""
    rest = p[i + 2:]
    for start, what in _PERL_ONLY_GROUPS:
        if rest.startswith(start) and not (start == "R" and not rest.startswith("R)")):
            raise _RE2Error(f"{what} is not supported by RE2")
    if rest[:1].isdigit() or rest.startswith(("+", "-)")):
        raise _RE2Error("recursion (?N) is not supported by RE2")
    if rest.startswith(("P<", "<")):
        start = i + 2 + (2 if rest.startswith("P<") else 1)
        end = p.find(">", start)
        name = p[start:end] if end >= 0 else ""
        if end < 0 or not name or not all(ch.isalnum() or ch == "_" for ch in name):
            raise _RE2Error(f"invalid named capture group {p[i:end + 1 if end >= 0 else None]!r}")
        return "(", end + 1, True     # named or not, Python only needs the group
    j = i + 2
    minus, after_minus = False, 0
    while j < len(p) and p[j] not in ":)":
        ch = p[j]
        if ch == "-" and not minus:
            minus = True
        elif ch in _RE2_FLAGS:
            after_minus += minus
        else:
            raise _RE2Error(f"invalid or unsupported Perl syntax {p[i:j + 1]!r} (RE2 flags are i, m, s and U)")
        j += 1
    if j >= len(p):
        raise _RE2Error(f"missing closing ): {_clip(p[i:])!r}")
    if minus and not after_minus:
        raise _RE2Error(f"invalid or unsupported Perl syntax {p[i:j + 1]!r}")
    # Flags change matching, not syntax: Python only needs the group (and refuses mid-pattern flags).
    return ("(?:", j + 1, True) if p[j] == ":" else ("", j + 1, False)


def _re2_escape(p: str, i: int, in_class: bool) -> tuple[str, int]:
    """One `\\x` escape → (the same thing for Python, index after it)."""
    if i + 1 >= len(p):
        raise _RE2Error("trailing backslash at end of expression")
    c = p[i + 1]
    if c in "1234567" and not (i + 2 < len(p) and p[i + 2] in "01234567"):
        raise _RE2Error(f"backreferences (\\{c}) are not supported by RE2")
    if c in "01234567":   # octal: \0, \12, \123
        j = i + 2
        while j < len(p) and j < i + 4 and p[j] in "01234567":
            j += 1
        return re.escape(chr(int(p[i + 1:j], 8))), j
    if c == "x":
        if p.startswith("{", i + 2):
            end = p.find("}", i + 3)
            digits = p[i + 3:end] if end > 0 else ""
            if not digits or not all(ch in "0123456789abcdefABCDEF" for ch in digits) or int(digits, 16) > 0x10FFFF:
                raise _RE2Error(f"invalid escape sequence {p[i:end + 1 if end > 0 else None]!r}")
            return re.escape(chr(int(digits, 16))), end + 1
        digits = p[i + 2:i + 4]
        if len(digits) < 2 or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
            raise _RE2Error(f"invalid escape sequence {p[i:i + 4]!r}")
        return re.escape(chr(int(digits, 16))), i + 4
    if c in "pP":
        if p.startswith("{", i + 2):
            end = p.find("}", i + 3)
            name = p[i + 3:end].lstrip("^") if end > 0 else ""
            if not name or not all(ch.isalpha() or ch == "_" for ch in name):
                raise _RE2Error(f"invalid character class range {p[i:end + 1 if end > 0 else None]!r}")
            return r"\w", end + 1
        if i + 2 < len(p) and p[i + 2].isalpha():
            return r"\w", i + 3
        raise _RE2Error(f"invalid character class range {p[i:i + 3]!r}")
    if c == "Q" and not in_class:   # \Q...\E: literal text
        end = p.find("\\E", i + 2)
        text = p[i + 2:] if end < 0 else p[i + 2:end]
        return re.escape(text), len(p) if end < 0 else end + 2
    if c == "z" and not in_class:
        return r"(?:\Z)", i + 2
    if c in "AbB" and not in_class:
        return f"(?:{p[i:i + 2]})", i + 2
    if c in "dDsSwWafnrtv":
        return p[i:i + 2], i + 2
    if c.isascii() and not c.isalnum():
        return re.escape(c), i + 2
    hint = " (RE2 writes the end of text as \\z or $)" if c == "Z" else ""
    raise _RE2Error(f"invalid escape sequence \\{c}{hint}")


def _re2_class(p: str, i: int) -> tuple[str, int]:
    """A `[...]` class: POSIX names and \\p{..} are RE2, `[` inside is a literal."""
    out = ["["]
    j = i + 1
    if p.startswith("^", j):
        out.append("^")
        j += 1
    first = True
    while j < len(p):
        c = p[j]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), j + 1
        first = False
        if c == "[" and p.startswith("[:", j):
            end = p.find(":]", j + 2)
            name = p[j + 2:end].lstrip("^") if end > 0 else None
            if name is not None and name in _POSIX_CLASSES:
                out.append(r"\w")
                j = end + 2
                continue
            if name is not None and name.isalpha():
                raise _RE2Error(f"invalid character class range {p[j:end + 2]!r}")
        if c == "\\":
            text, j = _re2_escape(p, j, in_class=True)
            out.append(text)
            continue
        out.append("\\" + c if c in "[&~|" else c)
        j += 1
    raise _RE2Error(f"missing closing ]: {_clip(p[i:])!r}")
