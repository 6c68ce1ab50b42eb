"""YAML → typed objects, with errors a learner can act on: `meshlab.load`.

`load()` takes what a learner has at hand (files, folders, YAML strings, dicts, objects, lists of
those) and returns typed objects, or raises `ManifestError` listing every problem: file and line
of the offending field, the object (`VirtualService default/reviews`), the field path as written
in YAML (`spec.http[0].route[1].weight`), what was expected and what was found. Nothing is
returned when anything is wrong, so nothing can be half-applied.

What counts as wrong follows the API server (with Istio's CRDs installed) and Istio's validating
webhook: strict types, required fields, unknown fields (kubectl's default strict field
validation), enum values, names that are not DNS names, Istio's CRD rules, duplicate objects.
Kinds meshlab does not model are kept as `UnmodelledObject` and reported as notes, never dropped
silently.

- `_yaml.py`: YAML parsed with line numbers and hard limits (size, documents, depth, aliases);
- `messages.py`: where a problem is (file, line, object, field) and what it says;
- `apiserver.py`: the API server's rules (kinds, versions, names, labels, per-kind checks);
- `webhook.py`: Istio's validating webhook's rules; `re2.py`: RE2 regexes, checked by RE2.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from ..errors import ManifestError, Problem
from ..objects import K8sObject, ObjectKey, Service, Source, UnmodelledObject
from . import _yaml, apiserver, webhook
from .messages import Doc, Where, describe, explain

Loadable = str | Path | dict[str, Any] | K8sObject | Iterable["Loadable"]


# ------------------------------------------------------------------------------------- the report

@dataclass
class LoadReport:
    """Everything one load found: objects (only meaningful when `ok`), problems, and notes.

    Notes are not errors: kinds meshlab keeps but does not model, files that held no objects.
    Warnings are not errors either: the same object given again, where the later one replaces the
    earlier (as `kubectl apply -f folder/` applies file after file); only the later is in `objects`.

    `refused`: objects the API server would store but Istio's validation (its webhook, `webhook.py`)
    refuses, each with those problems. Their problems are in `problems` too (`load()` applies
    nothing when there are any); `istioctl analyze` reports them as IST0106 on the object and
    analyzes everything else, and `meshlab.analyze` does the same.
    """

    objects: list[K8sObject] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    refused: list[tuple[K8sObject, list[Problem]]] = field(default_factory=list)

    @property
    def read_objects(self) -> list[K8sObject]:
        """Every object read: `objects`, then the ones only Istio's validation refuses (what
        `istioctl analyze` still analyzes), except one also given valid (what kubectl applied)."""
        valid = {o.key for o in self.objects}
        return [*self.objects, *(o for o, _ in self.refused if o.key not in valid)]

    @property
    def unparsed(self) -> list[Problem]:
        """The problems that are not Istio validation's: what stops an object being read at all."""
        refused = {id(p) for _, problems in self.refused for p in problems}
        return [p for p in self.problems if id(p) not in refused]

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
    """The objects `load()` returns: a plain list of K8sObject, plus the load's `notes` and
    `warnings` (objects given twice: the later one is in the list)."""

    notes: list[Problem]
    warnings: list[Problem]

    def __init__(self, objects: Iterable[K8sObject] = (), notes: Iterable[Problem] = (),
                 warnings: Iterable[Problem] = ()):
        super().__init__(objects)
        self.notes = list(notes)
        self.warnings = list(warnings)


def load(source: Loadable) -> Manifests:
    """Load and validate manifests; raise ManifestError listing every problem, returning nothing.

    `source` may be a path (file or folder, read recursively for *.yaml / *.yml), a YAML string
    (one or more documents), a dict, a K8sObject, or a list of any of these. Objects without a
    namespace are put in `default`. Unmodelled kinds are returned as UnmodelledObject and listed
    in the result's `.notes`. An object given twice (same apiVersion group, kind, namespace and
    name) is taken once, the later definition, as `kubectl apply -f` applies them in order; the
    result's `.warnings` say where both are.
    """
    report = load_report(source)
    if report.problems:
        raise ManifestError(report.problems)
    return Manifests(report.objects, report.notes, report.warnings)


def load_report(source: Loadable) -> LoadReport:
    """Like `load()`, but never raises for bad input: returns objects, problems and notes."""
    report = _Loader()
    report.add(source)
    report.check_duplicates()
    return report.result


# ------------------------------------------------------------------------------------ the loading

