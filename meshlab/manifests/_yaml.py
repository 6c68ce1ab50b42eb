"""Read YAML text into plain data plus the node tree, with hard limits checked before any Python
objects are built.

Why not `yaml.safe_load_all`: PyYAML's composer recurses (a deeply nested document ends in a
RecursionError, the C composer has no depth limit at all), anchors and aliases are shared, so a
"billion laughs" document is small until something walks it (pydantic does) and then it is not,
and duplicate keys are silently merged where kubectl refuses them. Here the parser's event stream
(libyaml when present, iterative in both implementations) is composed into nodes by a loop that
counts depth, nodes (aliases counted at their expanded size) and documents, and stops at the
first limit crossed. Only then are Python objects constructed, from nodes that are known to be
small and shallow. The nodes are kept: their marks give the line of every field for errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent, DocumentEndEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent,
    ScalarEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: The API server refuses request bodies over 3 MiB; no real manifest file comes near it.
MAX_BYTES = 3 * 1024 * 1024
#: Documents (objects) in one file or string.
MAX_DOCUMENTS = 1000
#: Nesting of mappings and sequences; the deepest real Kubernetes manifests stay under 20.
MAX_DEPTH = 64
#: Nodes per file, aliases counted at their expanded size (a Deployment has ~100).
MAX_NODES = 100_000

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """The text is not YAML meshlab can read; `line`/`column` are 1-based where known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class Document:
    """One YAML document: its data (dicts, lists, scalars), root node, and first line (1-based)."""

    data: Any
    node: Node | None
    line: int | None
    index: int


class _Constructor(yaml.constructor.SafeConstructor):
    """Safe construction as kubectl's YAML→JSON step (sigs.k8s.io/yaml, go-yaml) constructs: timestamps
    kept as strings, and a tag it does not know (`!Ref`, `!!python/…`) ignored — the node is read as
    what it is, a scalar as its text (so `port: !Foo 80` is the string "80"), a sequence as a list,
    a mapping as a mapping. Nothing is ever executed or imported."""

    def construct_untagged(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.construct_scalar(node)
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        return self.construct_mapping(node, deep=True)   # type: ignore[arg-type]


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
_Constructor.add_constructor(None, _Constructor.construct_untagged)


def decode(raw: bytes) -> str:
    """Bytes → text, refusing binary files with a sentence instead of a codec traceback."""
    if b"\x00" in raw[:8192]:
        raise YamlError("this is a binary file, not YAML text (it contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise YamlError(f"this is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start} cannot be decoded); "
                        f"YAML manifests must be UTF-8", line=line) from None


def _size_error(n: int) -> YamlError:
    return YamlError(f"too large: {n} bytes; meshlab reads at most {MAX_BYTES} bytes per file or string "
                     f"(the Kubernetes API server refuses requests over 3 MiB)")


def check_size(n: int) -> None:
    if n > MAX_BYTES:
        raise _size_error(n)


