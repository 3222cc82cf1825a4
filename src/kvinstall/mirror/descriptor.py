"""Reading manifests, indexes and lock files that come from outside (a bundle, a registry), checked.

Everything here treats its input as hostile: every field is type-checked and a bad one is an
IntegrityError naming the field (`manifests[2].digest`), digests are `sha256:<64 hex>` before any
path or URL is built from them, documents are size-capped, and walks over nested indexes are
iterative, visit each digest once and stop at MAX_NESTING levels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvinstall.errors import IntegrityError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The distribution registry refuses manifests above 4 MiB; nothing legitimate is larger.
MAX_MANIFEST = 4 << 20
MAX_LOCK = 64 << 20
# index -> manifest is two levels; an index of indexes three. Deeper is a crafted bundle or registry.
MAX_NESTING = 16

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)


@dataclass(frozen=True)
class Descriptor:
    digest: str
    size: int
    media_type: str = ""
    platform: dict[str, Any] | None = None


def is_digest(value: object) -> bool:
    return isinstance(value, str) and DIGEST_RE.match(value) is not None


def check_digest(value: object, field: str, where: str | None) -> str:
    if not is_digest(value):
        raise IntegrityError(
            f"{field}: {_show(value)} is not a sha256 digest (sha256: and 64 lower-case hex digits)",
            where=where,
        )
    return str(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_json_object(data: bytes, what: str, where: str | None, limit: int = MAX_MANIFEST) -> dict[str, Any]:
    if len(data) > limit:
        raise IntegrityError(f"{what} is {len(data)} bytes, more than the {limit} allowed", where=where)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}", where=where) from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object", where=where)
    return doc


def _list(doc: dict[str, Any], key: str, prefix: str, where: str | None) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise IntegrityError(f"{prefix}{key}: expected a list, found {type(value).__name__}", where=where)
    return value


def descriptor(value: object, field: str, where: str | None) -> Descriptor:
    if not isinstance(value, dict):
        raise IntegrityError(f"{field}: expected an object, found {type(value).__name__}", where=where)
    digest = check_digest(value.get("digest"), f"{field}.digest", where)
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise IntegrityError(f"{field}.size: {_show(size)} is not a size in bytes", where=where)
    media_type = value.get("mediaType", "")
    if not isinstance(media_type, str):
        raise IntegrityError(f"{field}.mediaType: expected a string", where=where)
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise IntegrityError(f"{field}.platform: expected an object", where=where)
    return Descriptor(digest, size, media_type, platform)


def manifest_children(
    data: bytes, media_type: str, *, where: str | None = None, what: str = "manifest"
) -> tuple[list[Descriptor], list[Descriptor]]:
    """(child manifest descriptors, blob descriptors) of a manifest or index, every field checked."""
    doc = load_json_object(data, what, where)
    prefix = f"{what} "
    if media_type in INDEX_TYPES or "manifests" in doc:
        items = _list(doc, "manifests", prefix, where)
        return [descriptor(m, f"{prefix}manifests[{i}]", where) for i, m in enumerate(items)], []
    blobs: list[Descriptor] = []
    if doc.get("config") is not None:
        blobs.append(descriptor(doc["config"], f"{prefix}config", where))
    for i, layer in enumerate(_list(doc, "layers", prefix, where)):
        blobs.append(descriptor(layer, f"{prefix}layers[{i}]", where))
    return [], blobs


def walk_manifests(
    root: Descriptor,
    read: Callable[[Descriptor], tuple[bytes, str]],
    *,
    where: str | None,
) -> tuple[list[str], list[Descriptor]]:
    """Every manifest under `root` (children before parents, each once) and every blob (each once).

    `read(descriptor)` gives (bytes, media type); it is called once per distinct manifest.
    Iterative: a deep chain cannot exhaust the stack, an index listing a child twice costs nothing.
    """
    order: list[str] = []
    blobs: dict[str, Descriptor] = {}
    seen: set[str] = set()
    # (descriptor, depth, children pushed yet?)
    stack: list[tuple[Descriptor, int, bool]] = [(root, 1, False)]
    while stack:
        desc, depth, expanded = stack.pop()
        if expanded:
            order.append(desc.digest)
            continue
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        if depth > MAX_NESTING:
            raise IntegrityError(
                f"manifests nested more than {MAX_NESTING} levels deep (at {desc.digest})", where=where
            )
        data, media_type = read(desc)
        children, bl = manifest_children(data, media_type, where=where, what=f"manifest {desc.digest}")
        for b in bl:
            blobs.setdefault(b.digest, b)
        stack.append((desc, depth, True))
        for child in reversed(children):
            if child.digest not in seen:
                stack.append((child, depth + 1, False))
    return order, list(blobs.values())
