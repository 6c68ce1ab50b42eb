"""Mutants of valid manifests, for differential tests of meshlab's loader against a CRD's judge.

`mutants(spec, schema)` walks a valid object's spec alongside its CRD schema and yields one
mutation per field and kind of damage (wrong type, out of range, empty, unknown field, deleted,
added); `modelled(cls, path)` says whether meshlab's typed model covers a path (subtrees kept as
plain dicts are not compared). Used by test_validation_vs_crd.py (Istio's CRDs) and
test_validation_vs_gateway_crd.py (the Gateway API's CRDs); the judge of both is the API server's
own validation (`_oracle.crd_validate`).
"""

from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from pydantic import BaseModel

from meshlab.errors import ManifestError
from meshlab.manifests import load
from meshlab.objects import MODELLED

Path_ = tuple[Any, ...]


def reason_for(table: Iterable[tuple[str, str, str, str]], kind: str, field: str, mutation: str) -> str | None:
    """The reason a table of (kind, field regex, mutation or "*", reason) gives for a mutant, if any."""
    for k, pattern, m, reason in table:
        if k == kind and re.search(pattern, field) and m in ("*", mutation):
            return reason
    return None


def meshlab_accepts(doc: dict[str, Any]) -> tuple[bool, str]:
    """meshlab's verdict on a document: (True, "") or (False, the loader's message)."""
    try:
        load(doc)
    except ManifestError as e:
        return False, str(e)
    return True, ""


def _inner(annotation: Any) -> tuple[str, Any]:
    """('model', cls) | ('list', inner) | ('map', inner) | ('any', None) | ('scalar', None)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [_inner(a) for a in args if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else ("scalar", None)
    if origin is typing.Annotated:
        return _inner(args[0])
    if origin is list:
        return ("list", args[0])
    if origin is dict:
        return ("map", args[1])
    if annotation is Any:
        return ("any", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    return ("scalar", None)


def modelled(cls: type[BaseModel], path: Path_) -> bool:
    """Is every step of `path` (under the object's root) a typed field, not a kept-as-is dict?"""
    current: Any = cls
    for step in path:
        kind, arg = _inner(current) if not (isinstance(current, type) and issubclass(current, BaseModel)) \
            else ("model", current)
        if kind == "model":
            fields = {(f.alias or n): f for n, f in arg.model_fields.items()}
            if step not in fields:
                return arg.model_config.get("extra") == "forbid"   # an unknown key under a typed struct
            current = fields[step].annotation
        elif kind in ("list", "map"):
            current = arg
        else:
            return False   # a step below a scalar or an untyped value
    kind, arg = _inner(current) if not (isinstance(current, type) and issubclass(current, BaseModel)) \
        else ("model", 0)
    return kind != "any" and not (kind in ("list", "map") and arg is Any)


# ---------------------------------------------------------------------------------- the mutations

def fmt(path: Path_) -> str:
    out = ""
    for s in path:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else str(s))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for s in path:
        doc = doc[s]
    return doc


def mutants(spec: Any, schema: dict[str, Any]) -> Iterator[tuple[Path_, str, Callable[[Any], None]]]:
    """(path under spec, mutation kind, function that mutates a copy of spec in place)."""

    def setter(path: Path_, value: Any) -> Callable[[Any], None]:
        def f(root: Any) -> None:
            _get(root, path[:-1])[path[-1]] = copy.deepcopy(value)
        return f

    def deleter(path: Path_) -> Callable[[Any], None]:
        def f(root: Any) -> None:
            del _get(root, path[:-1])[path[-1]]
        return f

    def walk(value: Any, sch: dict[str, Any], path: Path_) -> Iterator[tuple[Path_, str, Callable[[Any], None]]]:
        if isinstance(value, dict):
            yield path + ("zzUnknownField",), "unknown", setter(path + ("zzUnknownField",), "x")
            props = sch.get("properties", {})
            for k, sub in props.items():
                if k not in value:
                    yield path + (k,), "add", setter(path + (k,), sample(sub))
            for k, v in value.items():
                yield path + (k,), "delete", deleter(path + (k,))
                sub = props.get(k) or (sch.get("additionalProperties") if isinstance(sch.get("additionalProperties"), dict) else {})
                yield from walk(v, sub, path + (k,))
        elif isinstance(value, list):
            yield path, "scalar-for-list", setter(path, "x")
            yield path, "empty-list", setter(path, [])
            for i, v in enumerate(value):
                yield from walk(v, sch.get("items", {}), path + (i,))
        if path and not isinstance(value, (dict, list)):
            for label, new in (("string", "x"), ("empty", ""), ("int", 7), ("negative", -1), ("zero", 0),
                               ("huge", 4294967296), ("float", 1.5), ("bool", True), ("list", ["x"]),
                               ("map", {"a": "b"}), ("enum", "NOT_A_VALUE")):
                if new != value:
                    yield path, label, setter(path, new)
        elif path and isinstance(value, dict):
            yield path, "string-for-map", setter(path, "x")

    yield from walk(spec, schema, ())


def sample(schema: dict[str, Any]) -> Any:
    """A value of the schema's type that is as plain as possible (to probe oneOf and new fields)."""
    if "enum" in schema:
        return schema["enum"][-1]
    t = schema.get("type")
    if t == "string":
        return "1s" if schema.get("x-kubernetes-validations") else "a"
    if t == "integer":
        return 1
    if t == "number":
        return 1.0
    if t == "boolean":
        return True
    if t == "array":
        return []
    return {}


@dataclass(frozen=True)
class Mutant:
    """One mutated copy of a base document (`source` names where the base came from)."""

    source: str
    kind: str
    version: str
    field: str              # "spec.http[0].route[1].weight"
    mutation: str           # "huge", "unknown", ...
    doc: dict[str, Any]

    @property
    def generic(self) -> str:
        """The field with its list indexes left out: "spec.http[].route[].weight"."""
        return re.sub(r"\[\d+\]", "[]", self.field)


def mutant_docs(base: Iterable[tuple[str, dict[str, Any]]],
                schema_of: Callable[[str, str], dict[str, Any]]) -> list[Mutant]:
    """The mutants of the base documents (source, document) on the fields meshlab models, one per
    kind, version, generic field and mutation; `schema_of(kind, version)` is the spec's schema."""
    out: list[Mutant] = []
    seen: set[tuple[str, str, str, str]] = set()
    for source, doc in base:
        kind, version = doc["kind"], doc["apiVersion"].rsplit("/", 1)[1]
        cls = MODELLED[(doc["apiVersion"], kind)]
        for path, mutation, mutate in mutants(doc["spec"], schema_of(kind, version)):
            field = fmt(("spec",) + path)
            key = (kind, version, re.sub(r"\[\d+\]", "[]", field), mutation)
            if key in seen or not modelled(cls, ("spec",) + path):
                continue
            seen.add(key)
            mutant = copy.deepcopy(doc)
            mutate(mutant["spec"])
            out.append(Mutant(source, kind, version, field, mutation, mutant))
    return out