def _mark_error(e: yaml.YAMLError, text: str) -> YamlError:
    """Turn a PyYAML/libyaml error into one sentence with a line and column."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    if isinstance(e, yaml.reader.ReaderError):
        pos = e.position
        line = text.count("\n", 0, pos) + 1
        return YamlError(f"this is not YAML text: it contains the control character 0x{e.character:02x} "
                         f"(a binary file?)" if isinstance(e.character, int) else f"invalid character: {e.reason}",
                         line=line)
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    if mark is not None:
        lines = text.splitlines()
        here = lines[mark.line] if mark.line < len(lines) else ""
        if "\t" in here[: mark.column + 1] or "'\\t'" in problem:
            col = here.index("\t") + 1 if "\t" in here else column
            return YamlError("a tab character is used for indentation; YAML allows only spaces there "
                             "(replace the tab with spaces)", line=line, column=col)
    if "nesting depth" in problem:
        return YamlError(f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists", line=line)
    what = f"{context}, {problem}" if context else problem
    return YamlError(f"invalid YAML: {what}", line=line, column=column)


class _Frame:
    __slots__ = ("node", "items", "size", "anchor")

    def __init__(self, node: Node, anchor: str | None):
        self.node = node
        self.items: list[Node] = []
        self.size = 1
        self.anchor = anchor


def parse(text: str) -> list[Document]:
    """Parse every document in `text`; raise YamlError at the first problem or limit crossed."""
    # every character is at least one byte: count bytes only when the text could be near the cap
    check_size(len(text) if len(text) > MAX_BYTES or len(text) * 4 <= MAX_BYTES
               else len(text.encode("utf-8", "surrogatepass")))
    loader = _Loader(text)
    try:
        return _compose(loader, text)
    except YamlError:
        raise
    except yaml.YAMLError as e:
        raise _mark_error(e, text) from None
    finally:
        loader.dispose()


def _compose(loader: Any, text: str) -> list[Document]:
    """Events → one node tree per document, iteratively; every limit is checked as nodes appear."""
    docs: list[Document] = []
    nodes_total = 0
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Node, int]] = {}
    open_anchors: set[str] = set()
    root: Node | None = None
    get_event, resolve = loader.get_event, loader.resolve
    while True:
        event = get_event()
        etype = type(event)
        size = 1
        if etype is ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(ScalarNode, event.value, event.implicit)
            node: Node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            if event.anchor is not None:
                anchors[event.anchor] = (node, 1)
        elif etype is MappingStartEvent or etype is SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise YamlError(f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists",
                                line=event.start_mark.line + 1)
            tag = event.tag
            kind = MappingNode if etype is MappingStartEvent else SequenceNode
            if tag is None or tag == "!":
                tag = resolve(kind, None, event.implicit)
            node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            stack.append(_Frame(node, event.anchor))
            nodes_total += 1
            if nodes_total > MAX_NODES:
                raise _nodes_error(event)
            continue
        elif etype is MappingEndEvent or etype is SequenceEndEvent:
            frame = stack.pop()
            node = frame.node
            node.end_mark = event.end_mark
            node.value = frame.items if etype is SequenceEndEvent else _pairs(frame.items)
            if frame.anchor is not None:
                open_anchors.discard(frame.anchor)
                anchors[frame.anchor] = (node, frame.size)
            if stack:
                parent = stack[-1]
                parent.items.append(node)
                parent.size += frame.size
            else:
                root = node
            continue  # the container was counted when it opened
        elif etype is AliasEvent:
            if event.anchor in open_anchors:
                raise YamlError(f"the alias *{event.anchor} refers to a node that contains it (a recursive alias)",
                                line=event.start_mark.line + 1)
            if event.anchor not in anchors:
                raise YamlError(f"the alias *{event.anchor} refers to no anchor &{event.anchor} defined before it",
                                line=event.start_mark.line + 1)
            node, size = anchors[event.anchor]
        elif etype is DocumentStartEvent:
            if len(docs) >= MAX_DOCUMENTS:
                raise YamlError(f"too many documents: meshlab reads at most {MAX_DOCUMENTS} per file",
                                line=event.start_mark.line + 1)
            anchors, open_anchors, root = {}, set(), None
            continue
        elif etype is DocumentEndEvent:
            docs.append(_construct(root, len(docs)))
            continue
        elif etype is StreamEndEvent:
            break
        else:  # StreamStartEvent
            continue

        nodes_total += size
        if nodes_total > MAX_NODES:
            raise _nodes_error(event)
        if stack:
            parent = stack[-1]
            parent.items.append(node)
            parent.size += size
        else:
            root = node
    return docs


def _nodes_error(event: Any) -> YamlError:
    return YamlError(f"too many values: more than {MAX_NODES} after expanding aliases "
                     f"(an alias bomb, or a file far larger than any manifest)", line=event.start_mark.line + 1)


def _pairs(items: list[Node]) -> list[tuple[Node, Node]]:
    """Mapping items → (key, value) pairs, refusing duplicate keys as kubectl does."""
    pairs = list(zip(items[0::2], items[1::2]))
    seen: dict[str, Node] = {}
    for key, _ in pairs:
        if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                first = seen[key.value].start_mark.line + 1
                raise YamlError(f'the key "{key.value}" appears twice in one mapping (first on line {first}); '
                                f"kubectl refuses duplicate keys", line=key.start_mark.line + 1)
            seen[key.value] = key
    return pairs


def _construct(root: Node | None, index: int) -> Document:
    if root is None:
        return Document(None, None, None, index)
    constructor = _Constructor()
    try:
        data = constructor.construct_document(root)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or ""
        raise YamlError(f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    except (TypeError, ValueError) as e:  # e.g. an unhashable key, a malformed !!int
        raise YamlError(f"invalid YAML: {e}", line=root.start_mark.line + 1) from None
    return Document(data, root, root.start_mark.line + 1, index)


def child(node: Node | None, key: str | int) -> tuple[Node | None, Node | None]:
    """(key node, value node) of `key` under `node`, or (None, None) when not found."""
    if isinstance(node, MappingNode) and isinstance(key, str):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return k, v
    elif isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return None, node.value[key]
    return None, None


def line_of(node: Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None
