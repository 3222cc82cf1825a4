"""YAML that programs wrote (helm output, upstream manifests, chart repository indexes) and YAML
that programs read (`render -o DIR`): parsed by libyaml, built and written without PyYAML's slow
parts.

The real Kyverno chart alone renders about 5.7 MB of YAML. A pure-Python parser spends many seconds
on it; libyaml parses it in a fraction of a second, but PyYAML then composes a node tree and runs a
generic constructor over it, which costs several times the parse. Here libyaml's events are turned
into dicts and lists directly, and writing emits plain data (what JSON can hold) in block style
without PyYAML's representer. User files keep the position-tracking parser (config/loader.py).

The rules are those of the YAML 1.1 parser Kubernetes itself reads manifests with (yes/no/on/off
are booleans, 0755 is octal), except that a timestamp-looking scalar stays a string, as it does
when Kubernetes decodes into untyped JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml import events as ev
from yaml._yaml import CParser
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

YAMLError = yaml.YAMLError

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE: Any = object()  # the key `<<` (plain): merge the value's mapping(s) into this one
# PyYAML's implicit resolvers (by first character), less the timestamp.
_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CONSTRUCTOR = SafeConstructor()
_SCALAR_TYPES: dict[str | None, Callable[[Any, Any], Any]] = {
    tag: fn for tag, fn in SafeConstructor.yaml_constructors.items() if tag not in (_MAP, _SEQ, _TIMESTAMP)
}


def _error(message: str, event: Any) -> YAMLError:
    mark = event.start_mark
    return YAMLError(f"{message} (line {mark.line + 1}, column {mark.column + 1})")


def _resolve(value: str, resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = _RESOLVERS) -> str:
    for tag, regexp in resolvers.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return _STR


def _scalar(event: Any) -> Any:
    tag = event.tag
    if tag is None:
        # Plain scalars repeat (keys, types, small values): each is resolved once.
        return _plain(event.value) if event.implicit[0] else event.value  # quoted: a string
    if tag == _STR or tag == "!":
        return event.value
    return _typed(tag, event.value, event)


@functools.lru_cache(maxsize=1 << 16)
def _plain(value: str) -> Any:
    tag = _resolve(value)
    if tag == _STR:
        return value
    if tag == _MERGE_TAG:
        return _MERGE
    return _typed(tag, value, None)


def _typed(tag: str, value: str, event: Any) -> Any:
    make = _SCALAR_TYPES.get(tag)
    if make is None:
        raise YAMLError(f"cannot construct a scalar tagged {tag!r}") if event is None else _error(
            f"cannot construct a scalar tagged {tag!r}", event
        )
    return make(_CONSTRUCTOR, ScalarNode(tag, value))


class _Mapping:
    """A mapping being built: its dict, the key waiting for its value, merge sources (`<<`)."""

    __slots__ = ("key", "merges", "value", "waiting")

    def __init__(self) -> None:
        self.value: dict[Any, Any] = {}
        self.key: Any = None
        self.waiting = False  # a key was read, its value not yet
        self.merges: list[Any] = []


class _Root:
    """A document being built: its one value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


def load_all(text: str | bytes) -> list[Any]:
    """Every document, empty ones included (as None)."""
    parser = CParser(text)
    docs: list[Any] = []
    stack: list[Any] = []  # the containers being built, innermost last: _Root, _Mapping or list
    anchors: dict[str, Any] = {}
    try:
        while True:
            event: Any = parser.get_event()
            kind = event.__class__
            if kind is ev.ScalarEvent:
                value = _scalar(event)
                if event.anchor:
                    anchors[event.anchor] = value
            elif kind is ev.MappingStartEvent or kind is ev.SequenceStartEvent:
                if event.tag not in (None, "!", _MAP, _SEQ):
                    raise _error(f"cannot construct {event.tag!r}", event)
                node: Any = _Mapping() if kind is ev.MappingStartEvent else []
                if event.anchor:
                    anchors[event.anchor] = node.value if kind is ev.MappingStartEvent else node
                stack.append(node)
                continue
            elif kind is ev.MappingEndEvent:
                done = stack.pop()
                value = done.value
                for source in reversed(done.merges):  # `<<`: explicit keys win, earlier sources first
                    for item in source if isinstance(source, list) else [source]:
                        for k, v in item.items():
                            value.setdefault(k, v)
            elif kind is ev.SequenceEndEvent:
                value = stack.pop()
            elif kind is ev.AliasEvent:
                if event.anchor not in anchors:
                    raise _error(f"unknown alias {event.anchor!r}", event)
                value = anchors[event.anchor]
            elif kind is ev.DocumentStartEvent:
                stack.append(_Root())
                anchors = {}
                continue
            elif kind is ev.DocumentEndEvent:
                docs.append(stack.pop().value)
                continue
            elif kind is ev.StreamEndEvent:
                return docs
            else:  # StreamStartEvent
                continue
            top = stack[-1]
            if top.__class__ is _Mapping:
                if not top.waiting:
                    if value.__class__ in (dict, list):
                        raise _error("a mapping key must be a scalar", event)
                    top.key, top.waiting = value, True
                elif top.key is _MERGE:
                    if not isinstance(value, dict | list):
                        raise _error("`<<` merges a mapping or a list of mappings", event)
                    top.merges.append(value)
                    top.waiting = False
                elif value is _MERGE:
                    raise _error("`<<` is only a key", event)
                else:
                    top.value[top.key] = value
                    top.waiting = False
            elif value is _MERGE:
                raise _error("`<<` is only a key", event)
            elif top.__class__ is list:
                top.append(value)
            else:
                top.value = value
    finally:
        parser.dispose()


