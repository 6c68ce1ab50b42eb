"""YAML → typed objects. (Minimal first version; the foundation work hardens validation.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .errors import ManifestError, Problem
from .objects import MODELLED, K8sObject, Source, UnmodelledObject

Loadable = str | Path | dict[str, Any] | K8sObject | Iterable["Loadable"]


def load(source: Loadable) -> list[K8sObject]:
    """Load manifests from files, folders, YAML strings, dicts or objects; raise ManifestError."""
    objects: list[K8sObject] = []
    problems: list[Problem] = []
    for doc, src in _documents(source):
        if isinstance(doc, K8sObject):
            objects.append(doc)
            continue
        cls = MODELLED.get((doc.get("apiVersion"), doc.get("kind")), UnmodelledObject)
        try:
            obj = cls.model_validate(doc).with_source(src)
        except ValidationError as e:
            for err in e.errors():
                problems.append(Problem(err["msg"], file=src.file, line=src.line, object=str(doc.get("kind")),
                                        field=".".join(str(x) for x in err["loc"])))
            continue
        if obj.NAMESPACED and obj.metadata.namespace is None:
            obj.metadata.namespace = "default"
        objects.append(obj)
    if problems:
        raise ManifestError(problems)
    return objects


def _documents(source: Loadable):
    if isinstance(source, K8sObject):
        yield source, source.source
    elif isinstance(source, dict):
        yield source, Source("<dict>")
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).exists()):
        path = Path(source)
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
        for f in files:
            for d in yaml.safe_load_all(f.read_text()):
                if d:
                    yield d, Source(str(f))
    elif isinstance(source, str):
        for d in yaml.safe_load_all(source):
            if d:
                yield d, Source("<string>")
    else:
        for item in source:
            yield from _documents(item)
