"""The host packages of a bundle: checked against the lock, and written out as signed apt
repositories (one per OS release) for `mirror serve`.

Layout under the served root, per OS release (e.g. debian-12/):
    dists/kvinstall/InRelease, Release, Release.gpg
    dists/kvinstall/main/binary-<arch>/Packages, Packages.gz
    pool/main/<name>/<file>.deb
A host's sources line: `deb [signed-by=KEY] https://SERVER/debian-12 kvinstall main`.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvinstall.errors import IntegrityError, KvError
from kvinstall.fsutil import write_atomic
from kvinstall.mirror.bundle import BundleReader, blob_name
from kvinstall.mirror.debian import release_file
from kvinstall.mirror.descriptor import descriptor, load_json_object
from kvinstall.mirror.gpg import SigningKey
from kvinstall.mirror.model import BundleProblem, LockEntry
from kvinstall.mirror.packages import (
    COMPONENT,
    INDEX_TAG,
    MAX_INDEX,
    SUITE,
    PackageSet,
    index_packages,
    index_repository,
    package_repository,
    package_sets,
    package_tag,
    pool_path,
)

KEY_FILE = "kvinstall-archive-keyring.gpg"  # the public key, also served at the root
MARKER = "kvinstall-repository.json"  # what the root holds (OS release -> packages): also the ready check
_BLOCK = 1 << 20


@dataclass(frozen=True)
class BundlePackages:
    sets: list[PackageSet]
    indexes: dict[str, bytes]  # OS release -> its Packages index
    layers: dict[str, str]  # "<os-release>/<name>" -> blob digest of the .deb


def _layer(reader: BundleReader, entry: LockEntry) -> tuple[str, int]:
    manifest = load_json_object(reader.read(blob_name(entry.digest)), "manifest", entry.reference)
    layers = manifest.get("layers") or []
    if not isinstance(layers, list) or len(layers) != 1:
        raise IntegrityError(f"{entry.reference}: expected one layer")
    layer = descriptor(layers[0], "manifest layers[0]", entry.reference)  # digest and size checked
    return layer.digest, layer.size


def read_packages(reader: BundleReader) -> tuple[BundlePackages, list[BundleProblem]]:
    """The bundle's package sets with their indexes, and every inconsistency between the lock's
    package records, the artifacts and the indexes (a package or index missing, another digest)."""
    problems: list[BundleProblem] = []
    try:
        sets = package_sets(reader.lock())
    except KvError as exc:
        return BundlePackages([], {}, {}), [BundleProblem(None, [], exc.message)]
    entries = {e.reference: e for e in reader.entries()}
    indexes: dict[str, bytes] = {}
    layers: dict[str, str] = {}
    for s in sets:
        ref = f"{index_repository(s.distribution)}:{INDEX_TAG}"
        entry = entries.get(ref)
        if entry is None:
            problems.append(
                BundleProblem(None, [ref], f"{s.distribution}: the package index is not in the bundle")
            )
            continue
        field = f"packages.{s.distribution}.index"
        try:
            digest, size = _layer(reader, entry)
            if size > MAX_INDEX:  # as the manifest declares it: refused before a byte is read
                raise IntegrityError(f"{size} bytes, more than the {MAX_INDEX} allowed for a package index")
            data = reader.read(blob_name(digest), limit=MAX_INDEX)
        except KvError as exc:
            problems.append(
                BundleProblem(entry.digest, [ref], f"{field}: unreadable package index: {exc.message}")
            )
            continue
        if hashlib.sha256(data).hexdigest() != s.index_sha256:
            problems.append(
                BundleProblem(
                    digest, [ref], f"{field}.sha256: the package index differs from the one the lock names"
                )
            )
            continue
        indexes[s.distribution] = data
        listed = {p.name: p for p in index_packages(data)}
        for p in s.packages:
            pref = f"{package_repository(s.distribution)}:{package_tag(p.name)}"
            pentry = entries.get(pref)
            if pentry is None:
                problems.append(
                    BundleProblem(None, [pref], f"package {p.name} {p.version} is not in the bundle")
                )
                continue
            try:
                pdigest, psize = _layer(reader, pentry)
            except KvError as exc:
                problems.append(
                    BundleProblem(pentry.digest, [pref], f"unreadable package artifact: {exc.message}")
                )
                continue
            if pdigest != f"sha256:{p.sha256}" or psize != p.size:
                problems.append(
                    BundleProblem(pdigest, [pref], f"package {p.name}: not the .deb the lock pins")
                )
                continue
            stanza = listed.get(p.name)
            if stanza is None or (stanza.sha256, stanza.fields.get("Size"), stanza.filename) != (
                p.sha256,
                str(p.size),
                pool_path(p.name, p.filename),
            ):  # apt would fetch another path or refuse the file
                problems.append(
                    BundleProblem(pdigest, [pref], f"package {p.name}: the index lists another file")
                )
                continue
            layers[f"{s.distribution}/{p.name}"] = pdigest
        extra = sorted(set(listed) - {p.name for p in s.packages})
        if extra:
            problems.append(
                BundleProblem(None, [ref], f"the index lists packages the lock does not: {', '.join(extra)}")
            )
    return BundlePackages(sets, indexes, layers), problems


def _copy_verified(reader: BundleReader, digest: str, dest: Path, what: str) -> None:
    name = blob_name(digest)
    h = hashlib.sha256()
    remaining = reader.size(name)
    tmp = dest.with_name(f".{dest.name}.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with reader.open(name) as src, open(tmp, "wb") as out:
        while remaining > 0:
            block = src.read(min(_BLOCK, remaining))
            if not block:
                break
            remaining -= len(block)
            h.update(block)
            out.write(block)
    if "sha256:" + h.hexdigest() != digest:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(f"{what}: content does not match {digest}")
    os.replace(tmp, dest)


def build_repositories(
    bundle: BundlePackages,
    reader: BundleReader,
    root: Path,
    key: SigningKey | None,
    *,
    date: str | None = None,
) -> dict[str, int]:
    """Write every OS release's repository under `root` (replacing an older tree), signed by `key`
    (needed only when the bundle has packages); returns the number of packages per OS release. The
    public key is written as root/KEY_FILE, and root/MARKER says what is served."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.iterdir():  # OS releases an earlier bundle had
        if stale.is_dir() and stale.name not in {s.distribution for s in bundle.sets}:
            shutil.rmtree(stale, ignore_errors=True)
    date = date or email.utils.formatdate(usegmt=True)
    counts: dict[str, int] = {}
    for s in bundle.sets:
        assert key is not None
        index = bundle.indexes[s.distribution]
        tree = root / f".{s.distribution}.new"
        shutil.rmtree(tree, ignore_errors=True)
        for p in s.packages:
            digest = bundle.layers[f"{s.distribution}/{p.name}"]
            old = root / s.distribution / pool_path(p.name, p.filename)
            dest = tree / pool_path(p.name, p.filename)
            if old.is_file() and old.stat().st_size == p.size and _sha256_file(old) == p.sha256:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(old, dest)  # unchanged since the last serve: no copy
            else:
                _copy_verified(reader, digest, dest, f"{s.distribution}: {p.filename}")
        binary = f"{COMPONENT}/binary-{s.architecture}"
        files = {f"{binary}/Packages": index, f"{binary}/Packages.gz": gzip.compress(index, mtime=0)}
        dists = tree / "dists" / SUITE
        for rel, data in files.items():
            write_atomic(dists / rel, data)
        release = release_file(
            suite=SUITE, components=[COMPONENT], architectures=[s.architecture], date=date, files=files
        ).encode()
        write_atomic(dists / "Release", release)
        write_atomic(dists / "InRelease", key.clearsign(release))
        write_atomic(dists / "Release.gpg", key.detach_sign(release))
        final = root / s.distribution
        previous = root / f".{s.distribution}.old"
        shutil.rmtree(previous, ignore_errors=True)
        if final.exists():
            os.replace(final, previous)
        os.replace(tree, final)
        shutil.rmtree(previous, ignore_errors=True)
        counts[s.distribution] = len(s.packages)
    if key is not None:
        write_atomic(root / KEY_FILE, key.public_key())
    write_atomic(root / MARKER, json.dumps({"distributions": counts}).encode())
    return counts


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def sources_line(url: str, distribution: str, key_path: str) -> str:
    """The apt sources line of a host of `distribution` for the site repository at `url`."""
    return f"deb [signed-by={key_path}] {url.rstrip('/')}/{distribution} {SUITE} {COMPONENT}"


def summary(sets: list[PackageSet]) -> Mapping[str, Any]:
    return {s.distribution: {"packages": len(s.packages), "needed": list(s.needed)} for s in sets}
