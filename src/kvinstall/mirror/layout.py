"""An OCI image layout directory (oci-layout, index.json, blobs/sha256/<hex>), written atomically.

A blob is written to blobs/sha256/<hex>.partial, fsynced, re-hashed and only then renamed to its
final name: a file under its digest name is always complete and correct. A .partial left by an
interrupted run is continued (the caller asks the registry for the remaining Range).

A blob found under its name from an earlier run is re-hashed once before it is reused
(`has_verified_blob`): the work directory is only as trustworthy as the disk and whoever else can
write there, so a right-sized blob with wrong content is dropped and fetched again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import requests

from kvinstall import fsutil
from kvinstall.errors import IntegrityError, LocalIOError
from kvinstall.mirror.descriptor import is_digest

OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
HASH_BLOCK = 1 << 20


def local_io_error(exc: OSError, path: Path | str) -> LocalIOError:
    """A clear message for a failed local read or write (a full disk above all)."""
    if exc.errno == errno.ENOSPC:
        return LocalIOError(
            "no space left on device",
            where=str(path),
            hint="free space or choose another output directory, then re-run to continue",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalIOError("permission denied", where=str(path))
    return LocalIOError(exc.strerror or str(exc), where=str(path))


@contextmanager
def io_guard(path: Path | str) -> Iterator[None]:
    try:
        yield
    except requests.RequestException:
        raise  # an OSError subclass, but a network failure, not a local one
    except OSError as exc:
        raise local_io_error(exc, path) from exc


def hash_file(path: Path, hasher: Any | None = None) -> str:
    h = hasher or hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            h.update(block)
    return "sha256:" + h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    fsutil.write_atomic(path, data)  # unique temp name, fsync of file and directory, clear ENOSPC


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self._verified: set[str] = set()  # digests hashed (or written) by this process

    def init(self) -> Layout:
        with io_guard(self.root):
            self.blobs.mkdir(parents=True, exist_ok=True)
            if not (self.root / "oci-layout").exists():
                write_atomic(self.root / "oci-layout", OCI_LAYOUT.encode())
        return self

    def blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise IntegrityError(f"unsupported or malformed digest {digest[:100]!r}")
        return self.blobs / digest.partition(":")[2]

    def partial_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(self.blob_path(digest).name + ".partial")

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def has_verified_blob(self, digest: str, size: int | None = None) -> bool:
        """Like has_blob, but a blob not yet hashed in this run is hashed first; a wrong one is removed."""
        if not self.has_blob(digest, size):
            return False
        if digest in self._verified:
            return True
        path = self.blob_path(digest)
        with io_guard(path):
            if hash_file(path) != digest:
                path.unlink()
                return False
        self._verified.add(digest)
        return True

    def partial_size(self, digest: str) -> int:
        try:
            return self.partial_path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    @contextmanager
    def open_partial(self, digest: str, resume: bool = True) -> Iterator[IO[bytes]]:
        """A writer for the blob's .partial file, appending when resuming."""
        path = self.partial_path(digest)
        with io_guard(path):
            fh = open(path, "r+b" if resume and path.exists() else "w+b")  # noqa: SIM115
        with io_guard(path):
            try:
                fh.seek(0, os.SEEK_END)
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fh.close()  # flushes too, so it can be the call that finds the disk full

    def commit_partial(self, digest: str, size: int | None, where: str) -> None:
        """Verify the .partial against its digest and size, then rename it into place."""
        part = self.partial_path(digest)
        with io_guard(part):
            actual = hash_file(part)
            actual_size = part.stat().st_size
        if actual != digest or (size is not None and actual_size != size):
            with io_guard(part):
                part.unlink()
            raise IntegrityError(
                f"blob {digest} received with digest {actual} and {actual_size} bytes"
                + (f" (expected {size})" if size is not None else ""),
                where=where,
            )
        with io_guard(part):
            os.replace(part, self.blob_path(digest))
        self._verified.add(digest)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and expected != digest:
            raise IntegrityError(f"content hashes to {digest}, expected {expected}")
        if not self.has_verified_blob(digest, len(data)):
            write_atomic(self.blob_path(digest), data)
            self._verified.add(digest)
        return digest

    def put_file(self, src: Path, expected: str, where: str, on_position: Callable[[int], None]) -> None:
        """Copy a local file in as a blob (streamed, verified)."""
        if self.has_verified_blob(expected):
            return
        pos = 0
        with self.open_partial(expected, resume=False) as out, io_guard(src), open(src, "rb") as fh:
            out.truncate(0)
            while block := fh.read(HASH_BLOCK):
                out.write(block)
                pos += len(block)
                on_position(pos)
        self.commit_partial(expected, None, where)

    def read_blob(self, digest: str) -> bytes:
        with io_guard(self.blob_path(digest)):
            return self.blob_path(digest).read_bytes()

    def write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }
        write_atomic(self.root / "index.json", json.dumps(index, indent=2).encode())
