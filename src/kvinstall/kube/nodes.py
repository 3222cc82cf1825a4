"""Node labels and annotations from the config (pure): what to change on a live Node.

KubeOne applies them when it runs; kvinstall keeps them true on every run, also when KubeOne is
skipped. A key ending in '-' removes that key (kubectl label/annotate semantics, as KubeOne and
Kubermatic Virtualization files use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def metadata_changes(want: Mapping[str, str], have: Mapping[str, str]) -> dict[str, str | None]:
    """A JSON merge patch of one metadata map: keys to set, and `None` for keys to remove."""
    out: dict[str, str | None] = {}
    for key, value in want.items():
        if key.endswith("-"):
            if key[:-1] in have:
                out[key[:-1]] = None
        elif have.get(key) != value:
            out[key] = value
    return out


def node_patch(
    labels: Mapping[str, str], annotations: Mapping[str, str], node: Mapping[str, Any]
) -> dict[str, Any]:
    """The merge patch that makes `node` carry `labels` and `annotations`; {} when it already does."""
    meta = node.get("metadata") or {}
    patch: dict[str, Any] = {}
    changed = metadata_changes(labels, meta.get("labels") or {})
    if changed:
        patch["labels"] = changed
    changed = metadata_changes(annotations, meta.get("annotations") or {})
    if changed:
        patch["annotations"] = changed
    return {"metadata": patch} if patch else {}
