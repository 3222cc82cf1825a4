"""Strict SSH host-key verification.

A host is trusted when the key it presents matches a key pinned in the config, or an entry of the
user's known_hosts or kvinstall's own known_hosts (state directory). An unknown or changed key stops
that host with the fingerprints in the message. With `accept_new`, an unknown host's key is recorded
in kvinstall's own file (trust on first use); a *changed* key is never accepted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paramiko

from kvinstall.errors import SSHError

Verdict = Literal["trusted", "accepted-new", "unknown", "changed"]


def fingerprint_bytes(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob: 'SHA256:' + unpadded base64."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprint(key: paramiko.PKey) -> str:
    return fingerprint_bytes(key.asbytes())


def parse_public_key_line(line: str) -> tuple[str, bytes]:
    """'ssh-ed25519 AAAA... [comment]' -> (type, blob). Raises ValueError on garbage."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64>'")
    return parts[0], base64.b64decode(parts[1])


def host_id(address: str, port: int) -> str:
    """The name a host has in known_hosts: 'addr' on port 22, '[addr]:port' otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class KnownKey:
    key_type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint_bytes(self.blob)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    presented: str  # fingerprint of the presented key
    expected: tuple[str, ...] = ()  # fingerprints on record for that host (same key type first)


def decide(
    presented_type: str, presented_blob: bytes, known: Sequence[KnownKey], *, accept_new: bool
) -> Decision:
    """Pure decision over the keys on record for one host.

    A host with a key of the presented type on record must match it; a host with keys only of other
    types is treated as changed too (an attacker picks the type he has), as OpenSSH does.
    """
    fp = fingerprint_bytes(presented_blob)
    if any(k.blob == presented_blob for k in known):
        return Decision("trusted", fp)
    if known:
        same = [k.fingerprint for k in known if k.key_type == presented_type]
        other = [k.fingerprint for k in known if k.key_type != presented_type]
        return Decision("changed", fp, tuple(same + other))
    return Decision("accepted-new" if accept_new else "unknown", fp)


def _default_user_known_hosts() -> list[Path]:
    return [Path(os.path.expanduser("~/.ssh/known_hosts"))]


class HostKeyPolicy:
    """Verifies presented host keys; records newly accepted ones in kvinstall's own file."""

    def __init__(
        self,
        own_known_hosts: Path,
        *,
        user_known_hosts: Sequence[Path] | None = None,
        accept_new: bool = False,
    ) -> None:
        self.own_path = Path(own_known_hosts)
        self.user_paths = list(_default_user_known_hosts() if user_known_hosts is None else user_known_hosts)
        self.accept_new = accept_new
        self._lock = threading.Lock()
        self._keys = paramiko.HostKeys()
        for path in [*self.user_paths, self.own_path]:
            if path.is_file():
                try:
                    self._keys.load(str(path))
                except (OSError, paramiko.SSHException) as exc:
                    raise SSHError(f"cannot read known_hosts: {exc}", where=str(path)) from exc
        # Hosts whose key was accepted in this run (host id -> fingerprint), for the plan/report.
        self.accepted: dict[str, str] = {}
        # Hosts whose key is not trusted (host id -> fingerprint): shown in the plan.
        self.untrusted: dict[str, str] = {}

    def known_for(self, hid: str) -> list[KnownKey]:
        with self._lock:
            entry = self._keys.lookup(hid)
            if entry is None:
                return []
            return [KnownKey(t, k.asbytes()) for t, k in entry.items()]

    def verify(self, address: str, port: int, key: paramiko.PKey, *, pinned: str | None = None) -> Decision:
        """Raise SSHError unless `key` is trusted for address:port. Returns the decision on success."""
        hid = host_id(address, port)
        where = f"{address}:{port}"
        if pinned is not None:
            try:
                ptype, pblob = parse_public_key_line(pinned)
            except ValueError as exc:
                raise SSHError(f"the pinned host key is not valid: {exc}", where=where) from exc
            dec = decide(key.get_name(), key.asbytes(), [KnownKey(ptype, pblob)], accept_new=False)
            if dec.verdict != "trusted":
                raise SSHError(
                    f"host key does not match the key pinned in the config: presented {dec.presented}, "
                    f"pinned {fingerprint_bytes(pblob)}",
                    where=where,
                    hint="if the host was reinstalled, update hostPublicKey in the config",
                )
            return dec
        dec = decide(key.get_name(), key.asbytes(), self.known_for(hid), accept_new=self.accept_new)
        if dec.verdict == "trusted":
            return dec
        if dec.verdict == "changed":
            self.untrusted[hid] = dec.presented
            raise SSHError(
                f"HOST KEY CHANGED: presented {dec.presented} ({key.get_name()}), "
                f"known {', '.join(dec.expected)}; refusing to connect (possible man-in-the-middle)",
                where=where,
                hint=f"if the host was reinstalled, remove its line ({hid}) from "
                + ", ".join(str(p) for p in [*self.user_paths, self.own_path])
                + " and re-run; --accept-new-host-keys never replaces a changed key",
            )
        if dec.verdict == "unknown":
            self.untrusted[hid] = dec.presented
            raise SSHError(
                f"unknown host key {dec.presented} ({key.get_name()}); no known key on record for this host",
                where=where,
                hint="check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                "then pin it as hostPublicKey in the config or re-run with --accept-new-host-keys",
            )
        self._record(hid, key)
        self.accepted[hid] = dec.presented
        return dec

    def _record(self, hid: str, key: paramiko.PKey) -> None:
        with self._lock:
            # Re-check under the lock: two connections to the same host may race.
            if self._keys.lookup(hid) is None:
                self._keys.add(hid, key.get_name(), key)
                self.own_path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(self.own_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    with os.fdopen(fd, "a") as fh:
                        fh.write(f"{hid} {key.get_name()} {key.get_base64()}\n")
                except OSError as exc:
                    raise SSHError(f"cannot record the host key: {exc}", where=str(self.own_path)) from exc


@dataclass(frozen=True)
class HostKey:
    """The key a host presented, as a known_hosts/hostPublicKey line and its fingerprint."""

    key_type: str
    base64: str
    fingerprint: str

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.base64}"


def fetch_host_key(
    address: str,
    port: int,
    timeout: float = 5.0,
    *,
    socket_factory: Callable[[str, int, float], Any] | None = None,
) -> HostKey:
    """Connect, run the SSH key exchange and return the server's host key. No authentication: the
    caller shows the fingerprint and decides whether to pin it."""
    where = f"{address}:{port}"
    try:
        sock = (socket_factory or _tcp)(address, port, timeout)
    except OSError as exc:
        raise SSHError(f"cannot connect: {exc.strerror or exc}", where=where) from exc
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"SSH key exchange failed: {exc}", where=where) from exc
    finally:
        transport.close()
    return HostKey(key.get_name(), key.get_base64(), fingerprint(key))


def _tcp(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)
