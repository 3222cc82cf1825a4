"""Sockets and commands inside a named network namespace (``ip netns`` names, /run/netns/<name>).

``socket_in(netns)`` creates the socket in a short-lived thread that has joined the namespace with setns(2);
a socket belongs to the namespace it was created in, so the caller's threads stay in the root namespace and
can use it normally (e.g. pass it to paramiko as ``sock=``).
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    t = threading.Thread(target=worker, name=f"netns {netns}")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return result[0]


def connect_in(netns: str, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to host:port made from inside ``netns`` (blocking socket after connect)."""
    s = socket_in(netns)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    s.settimeout(None)
    return s


def run_in(netns: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    """``ip netns exec NETNS argv`` (subprocess.run keyword arguments pass through; capture by default)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(["ip", "netns", "exec", netns, *argv], **kw)
