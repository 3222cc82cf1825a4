"""Changing one section of a configuration file in place, keeping its comments and order
(ruamel round-trip); the result is validated before it replaces the file."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvinstall.config.loader import load_text, parse_yaml
from kvinstall.errors import ConfigError, LocalIOError
from kvinstall.fsutil import write_atomic


def _merge(node: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if value is None:
            node.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(node.get(key), dict):
            _merge(node[key], value)
        else:
            node[key] = dict(value) if isinstance(value, Mapping) else value


def set_offline(path: Path, values: Mapping[str, Any]) -> None:
    """Merge `values` into the file's `offline` section (a None value removes that key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalIOError(f"cannot read the configuration: {exc.strerror or exc}", where=str(path)) from exc
    tree = parse_yaml(text, str(path))
    if not isinstance(tree, dict):
        raise ConfigError([], message=f"{path}: expected a mapping at the top")
    if not isinstance(tree.get("offline"), dict):
        tree["offline"] = {}
    _merge(tree["offline"], values)
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 120
    buf = io.StringIO()
    yaml.dump(tree, buf)
    new = buf.getvalue()
    load_text(new, source=str(path))  # a ConfigError here leaves the file as it was
    write_atomic(path, new)
