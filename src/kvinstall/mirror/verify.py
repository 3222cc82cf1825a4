"""Re-hash every blob of a bundle and check that everything the lock names is there."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kvinstall.errors import IntegrityError, KvError
from kvinstall.mirror.bundle import BundleReader, blob_name
from kvinstall.mirror.descriptor import (
    MAX_NESTING,
    Descriptor,
    descriptor,
    is_digest,
    load_json_object,
    manifest_children,
)
from kvinstall.mirror.model import BundleProblem

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
    """Every problem found (empty when the bundle is sound); each names the blob and its images.

    The lock, index.json and manifests are untrusted: a malformed one is a problem naming the
    field; the walk from each locked manifest is iterative, visits a digest once and stops at
    MAX_NESTING levels (descriptor.py)."""
    try:
        reader = BundleReader(Path(path))
        entries = reader.entries()
        listed = _index_digests(reader)
    except KvError as exc:
        return [BundleProblem(None, [], exc.message)]
    bad: dict[str, str] = {}
    for name in reader.names():
        if not name.startswith("blobs/sha256/"):
            continue
        digest = "sha256:" + name.rsplit("/", 1)[1]
        if not is_digest(digest):
            bad[digest[:80]] = "a member whose name is not a sha256 digest"
            continue
        actual = _hash_member(reader, name)
        if actual != digest:
            bad[digest] = f"corrupt: content hashes to {actual}"
    users: dict[str, list[str]] = {}
    missing: dict[str, str] = {}
    problems: list[BundleProblem] = []

    for e in entries:
        # (descriptor, is a blob, depth); each digest once per entry
        stack: list[tuple[Descriptor, bool, int]] = [(Descriptor(e.digest, e.size, e.media_type), False, 1)]
        seen: set[str] = set()
        while stack:
            desc, is_blob, depth = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            refs = users.setdefault(desc.digest, [])
            if e.reference not in refs:
                refs.append(e.reference)
            name = blob_name(desc.digest)
            if not reader.has(name):
                missing[desc.digest] = "missing from the bundle"
                continue
            if reader.size(name) != desc.size:
                bad.setdefault(
                    desc.digest, f"size {reader.size(name)} differs from the descriptor's {desc.size}"
                )
            if desc.digest in bad or is_blob:
                continue
            if depth > MAX_NESTING:
                bad[desc.digest] = f"manifests nested more than {MAX_NESTING} levels deep"
                continue
            try:
                children, blobs = manifest_children(reader.read(name), desc.media_type, what="manifest")
            except IntegrityError as exc:
                bad[desc.digest] = exc.message
                continue
            stack += [(b, True, depth + 1) for b in blobs if b.digest not in seen]
            stack += [(c, False, depth + 1) for c in children if c.digest not in seen]
    problems += [
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


def _index_digests(reader: BundleReader) -> set[str]:
    index = load_json_object(reader.read("index.json"), "index.json", str(reader.path))
    manifests = index.get("manifests") or []
    if not isinstance(manifests, list):
        raise IntegrityError("index.json manifests: expected a list", where=str(reader.path))
    return {
        descriptor(m, f"index.json manifests[{i}]", str(reader.path)).digest for i, m in enumerate(manifests)
    }