class _Loader:
    def __init__(self) -> None:
        self.result = LoadReport()

    # -- inputs -----------------------------------------------------------------------------------
    def add(self, source: Any) -> None:
        if isinstance(source, K8sObject):
            self._add_object(source)
        elif isinstance(source, dict):
            self._add_doc(Doc(source, None, "<dict>", None))
        elif isinstance(source, Path):
            self._add_path(source)
        elif isinstance(source, str):
            if not source.strip():      # not "." (Path("") is the current folder): say what is wrong
                self._problem("an empty string holds no manifest: give a file or folder path, YAML text, a dict "
                              "or objects", file="<string>")
            elif _looks_like_path(source):
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
            self._add_doc(Doc(d.data, d.node, name, d.line))
        if not found:
            self.result.notes.append(Problem("held no objects (empty, or only comments)", file=name))

    def _add_object(self, obj: K8sObject) -> None:
        """Validated again from its fields, as a fresh copy: objects are mutable, so an edit made
        after loading must meet the same checks as YAML, and an edit made after `apply` must not
        reach into the lab (kubectl sends a copy too)."""
        src = obj.source
        # without the models' empty defaults: `endpoints: []` is not what was written, and
        # a ServiceEntry of resolution NONE may not have it (Istio's CRD rule)
        data = obj.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")
        self._add_doc(Doc(data, None, src.file if src else f"<{obj.kind}>", src.line if src else None))

    # -- one document ---------------------------------------------------------------------------
    def _add_doc(self, doc: Doc) -> None:
        data = doc.data
        if not isinstance(data, dict):
            hint = (" — a list of objects is written as separate documents (---) or as "
                    "`kind: List` with `items:`" if isinstance(data, list) else "")
            self._problem(f"a manifest must be a mapping with apiVersion, kind and metadata; found {describe(data)}"
                          + hint, file=doc.file, line=doc.line)
            return
        try:
            data = _without_nulls(data)
        except _TooDeep:
            self._problem(f"nested too deeply: more than {_yaml.MAX_DEPTH} levels", file=doc.file, line=doc.line)
            return
        api_version, kind = data.get("apiVersion"), data.get("kind")
        where = Where(doc, kind if isinstance(kind, str) else None, data, self.result.problems)
        for key, value in (("apiVersion", api_version), ("kind", kind)):
            if value is None:
                where.problem([key], f"required field {key} is missing", missing=True)
            elif not isinstance(value, str) or not value:
                where.problem([key], f"expected a non-empty string, found {describe(value)}")
        if not (isinstance(api_version, str) and isinstance(kind, str) and api_version and kind):
            return
        if kind.endswith("List") and isinstance(data.get("items"), list) and api_version == "v1":
            self._add_list(doc, data)
            return
        cls = apiserver.model_for(where, api_version, kind)
        if cls is None:
            return
        before = len(self.result.problems)
        apiserver.check_metadata(cls, data, where)
        try:
            obj = cls.model_validate(data, strict=True, by_alias=True, by_name=False)
        except ValidationError as e:
            for path, message, at_key in explain(e, data, cls):
                where.problem(path, message, at_key=at_key, missing=message.startswith("required"))
            return
        if obj.NAMESPACED and not obj.metadata.namespace:   # absent or "": kubectl's default namespace
            obj.metadata.namespace = "default"
        if not obj.NAMESPACED:
            obj.metadata.namespace = None
        where.obj = obj
        apiserver.check_object(obj, data, where)
        stored = len(self.result.problems) == before     # the API server would store it
        webhook.check_object(obj, where)
        if isinstance(obj, Service):   # the API server's defaulting: targetPort 0 means the port itself
            for port in obj.spec.ports:
                if port.target_port == 0:
                    port.target_port = port.port
        obj.with_source(Source(doc.file, doc.line))
        if len(self.result.problems) > before:
            if stored:
                self.result.refused.append((obj, self.result.problems[before:]))
            return
        self.result.objects.append(obj)
        self._note_if_unmodelled(obj)

    def _add_list(self, doc: Doc, data: dict[str, Any]) -> None:
        _, items_node = _yaml.child(doc.node, "items")
        for i, item in enumerate(data["items"]):
            _, node = _yaml.child(items_node, i)
            self._add_doc(Doc(item, node, doc.file, _yaml.line_of(node) or doc.line))

    def _note_if_unmodelled(self, obj: K8sObject) -> None:
        if isinstance(obj, UnmodelledObject):
            src = obj.source
            self.result.notes.append(Problem(
                f"{obj.kind} ({obj.api_version}) is not modelled by meshlab: kept as is, it has no effect on "
                f"the local lab", file=src.file if src else None, line=src.line if src else None, object=obj.ref))

    def check_duplicates(self) -> None:
        """The same object given again: the later definition replaces the earlier, as `kubectl
        apply -f folder/` applies file after file (and the documents of a file in order) — a
        warning naming both places, not an error: kubectl does not refuse it. The same object is
        the same API group, kind, namespace and name (an Istio Gateway and a Gateway API Gateway
        of one name are two objects)."""
        last: dict[ObjectKey, int] = {}
        objects = self.result.objects
        for i, obj in enumerate(objects):
            last[obj.key] = i
        kept = []
        for i, obj in enumerate(objects):
            j = last[obj.key]
            if j == i:
                kept.append(obj)
                continue
            later = objects[j]
            src = obj.source
            version = (f" as {later.api_version} (another version of the same API group: the same object)"
                       if later.api_version != obj.api_version else "")
            self.result.warnings.append(Problem(
                f"given again at {later.source or 'a later object'}{version}: that later definition is the one applied "
                f"(kubectl apply -f applies files in order, so the last one wins)",
                file=src.file if src else None, line=src.line if src else None, object=obj.ref))
        self.result.objects = kept

    def _problem(self, message: str, **kw: Any) -> None:
        self.result.problems.append(Problem(message, **kw))


_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\[\"?([^\]\"]+)\"?\]")


def field_line(source: Source | None, field: str) -> int | None:
    """The line of `field` (`spec.http[0].route[0].weight`, as the API server and meshlab name
    fields; the line of its key) in the document `source` points at, read again from its file; the
    line of the nearest field above it that is there, or the document's own line when the source is
    not a file (None without a source)."""
    if source is None:
        return None
    try:
        text = _yaml.decode(Path(source.file).read_bytes())
        docs = _yaml.parse(text)
    except (OSError, ValueError, _yaml.YamlError):
        return source.line
    node = next((d.node for d in docs if d.line == source.line), None)
    path: list[str | int] = [int(i) if i else (k or key) for k, i, key in _PATH_STEP.findall(field)]
    best = _yaml.line_of(node) if node is not None else None
    for step in path:
        key, node = _yaml.child(node, step)
        if node is None:
            break
        best = _yaml.line_of(key if key is not None else node)    # a field's line is its key's
    return best or source.line


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


__all__ = ["LoadReport", "Loadable", "Manifests", "load", "load_report"]
