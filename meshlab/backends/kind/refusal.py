"""What the API server's refusals become for the learner: the same errors the local backend gives.

Why a module of its own: the API server answers a bad object in several shapes, and a learner
should not have to read any of them. A field the schema, a CEL rule or built-in validation refuses
comes back as `422 Invalid` with one cause per field (and, when the schema failed, an extra cause
with no field saying the CEL rules were skipped); a value of the wrong type in a server-side apply
fails before validation, in the conversion to a typed patch (structured-merge-diff), as
`500 … failed to create typed patch object (…): .spec.x: expected numeric, got string`
(kubernetes/kubernetes#139253: to become 400); strict field validation refuses an unknown field
with `400 … strict decoding error: unknown field "spec.x"`. All three become a `ManifestError`
whose problems name the file, the line of the field, the object and the field — what
`meshlab.load` says for a problem it finds itself. Anything else the cluster refuses (RBAC, a
namespace that is missing or being deleted, an immutable field's conflict, a taken ClusterIP) is an
`ApplyError` naming the object, its file, the API server's own sentence, and what to do.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import ApplyError, KubeError, ManifestError, MeshlabError, Problem

if TYPE_CHECKING:
    from ...objects import K8sObject

#: `failed to create typed patch object (alice/reviews; networking.istio.io/v1, Kind=VirtualService):
#: .spec.http[0].route[0].weight: expected numeric, got &value.valueUnstructured{Value:"50"}`
_TYPED_PATCH = re.compile(r"failed to create typed patch object \([^)]*\): \.?(?P<field>[^:\s]+): (?P<message>.+)$", re.S)
#: `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`
_STRICT = re.compile(r'unknown field "(?P<field>[^"]+)"')
#: Field refusals that are about the live object, not the manifest: an immutable field changed, an
#: address or port another object holds (pkg/registry/core/service/ipallocator, portallocator).
_CONFLICT = re.compile(r"field is immutable|already allocated")
#: structured-merge-diff's Go renderings of the offending value: `&value.valueUnstructured{Value:"50"}`, `&{x}`
_GO_VALUE = re.compile(r"&(?:value\.\w+)?\{(?:Value:)?(?P<value>.*)\}$")


def refusal(e: KubeError, obj: K8sObject | None, manifest: dict[str, Any]) -> MeshlabError:
    """The learner-facing error for the API server's refusal `e` of `manifest` (made from `obj`)."""
    problems = field_problems(e, obj, manifest)
    if problems and not _CONFLICT.search(e.message):
        return ManifestError(problems)
    if problems:   # the object is fine on its own but clashes with what the cluster has
        return ApplyError("; ".join(str(p) for p in problems) + _hint(e))
    what = _object_name(obj, manifest)
    src = obj.source if obj is not None else None
    where = f" ({src})" if src else ""
    return ApplyError(f"{what}{where}: {e.message}{_hint(e)}")


def field_problems(e: KubeError, obj: K8sObject | None, manifest: dict[str, Any]) -> list[Problem]:
    """One Problem per field the API server names in `e` (none when it names no field)."""
    found: list[tuple[str, str]] = []        # (field, message)
    m = _TYPED_PATCH.search(e.message)
    if m:
        message = m.group("message").strip()
        if message == "field not declared in schema":     # strict field validation, in the typed patch
            message = f'unknown field "{m.group("field").rsplit(".", 1)[-1]}" (not in the schema)'
        v = re.search(r", got (?P<got>.+)$", message)
        if v:
            g = _GO_VALUE.match(v.group("got"))
            message = message[:v.start()] + f", found {g.group('value') if g else v.group('got')}"
        found.append((m.group("field"), message))
    elif e.status == 400 and "strict decoding error" in e.message:
        found += [(f.group("field"), "unknown field (the API server's strict field validation)")
                  for f in _STRICT.finditer(e.message)]
    elif e.status == 422:
        for cause in e.causes:
            field, message = cause.get("field") or "", cause.get("message") or ""
            if not field or field == "<nil>":
                continue   # "some validation rules were not checked because the object was invalid"
            found.append((field, _without_field(message, field)))
    if not found:
        return []
    from ...manifests import field_line

    src = obj.source if obj is not None else None
    what = _object_name(obj, manifest)
    return [Problem(f"{message} (refused by the API server)", file=src.file if src else None,
                    line=field_line(src, field), object=what, field=field)
            for field, message in found]


def _without_field(message: str, field: str) -> str:
    """The cause's message without the field it repeats (`spec.x: Invalid value: …`)."""
    for prefix in (f"{field}: ", f"{field} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message.replace(f"{field} in body ", "", 1)


def _object_name(obj: K8sObject | None, manifest: dict[str, Any]) -> str:
    """`VirtualService default/reviews`: the object as the learner wrote it (`K8sObject.ref`)."""
    if obj is not None:
        return obj.ref
    md = manifest.get("metadata") or {}
    ns = f"{md['namespace']}/" if md.get("namespace") else ""
    return f"{manifest.get('kind')} {ns}{md.get('name')}"


def _hint(e: KubeError) -> str:
    """What to do, for the refusals a learner meets."""
    if e.status == 403 and " cannot " in e.message and "User " in e.message:
        return ("; the user of this kube context lacks that permission (RBAC): on a workshop cluster, ask the "
                "organiser to apply `meshlab workshop-rbac` for your namespace")
    if e.status == 403 and "being terminated" in e.message:
        return "; wait until the namespace is gone, then create it again"
    if e.status == 422 and "field is immutable" in e.message:
        return "; delete the object first (lab.delete(...)), then apply it again"
    return ""


__all__ = ["refusal", "field_problems"]
