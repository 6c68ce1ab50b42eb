"""What a learner reads when a manifest is wrong: where (file, line, object, field) and a sentence.

`Where` turns a field path into the line it sits on and the object it belongs to; `explain`
turns pydantic's validation errors into sentences in the API server's terms (`expected an
integer, found the string "80"`, `unknown field "contianers" — did you mean "containers"?`,
`… check the indentation`), alternatives of one field merged into one problem.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Problem
from ..objects import K8sObject
from . import _yaml

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")     # fullmatch: `$` would let "a\n" through
#: The most of a learner's own string a message repeats (a 2 MB name is not echoed whole).
CLIP = 80
#: The longest one problem's sentence may be (the parts it quotes are clipped first).
MAX_MESSAGE = 480


def _shown(text: str, limit: int = CLIP) -> str:
    """A user string inside a sentence, unquoted: clipped, control characters escaped."""
    shown = text if len(text) <= limit else text[:limit - 1] + "…"
    if any(ord(c) < 32 or ord(c) == 127 for c in shown):
        shown = shown.encode("unicode_escape").decode("ascii", "replace")
    return shown


def clip(text: str, limit: int = CLIP) -> str:
    """A user string as a message quotes it: whole when short, else its start and its length
    (`"aaaa…" (2097152 characters)`); control characters shown escaped, never raw."""
    return f'"{_shown(text, limit)}"' + (f" ({len(text)} characters)" if len(text) > limit else "")


@dataclass
class Doc:
    """One document being loaded: its data, its YAML node (for line numbers) and where it came from."""

    data: Any
    node: Any            # yaml Node of the document root (None for dicts)
    file: str
    line: int | None


class Where:
    """The document being checked: turns a field path into file, line and object name, and
    records each problem found in it."""

    def __init__(self, doc: Doc, kind: str | None, data: dict[str, Any], problems: list[Problem]):
        self.doc = doc
        self.kind = kind
        self.data = data
        self.problems = problems
        self.obj: K8sObject | None = None

    def object_name(self) -> str | None:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        kind = _shown(self.kind) if self.kind else "object"
        if not isinstance(name, str):
            return f"{kind} (unnamed)"
        name = _shown(name)
        ns = _shown(ns) if isinstance(ns, str) else ns
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

    def problem(self, path: list[str | int], message: str, at_key: bool = False, *, missing: bool = False) -> None:
        """A problem at the field `path` (`at_key`: the line of the key rather than its value)."""
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 1] + "…"
        self.problems.append(Problem(message, file=self.doc.file,
                                     line=self.line(path, at_key, missing) or self.doc.line,
                                     object=self.object_name(), field=format_path(path) or None))


def format_path(path: list[str | int]) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _SIMPLE_KEY.fullmatch(step):
            out += f".{step}" if out else step
        else:
            out += f"[{clip(step, 40)}]"
    return out


def describe(value: Any) -> str:
    """How a found value reads in a sentence: `the string "80"`, `the number 80`, `a list`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {clip(value, 40)}"
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


def or_(items: list[str]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def explain(e: ValidationError, data: dict[str, Any], cls: type[BaseModel]) -> list[tuple[list[str | int], str, bool]]:
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
        return unknown_field_message(str(name), known) + _misplaced_hint(cls, path)
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
        msg = f"expected {or_(wanted)}, found {describe(found)}"
        if at_key:
            msg = f"keys must be strings, found {describe(err.get('input'))}"
        elif "a string" in wanted and isinstance(found, (int, float, bool)) and len(path) >= 2 \
                and path[-2] in ("labels", "annotations", "matchLabels", "selector"):
            msg += f' — quote it: "{str(found).lower() if isinstance(found, bool) else found}"'
        return msg
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[etype]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}, found {describe(found)}"
    if etype == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} {'item' if n == 1 else 'items'}, found {ctx.get('actual_length', 0)}"
    if etype == "string_too_short":
        return "must not be empty"
    if etype in ("string_too_long", "too_long"):
        return f"too long: at most {ctx.get('max_length')} {'characters' if etype == 'string_too_long' else 'items'}"
    if etype == "string_pattern_mismatch":
        return f"{describe(found)} does not have the expected form ({ctx.get('pattern')})"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def unknown_field_message(name: str, known: list[str]) -> str:
    msg = f"unknown field {clip(name, 60)}"
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
        return f" — {name} belongs one level up, beside {format_path(container)}: check the indentation"
    return ""


def _is_list(annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in args)
    return origin is list
