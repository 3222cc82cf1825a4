"""YAML that programs wrote (helm output, upstream manifests, chart repository indexes) and YAML
that programs read (`render -o DIR`), parsed and written by libyaml through PyYAML's C classes.

The real Kyverno chart alone renders about 5.7 MB of YAML: a pure-Python parser spends seconds on
it, libyaml a fraction of that. User files keep the position-tracking parser (config/loader.py),
which error messages need; nothing here reports positions beyond libyaml's line and column.

The rules are those of the YAML 1.1 parser Kubernetes itself reads manifests with (yes/no/on/off
are booleans, 0755 is octal), except that a timestamp-looking scalar stays a string, as it does
when Kubernetes decodes into untyped JSON.
"""

from __future__ import annotations

from typing import Any

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.CSafeLoader):
    """libyaml's parser (PyYAML's wheels bundle it), without the timestamp type."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}

YAMLError = yaml.YAMLError


def load(text: str | bytes) -> Any:
    """One document (None for an empty one)."""
    return yaml.load(text, Loader=_Loader)


def load_all(text: str | bytes) -> list[Any]:
    """Every document, empty ones included (as None)."""
    return list(yaml.load_all(text, Loader=_Loader))


def dump(doc: Any) -> str:
    """Block-style YAML, keys in their given order, long strings on one line."""
    out: str = yaml.dump(
        doc, Dumper=yaml.CSafeDumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 16
    )
    return out