def load(text: str | bytes) -> Any:
    """One document (None for an empty one)."""
    docs = load_all(text)
    if len(docs) > 1:
        raise YAMLError("expected a single document, found several")
    return docs[0] if docs else None


# --- writing -----------------------------------------------------------------------------------

# A string that may stay unquoted: no indicator first, no `: ` or ` #`, printable ASCII.
_PLAIN = re.compile(
    r"(?:[A-Za-z0-9_/.(]|-(?=[^ ]))[A-Za-z0-9_/.()+=@$%^~,;<>:-]*(?: [A-Za-z0-9_/.()+=@$%^~,;<>:-]+)*"
)
_PRINTABLE = re.compile(r"[\t\n\x20-\x7e]*")


@functools.lru_cache(maxsize=1 << 16)
def _may_be_plain(s: str) -> bool:
    return bool(
        _PLAIN.fullmatch(s)
        and not s.endswith(":")
        and ": " not in s
        and not s.startswith(("---", "..."))
        # Quoted when any YAML 1.1 reader would take it for something else, a timestamp included.
        and _resolve(s, yaml.SafeLoader.yaml_implicit_resolvers) == _STR
    )


def _string(s: str, indent: str, *, key: bool = False) -> str:
    if _may_be_plain(s):
        return s
    if not key and "\n" in s and _PRINTABLE.fullmatch(s) and not s.startswith((" ", "\n")):
        # A literal block: clipped (one final newline) or stripped (none); more is quoted.
        body = s.removesuffix("\n")
        lines = body.split("\n")
        if not body.endswith("\n") and all(not line.endswith((" ", "\t")) for line in lines):
            return ("|" if s.endswith("\n") else "|-") + "".join(
                f"\n{indent}  {line}" if line else "\n" for line in lines
            )
    if s.isascii() and "\x7f" not in s:
        return json.dumps(s)  # JSON's escapes are YAML's double-quoted ones
    quoted: str = yaml.dump(s, Dumper=yaml.CSafeDumper, default_style='"', allow_unicode=True, width=1 << 16)
    return quoted.removesuffix("\n...\n").strip()


def _scalar_text(value: Any, indent: str, *, key: bool = False) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 floats have a dot: 1e+20 would read back as a string.
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, str):
        return _string(value, indent, key=key)
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


def _block(value: Any, indent: str, out: list[str]) -> None:
    """`value` (a non-empty dict or list) in block style, each line starting with `indent`."""
    if isinstance(value, dict):
        for k, v in value.items():
            key = _scalar_text(k, indent, key=True)
            if isinstance(v, dict | list) and v:
                out.append(f"{indent}{key}:\n")
                # Sequences under a key sit at the key's indentation, as kubectl writes them.
                _block(v, indent if isinstance(v, list) else indent + "  ", out)
            else:
                out.append(f"{indent}{key}: {_leaf(v, indent)}\n")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first = len(out)
                _block(item, indent + "  ", out)
                out[first] = f"{indent}- {out[first][len(indent) + 2 :]}"
            elif isinstance(item, list) and item:
                out.append(f"{indent}-\n")
                _block(item, indent + "  ", out)
            else:
                out.append(f"{indent}- {_leaf(item, indent)}\n")


def _leaf(value: Any, indent: str) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar_text(value, indent)


def dump(doc: Any) -> str:
    """Plain data (dicts, lists, strings, numbers, booleans, None) as block-style YAML, keys in their
    order; multi-line strings as literal blocks."""
    if isinstance(doc, dict | list) and doc:
        out: list[str] = []
        _block(doc, "", out)
        return "".join(out)
    return _leaf(doc, "") + "\n"
