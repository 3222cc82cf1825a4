"""`kvinstall convert`: a KubeV file -> the equivalent kvinstall file text and what was dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvinstall.catalog import load_catalog
from kvinstall.config import kubev
from kvinstall.config.loader import _place, load_tree, parse_yaml
from kvinstall.config.problems import Problem
from kvinstall.config.writer import to_yaml
from kvinstall.errors import ConfigError, LocalIOError

# Where an inline KubeV secret goes instead: kvinstall files never hold clear-text secrets.
_SECRET_ENV = {("offline", "credentials", "password"): "KVINSTALL_REGISTRY_PASSWORD"}


def convert_file(path: Path) -> tuple[str, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalIOError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    tree = parse_yaml(text, str(path))
    if not kubev.is_kubev(tree):
        raise ConfigError(
            [
                Problem(
                    f"not a KubeV file ({kubev.API_VERSION} {kubev.KIND})",
                    loc=("apiVersion",),
                    file=str(path),
                    line=1,
                    column=1,
                )
            ]
        )
    result = kubev.convert(tree)
    dropped = [_place(p, tree, str(path), {}) for p in result.problems]
    data: dict[str, Any] = result.data
    notes = []
    for loc, env in _SECRET_ENV.items():
        node: Any = data
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(loc[-1]), str):
            node[loc[-1]] = {"valueFrom": {"env": env}}
            notes.append(
                f"{'.'.join(loc)} now reads environment variable {env} (the clear value was not copied)"
            )
    loaded = load_tree(data, source=str(path), catalog=load_catalog())
    header = f"Converted by `kvinstall convert` from {path.name}."
    if notes:
        header += "\n" + "\n".join(notes)
    return to_yaml(loaded.config, header=header), dropped
