"""Re-hash every blob of a bundle and check that everything the lock names is there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kvinstall.errors import KvError
from kvinstall.mirror.bundle import BundleReader, blob_name
from kvinstall.mirror.copy import manifest_children
from kvinstall.mirror.model import BundleProblem, LockEntry

_BLOCK = 1 << 20


def _hash_member(reader: BundleReader, name: str) -> str:
    h = hashlib.sha256()
    remaining = reader.size(name)
    with reader.open(name) as fh:
        while remaining > 0:
            block = fh.read(min(_BLOCK, remaining))
            if not block:
                break
            remaining -= len(block)
            h.update(block)
    return "sha256:" + h.hexdigest()


def verify_bundle(path: Path) -> list[BundleProblem]:
    """Every problem found (empty when the bundle is sound); each names the blob and its images."""
    try:
        reader = BundleReader(Path(path))
        entries = reader.entries()
    except KvError as exc:
        return [BundleProblem(None, [], exc.message)]
    bad: dict[str, str] = {}
    for name in reader.names():
        if not name.startswith("blobs/sha256/"):
            continue
        digest = "sha256:" + name.rsplit("/", 1)[1]
        actual = _hash_member(reader, name)
        if actual != digest:
            bad[digest] = f"corrupt: content hashes to {actual}"
    users: dict[str, list[str]] = {}
    missing: dict[str, str] = {}

    def walk(digest: str, media_type: str, entry: LockEntry, size: int | None) -> None:
        refs = users.setdefault(digest, [])
        if entry.reference not in refs:
            refs.append(entry.reference)
        name = blob_name(digest)
        if not reader.has(name):
            missing[digest] = "missing from the bundle"
            return
        if size is not None and reader.size(name) != size:
            bad.setdefault(digest, f"size {reader.size(name)} differs from the descriptor's {size}")
        if digest in bad or media_type == "blob":
            return
        try:
            children, blobs = manifest_children(reader.read(name), media_type)
        except (ValueError, KeyError, TypeError):
            bad[digest] = "unreadable manifest"
            return
        for c in children:
            walk(c["digest"], c.get("mediaType", ""), entry, int(c["size"]))
        for b in blobs:
            walk(b["digest"], "blob", entry, int(b["size"]))

    for e in entries:
        walk(e.digest, e.media_type, e, e.size)
    index = json.loads(reader.read("index.json"))
    listed = {m.get("digest") for m in index.get("manifests", [])}
    problems = [
        BundleProblem(e.digest, [e.reference], "locked but not listed in index.json")
        for e in entries
        if e.digest not in listed
    ]
    for digest, message in sorted(bad.items()) + sorted(missing.items()):
        problems.append(BundleProblem(digest, users.get(digest, []), message))
    if not problems:
        from kvinstall.mirror.aptrepo import read_packages

        problems += read_packages(reader)[1]  # host packages: lock, artifacts and indexes agree
    return problems
