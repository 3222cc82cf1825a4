"""The bundle: an OCI image layout packed as one uncompressed tar, plus kvinstall-lock.json.

Creating works in a directory next to the output (`.<name>.work`), which is what makes an
interrupted create resumable; the tar is written to `<name>.partial` and renamed only when
complete, so a file named like the bundle is always a whole bundle. The work directory is removed
after success. The tar is uncompressed so push can read each blob in place (seek to its offset)
without unpacking; layers are already compressed.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any

from kvinstall.errors import IntegrityError, LocalIOError
from kvinstall.imageref import Reference, parse_reference
from kvinstall.mirror.artifacts import build_artifact, fetch_file, source_size
from kvinstall.mirror.copy import (
    Clients,
    PulledImage,
    index_descriptor,
    plan_push,
    pull_blobs,
    push_plan,
    resolve_image,
    run_parallel,
)
from kvinstall.mirror.layout import Layout, io_guard, local_io_error
from kvinstall.mirror.model import (
    DEFAULT_PLATFORMS,
    LOCK_NAME,
    BundleInfo,
    BundleResult,
    FileItem,
    ImageItem,
    LockEntry,
    MirrorItem,
    Progress,
    ProgressTracker,
    PushResult,
    RegistryOptions,
)
from kvinstall.mirror.registry import CHUNK, MT_OCI_MANIFEST, RegistryClient

LOCK_VERSION = 1


def work_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


def _normalise(items: Iterable[MirrorItem]) -> tuple[list[str], list[FileItem]]:
    images: list[str] = []
    files: list[FileItem] = []
    for it in items:
        if isinstance(it, str):
            it = ImageItem(it)
        if isinstance(it, ImageItem):
            if it.reference not in images:
                images.append(it.reference)
        elif it not in files:
            files.append(it)
    return images, files


def create_bundle(
    items: Iterable[MirrorItem],
    out: Path,
    *,
    platforms: Iterable[str] = DEFAULT_PLATFORMS,
    workers: int = 8,
    progress: Progress | None = None,
    registries: Mapping[str, RegistryOptions] | None = None,
    keep_work_dir: bool = False,
    extra_lock: Mapping[str, Any] | None = None,
) -> BundleResult:
    """Copy images (from their registries) and files (URLs or paths) into a bundle at `out`.

    `registries` maps host[:port] (as written in the references) to TLS/credential options.
    `extra_lock`: more top-level sections of the lock file (the host packages' records).
    Re-running after an interruption continues: finished blobs are kept, partial ones resumed.
    """
    out = Path(out)
    platforms = list(platforms)
    images, files = _normalise(items)
    work = work_dir_for(out)
    layout = Layout(work).init()
    clients = Clients(dict(registries or {}), pool=workers)
    try:
        refs = {text: parse_reference(text) for text in images}
        pulled: list[PulledImage] = run_parallel(
            [partial(resolve_image, clients.get(refs[t]), t, layout, platforms) for t in images],
            workers,
        )
        wanted: dict[str, tuple[Reference, int, str]] = {}
        for p in pulled:
            for digest, size in p.blobs.items():
                wanted.setdefault(digest, (refs[p.entry.reference], size, p.entry.reference))
        file_sizes = [source_size(f) for f in files]
        total = sum(size for _, size, _ in wanted.values()) + sum(file_sizes)
        tracker = ProgressTracker(total, progress)
        for digest, (_, size, _) in wanted.items():
            tracker.expect(digest, size)
        for f, size in zip(files, file_sizes, strict=True):
            if size:
                tracker.expect(f.digest, size)
        received, reused = pull_blobs(clients, layout, wanted, tracker, workers)

        def one_file(f: FileItem) -> int:
            already = layout.has_blob(f.digest)
            got = fetch_file(f, layout, lambda p: tracker.reach(f.digest, p))
            tracker.complete(f.digest)
            return 0 if already else got

        received += sum(run_parallel([partial(one_file, f) for f in files], workers))
        entries = [p.entry for p in pulled]
        for f in files:
            data, _ = build_artifact(f, layout)
            digest = layout.put_bytes(data)
            ref = f"{f.name}:{f.tag}"
            entries.append(
                LockEntry(
                    reference=ref,
                    kind="file",
                    repository=f.name,
                    tag=f.tag,
                    digest=digest,
                    media_type=MT_OCI_MANIFEST,
                    size=len(data),
                    upstream_digest=digest,
                )
            )
        layout.write_index([index_descriptor(e) for e in entries])
        lock = {
            "version": LOCK_VERSION,
            "platforms": platforms,
            "entries": [e.to_json() for e in entries],
            **(extra_lock or {}),
        }
        lock_bytes = json.dumps(lock, indent=2).encode()
        plan = plan_push(entries, layout.read_blob)
        blob_digests = sorted(set(plan.manifests) | set(plan.blob_sizes))
        _pack(layout, blob_digests, lock_bytes, out)
    finally:
        clients.close()
    if not keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return BundleResult(
        path=out,
        entries=entries,
        blobs=len(blob_digests),
        bytes_total=sum(plan.blob_sizes.values()),
        bytes_downloaded=received,
        bytes_reused=reused,
    )


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # reproducible bundles
    return info


def _pack(layout: Layout, digests: list[str], lock_bytes: bytes, out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    try:
        with open(tmp, "wb") as raw:
            # A 1 MiB copy buffer: tarfile's 16 KiB default makes packing CPU-bound.
            with tarfile.TarFile(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
                for name in ("oci-layout",):
                    path = layout.root / name
                    with open(path, "rb") as fh:
                        tar.addfile(_tarinfo(name, path.stat().st_size), fh)
                for digest in digests:
                    path = layout.blob_path(digest)
                    with open(path, "rb") as fh:
                        tar.addfile(_tarinfo(f"blobs/sha256/{path.name}", path.stat().st_size), fh)
                # index.json and the lock go last: a reader that finds them saw every blob before.
                index = (layout.root / "index.json").read_bytes()
                tar.addfile(_tarinfo("index.json", len(index)), _bytes_io(index))
                tar.addfile(_tarinfo(LOCK_NAME, len(lock_bytes)), _bytes_io(lock_bytes))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise local_io_error(exc, out) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _bytes_io(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


class BundleReader:
    """Random access to the members of a bundle tar (or an unpacked layout directory)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.members: dict[str, tuple[int, int]] = {}  # name -> (offset, size)
        if self.path.is_dir():
            self._dir = True
            return
        self._dir = False
        with io_guard(self.path):
            if not self.path.is_file():
                raise LocalIOError("bundle not found", where=str(self.path))
            try:
                with tarfile.open(self.path, mode="r:") as tar:
                    for m in tar:
                        if m.isfile():
                            self.members[m.name.removeprefix("./")] = (m.offset_data, m.size)
            except tarfile.TarError as exc:
                raise IntegrityError(f"not a bundle (unreadable tar: {exc})", where=str(self.path)) from exc

    def has(self, name: str) -> bool:
        return (self.path / name).is_file() if self._dir else name in self.members

    def size(self, name: str) -> int:
        return (self.path / name).stat().st_size if self._dir else self.members[name][1]

    def names(self) -> list[str]:
        if self._dir:
            return [str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file()]
        return list(self.members)

    def open(self, name: str) -> IO[bytes]:
        """A reader positioned at the member's first byte (read at most size(name) bytes)."""
        with io_guard(self.path):
            if self._dir:
                return open(self.path / name, "rb")
            fh = open(self.path, "rb")  # noqa: SIM115 - the caller closes it
            fh.seek(self.members[name][0])
            return fh

    def read(self, name: str) -> bytes:
        if not self.has(name):
            raise IntegrityError(f"{name} is missing", where=str(self.path))
        with self.open(name) as fh:
            return fh.read(self.size(name))

    def lock(self) -> dict[str, Any]:
        if not self.has(LOCK_NAME) or not self.has("index.json"):
            raise IntegrityError(
                "incomplete bundle: index.json or the lock file is missing", where=str(self.path)
            )
        try:
            loaded: dict[str, Any] = json.loads(self.read(LOCK_NAME))
        except ValueError as exc:
            raise IntegrityError(f"unreadable {LOCK_NAME}: {exc}", where=str(self.path)) from exc
        return loaded

    def entries(self) -> list[LockEntry]:
        return [LockEntry.from_json(e) for e in self.lock().get("entries", [])]


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.partition(":")[2]


def inspect_bundle(path: Path) -> BundleInfo:
    reader = BundleReader(path)
    lock = reader.lock()
    blobs = [n for n in reader.names() if n.startswith("blobs/sha256/")]
    return BundleInfo(
        path=Path(path),
        entries=reader.entries(),
        platforms=list(lock.get("platforms", [])),
        blobs=len(blobs),
        bytes_total=sum(reader.size(n) for n in blobs),
    )


def split_registry(registry: str) -> tuple[str, str]:
    """'host:port/prefix' -> ('host:port', 'prefix')."""
    reg = registry.strip().rstrip("/")
    for scheme in ("https://", "http://"):
        reg = reg.removeprefix(scheme)
    host, _, prefix = reg.partition("/")
    return host, prefix


def push_bundle(
    bundle: Path,
    registry: str,
    *,
    ca_file: str | Path | None = None,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    workers: int = 8,
    progress: Progress | None = None,
    chunk_size: int | None = None,
    skip_verify: bool = False,
) -> PushResult:
    """Upload what the registry lacks, then the manifests (exact bytes), then the locked tags.

    Images land at REGISTRY/<repository path without the upstream host> (see refs.rewrite_image).
    """
    reader = BundleReader(bundle)
    entries = reader.entries()

    def read_small(digest: str) -> bytes:
        name = blob_name(digest)
        if not reader.has(name):
            raise IntegrityError(f"blob {digest} is missing from the bundle", where=str(bundle))
        return reader.read(name)

    plan = plan_push(entries, read_small)
    for digest in plan.blob_sizes:
        if not reader.has(blob_name(digest)):
            users = [e.reference for e in entries if digest in plan.entry_blobs[e.reference]]
            raise IntegrityError(f"blob {digest} is missing from the bundle", where=", ".join(users))
    host, prefix = split_registry(registry)

    def target(repository: str) -> str:
        return f"{prefix}/{repository}" if prefix else repository

    tracker = ProgressTracker(sum(plan.blob_sizes.values()), progress)
    opener: Callable[[str], IO[bytes]] = lambda d: reader.open(blob_name(d))  # noqa: E731
    with RegistryClient(
        host,
        ca_file=ca_file,
        insecure=insecure,
        skip_verify=skip_verify,
        username=username,
        password=password,
        pool=workers,
    ) as client:
        client.ping()
        counters = push_plan(client, plan, target, opener, tracker, workers, chunk_size)
    pushed = {
        e.reference: f"{host}/{target(e.repository)}" + (f":{e.tag}" if e.tag else "") + f"@{e.digest}"
        for e in entries
    }
    return PushResult(
        registry=registry,
        entries=entries,
        blobs_uploaded=counters.uploaded,
        blobs_skipped=counters.skipped,
        blobs_mounted=counters.mounted,
        bytes_sent=counters.bytes_sent,
        manifests_put=counters.manifests_put,
        pushed=pushed,
    )
