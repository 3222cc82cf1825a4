"""The bundle: an OCI image layout packed as one uncompressed tar, plus kvinstall-lock.json.

Creating works in a directory next to the output (`.<name>.work`), which is what makes an
interrupted create resumable; the tar is written to `<name>.partial` and renamed only when
complete, so a file named like the bundle is always a whole bundle. The work directory is removed
after success. The tar is uncompressed so push can read each blob in place (seek to its offset)
without unpacking; layers are already compressed. One create at a time per output: the work
directory holds a lock (`.lock`, with the holder's pid) for the whole run.

A bundle handed to `push`, `inspect` or `verify` is untrusted input: the lock file, index.json and
every manifest are checked field by field (descriptor.py), members are read by offset inside the
tar (nothing is extracted), a directory bundle's members must be regular files inside it, and
metadata is size-capped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any

from kvinstall.errors import IntegrityError, LocalIOError
from kvinstall.imageref import Reference, parse_reference
from kvinstall.mirror.artifacts import build_artifact, fetch_file, source_size
from kvinstall.mirror.cancel import CancelToken, run_parallel
from kvinstall.mirror.copy import (
    Clients,
    PulledImage,
    index_descriptor,
    plan_push,
    pull_blobs,
    push_plan,
    resolve_image,
)
from kvinstall.mirror.descriptor import MAX_LOCK, MAX_MANIFEST, check_digest, is_digest, load_json_object
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


_held: set[Path] = set()  # locks this process holds (exclusive() is reentrant within a process)


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold the lock of the bundle `out` (flock on `.lock` in its work directory, with the holder's pid).

    Non-blocking: a second create of the same output stops at once, naming the holder. The inode
    check covers a holder that removed the work directory (and its lock) as it finished. The CLI
    takes it before it renders anything, create_bundle again (a no-op then)."""
    work = work_dir_for(Path(out))
    path = work / ".lock"
    if path in _held:
        yield
        return
    with io_guard(work):
        work.mkdir(parents=True, exist_ok=True)
    while True:
        with io_guard(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise local_io_error(exc, path) from None
            raise LocalIOError(
                "another `kvinstall mirror create` is writing this bundle"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + f"; it holds {path}",
                where=str(out),
                hint="wait for it to finish (or stop it), then re-run; or write to another --out",
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        work.mkdir(parents=True, exist_ok=True)
    _held.add(path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        _held.discard(path)
        with contextlib.suppress(OSError):
            if [p.name for p in work.iterdir()] == [".lock"]:  # nothing fetched yet: leave no trace
                path.unlink()
                work.rmdir()
        os.close(fd)


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
    cancel: CancelToken | None = None,
) -> BundleResult:
    """Copy images (from their registries) and files (URLs or paths) into a bundle at `out`.

    `registries` maps host[:port] (as written in the references) to TLS/credential options.
    `extra_lock`: more top-level sections of the lock file (the host packages' records).
    Re-running after an interruption continues: finished blobs are kept (re-hashed before reuse),
    partial ones resumed. `cancel` stops every transfer at its next piece (Ctrl-C).
    """
    out = Path(out)
    with exclusive(out):
        layout = Layout(work_dir_for(out)).init()
        return _create(
            items,
            out,
            layout,
            list(platforms),
            workers,
            progress,
            registries,
            cancel,
            keep_work_dir,
            extra_lock,
        )


def _create(
    items: Iterable[MirrorItem],
    out: Path,
    layout: Layout,
    platforms: list[str],
    workers: int,
    progress: Progress | None,
    registries: Mapping[str, RegistryOptions] | None,
    cancel: CancelToken | None,
    keep_work_dir: bool,
    extra_lock: Mapping[str, Any] | None,
) -> BundleResult:
    images, files = _normalise(items)
    token = cancel or CancelToken()
    clients = Clients(dict(registries or {}), pool=workers, cancel=token)
    try:
        refs = {text: parse_reference(text) for text in images}
        pulled: list[PulledImage] = run_parallel(
            [partial(resolve_image, clients.get(refs[t]), t, layout, platforms) for t in images],
            workers,
            token,
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
        received, reused = pull_blobs(clients, layout, wanted, tracker, workers, token)

        def one_file(f: FileItem) -> int:
            got = fetch_file(f, layout, lambda p: tracker.reach(f.digest, p), cancel=token)
            tracker.complete(f.digest)
            return got

        received += sum(run_parallel([partial(one_file, f) for f in files], workers, token))
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
        shutil.rmtree(layout.root, ignore_errors=True)
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


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a pax or GNU long-name header whole into memory: cap them (a hostile bundle
    could declare one of gigabytes)."""

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"a pax header of {self.size} bytes")
        parent: Any = super()  # _proc_pax is private and absent from the stubs
        result: tarfile.TarInfo = parent._proc_pax(tar)
        return result

    def _proc_gnulong(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"a long-name header of {self.size} bytes")
        parent: Any = super()
        result: tarfile.TarInfo = parent._proc_gnulong(tar)
        return result


MAX_HEADER = 1 << 20


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
                with tarfile.open(self.path, mode="r:", tarinfo=_BoundedTarInfo) as tar:
                    for m in tar:
                        if m.isfile():
                            self.members[m.name.removeprefix("./")] = (m.offset_data, m.size)
            except tarfile.TarError as exc:
                raise IntegrityError(f"not a bundle (unreadable tar: {exc})", where=str(self.path)) from exc

    def _file(self, name: str) -> Path | None:
        """A directory bundle's member: a regular file inside the directory, reached without symlinks."""
        if not name or name.startswith("/") or ".." in name.split("/"):
            return None
        path = self.path / name
        try:
            current = self.path
            for part in name.split("/"):
                current = current / part
                if stat.S_ISLNK(current.lstat().st_mode):
                    return None
            return path if stat.S_ISREG(path.lstat().st_mode) else None
        except OSError:
            return None

    def has(self, name: str) -> bool:
        return self._file(name) is not None if self._dir else name in self.members

    def size(self, name: str) -> int:
        if self._dir:
            path = self._file(name)
            if path is None:
                raise IntegrityError(f"{name} is missing", where=str(self.path))
            return path.stat().st_size
        return self.members[name][1]

    def names(self) -> list[str]:
        if self._dir:
            found = (str(p.relative_to(self.path)) for p in self.path.rglob("*"))
            return [n for n in found if self._file(n) is not None]
        return list(self.members)

    def open(self, name: str) -> IO[bytes]:
        """A reader positioned at the member's first byte (read at most size(name) bytes)."""
        with io_guard(self.path):
            if self._dir:
                path = self._file(name)
                if path is None:
                    raise IntegrityError(f"{name} is missing", where=str(self.path))
                return open(path, "rb", opener=_no_follow)
            fh = open(self.path, "rb")  # noqa: SIM115 - the caller closes it
            fh.seek(self.members[name][0])
            return fh

    def read(self, name: str, limit: int = MAX_MANIFEST) -> bytes:
        """A whole (small) member: manifests, index.json, the lock. Larger than `limit` is refused."""
        if not self.has(name):
            raise IntegrityError(f"{name} is missing", where=str(self.path))
        size = self.size(name)
        if size > limit:
            raise IntegrityError(
                f"{name} is {size} bytes, more than the {limit} allowed for it", where=str(self.path)
            )
        with self.open(name) as fh:
            return fh.read(size)

    def lock(self) -> dict[str, Any]:
        if not self.has(LOCK_NAME) or not self.has("index.json"):
            raise IntegrityError(
                "incomplete bundle: index.json or the lock file is missing", where=str(self.path)
            )
        lock = load_json_object(self.read(LOCK_NAME, MAX_LOCK), LOCK_NAME, str(self.path), MAX_LOCK)
        platforms = lock.get("platforms", [])
        if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
            raise IntegrityError(f"{LOCK_NAME}: platforms: expected a list of strings", where=str(self.path))
        if not isinstance(lock.get("entries", []), list):
            raise IntegrityError(f"{LOCK_NAME}: entries: expected a list", where=str(self.path))
        return lock

    def entries(self) -> list[LockEntry]:
        where = str(self.path)
        return [
            LockEntry.from_json(e, f"entries[{i}]", where)
            for i, e in enumerate(self.lock().get("entries", []))
        ]


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def blob_name(digest: str, where: str | None = None) -> str:
    """The member name of a blob; the digest is checked first (it may come from a hostile lock)."""
    return "blobs/sha256/" + check_digest(digest, "digest", where).partition(":")[2]


def inspect_bundle(path: Path) -> BundleInfo:
    reader = BundleReader(path)
    lock = reader.lock()
    blobs = [n for n in reader.names() if n.startswith("blobs/sha256/") and is_digest("sha256:" + n[13:])]
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
    cancel: CancelToken | None = None,
) -> PushResult:
    """Upload what the registry lacks, then the manifests (exact bytes), then the locked tags.

    Images land at REGISTRY/<repository path without the upstream host> (see refs.rewrite_image).
    """
    reader = BundleReader(bundle)
    entries = reader.entries()

    def read_small(digest: str) -> bytes:
        name = blob_name(digest, str(bundle))
        if not reader.has(name):
            raise IntegrityError(f"blob {digest} is missing from the bundle", where=str(bundle))
        return reader.read(name)

    plan = plan_push(entries, read_small)
    for digest, size in plan.blob_sizes.items():
        users = [e.reference for e in entries if digest in plan.entry_blobs[e.reference]]
        if not reader.has(blob_name(digest)):
            raise IntegrityError(f"blob {digest} is missing from the bundle", where=", ".join(users))
        if reader.size(blob_name(digest)) != size:
            raise IntegrityError(
                f"blob {digest} holds {reader.size(blob_name(digest))} bytes, its descriptor says {size}",
                where=", ".join(users),
            )
    host, prefix = split_registry(registry)

    def target(repository: str) -> str:
        return f"{prefix}/{repository}" if prefix else repository

    tracker = ProgressTracker(sum(plan.blob_sizes.values()), progress)
    opener: Callable[[str], IO[bytes]] = lambda d: reader.open(blob_name(d))  # noqa: E731
    token = cancel or CancelToken()
    with RegistryClient(
        host,
        ca_file=ca_file,
        insecure=insecure,
        skip_verify=skip_verify,
        username=username,
        password=password,
        pool=workers,
        cancel=token,
    ) as client:
        client.ping()
        counters = push_plan(client, plan, target, opener, tracker, workers, chunk_size, token)
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
