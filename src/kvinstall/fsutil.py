"""Local files written atomically (temp file, fsync, rename): never a half-written config or state."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from kvinstall.errors import LocalIOError


def write_atomic(path: str | Path, data: str | bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """`durable=False`: still never half-written, but not forced to disk (an export of many files
    that the command can write again, where an fsync per file would cost most of its time)."""
    p = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, p)
            if durable:
                _fsync_dir(p.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise LocalIOError(f"cannot write: {reason}", where=str(p)) from exc


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
