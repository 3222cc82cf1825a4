"""Line/column lookup in a ruamel.yaml round-trip tree, by field path."""

from __future__ import annotations

from typing import Any

from kvinstall.config.problems import Loc


def position(tree: Any, loc: Loc) -> tuple[int, int] | None:
    """1-based (line, column) of the deepest node of `loc` that exists in `tree`.

    A key that is missing points at its parent mapping, which is where it should be added.
    """
    node = tree
    best: tuple[int, int] | None = _own_position(tree)
    for part in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node:
            if lc is not None:
                try:
                    line, col = lc.key(part)
                    best = (line + 1, col + 1)
                except (KeyError, TypeError):
                    pass
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            if lc is not None:
                try:
                    line, col = lc.item(part)
                    best = (line + 1, col + 1)
                except (KeyError, TypeError, IndexError):
                    pass
            node = node[part]
        else:
            break
    return best


def value_position(tree: Any, loc: Loc) -> tuple[int, int] | None:
    """Position of the VALUE at loc when it is a scalar (wrong types point at the value itself)."""
    if not loc:
        return position(tree, loc)
    parent = walk(tree, loc[:-1])
    last = loc[-1]
    lc = getattr(parent, "lc", None)
    if lc is not None and isinstance(parent, dict) and last in parent:
        try:
            line, col = lc.value(last)
            return (line + 1, col + 1)
        except (KeyError, TypeError):
            pass
    return position(tree, loc)


def walk(tree: Any, loc: Loc) -> Any:
    node = tree
    for part in loc:
        # Two branches, not one `or`: mypy narrows `part` to int only in the list branch.
        if isinstance(node, dict) and part in node:  # noqa: SIM114
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _own_position(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return (lc.line + 1, lc.col + 1)
