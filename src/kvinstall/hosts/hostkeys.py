"""Strict SSH host-key verification.

A host is trusted when the key it presents matches a key pinned in the config, or an entry of the
user's known_hosts or kvinstall's own known_hosts (state directory). An unknown or changed key stops
that host with the fingerprints in the message. With `accept_new`, an unknown host's key is recorded
in kvinstall's own file (trust on first use); a *changed* key is never accepted.

known_hosts files are read here, as OpenSSH writes them: host patterns (`*`, `?`, `!negation`),
`[host]:port`, hashed names (`|1|salt|hash`), comments. `@revoked` lines are honoured: a key they
list for a host is refused for it, even when pinned. `@cert-authority` lines (host certificates)
are not supported: they are skipped with a note, as are lines that cannot be read. Like OpenSSH,
the connection asks first for the key types already on record for the host (`preferred_types`),
so a host with an RSA key on record that also offers ed25519 shows its RSA key, not a false alarm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paramiko

from kvinstall.errors import SSHError

# other-type: keys are on record for the host, none of the type it presented (refused, as "changed"
# is; with preferred_types the host is asked for a recorded type first, so this means it has none).
Verdict = Literal["trusted", "accepted-new", "unknown", "changed", "other-type"]


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
class KnownHostsLine:
    """One usable line of a known_hosts file. marker: None, or "revoked"."""

    source: str  # "FILE:LINE", for messages
    marker: str | None
    patterns: tuple[str, ...]
    key_type: str
    blob: bytes

    def matches(self, hid: str) -> bool:
        return host_matches(self.patterns, hid)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only '*' and '?'; everything else (brackets of [host]:port) is literal.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _hashed_matches(entry: str, hid: str) -> bool:
    parts = entry.split("|")  # |1|salt|hash
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, hid.encode(), hashlib.sha1).digest(), want)


def host_matches(patterns: Sequence[str], hid: str) -> bool:
    """OpenSSH's rule: a match of a negated pattern excludes the host, else any positive match counts."""
    hit = False
    for pattern in patterns:
        if pattern.startswith("|"):
            hit = hit or _hashed_matches(pattern, hid)
            continue
        negated = pattern.startswith("!")
        if _pattern_regex((pattern[1:] if negated else pattern).lower()).fullmatch(hid.lower()) is None:
            continue
        if negated:
            return False
        hit = True
    return hit


def read_known_hosts(path: Path) -> tuple[list[KnownHostsLine], list[str]]:
    """The usable lines of a known_hosts file, and a note for each line that is skipped."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise SSHError(f"cannot read known_hosts: {exc.strerror or exc}", where=str(path)) from exc
    lines: list[KnownHostsLine] = []
    notes: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{n}"
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
            if marker == "@cert-authority":
                notes.append(f"{where}: @cert-authority (host certificates) is not supported; line skipped")
                continue
            if marker != "@revoked":
                notes.append(f"{where}: unknown marker {marker[:40]}; line skipped")
                continue
        if len(fields) < 3:
            notes.append(f"{where}: not a known_hosts line (hosts, key type, key); skipped")
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            notes.append(f"{where}: the key is not valid base64; line skipped")
            continue
        marker_name = "revoked" if marker == "@revoked" else None
        lines.append(KnownHostsLine(where, marker_name, tuple(fields[0].split(",")), fields[1], blob))
    return lines, notes


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
        return Decision("changed" if same else "other-type", fp, tuple(same + other))
    return Decision("accepted-new" if accept_new else "unknown", fp)


# The host key types KubeOne's SSH client (Go's x/crypto/ssh, no HostKeyAlgorithms set) prefers, in
# order: a host offering several shows KubeOne the first of these it has. paramiko prefers ed25519,
# so the key kvinstall verified is not always the one KubeOne will be shown.
KUBEONE_KEY_TYPES = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-ed25519")
# The same as host key algorithms, for paramiko's negotiation (RSA keys sign with SHA-2 first).
KUBEONE_KEY_ALGORITHMS = (
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa",
    "ssh-ed25519",
)


def kubeone_choice(keys: Sequence[KnownKey]) -> KnownKey | None:
    """Of the keys on record for a host, the one KubeOne will be shown (by its client's preference)."""
    ranked = [k for k in keys if k.key_type in KUBEONE_KEY_TYPES]
    return min(ranked, key=lambda k: KUBEONE_KEY_TYPES.index(k.key_type), default=None)


def kubeone_decide(presented_type: str, presented_blob: bytes, known: Sequence[KnownKey]) -> Verdict:
    """The key a host shows KubeOne, against the keys on record for it. Unlike `decide`, a record
    of another type only is no mismatch here (the host was verified with that other key)."""
    if any(k.blob == presented_blob for k in known):
        return "trusted"
    if any(k.key_type == presented_type for k in known):
        return "changed"
    return "unknown"


def line_of(key_type: str, blob: bytes) -> str:
    return f"{key_type} {base64.b64encode(blob).decode()}"


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
        self._lines: list[KnownHostsLine] = []
        self.notes: list[str] = []  # lines skipped (unsupported markers, unreadable lines)
        for path in [*self.user_paths, self.own_path]:
            if path.is_file():
                lines, notes = read_known_hosts(path)
                self._lines += lines
                self.notes += notes
        # Hosts whose key was accepted in this run (host id -> fingerprint), for the plan/report.
        self.accepted: dict[str, str] = {}
        # Hosts whose key is not trusted (host id -> fingerprint): shown in the plan.
        self.untrusted: dict[str, str] = {}

    def known_for(self, hid: str) -> list[KnownKey]:
        with self._lock:
            found = [
                KnownKey(ln.key_type, ln.blob) for ln in self._lines if ln.marker is None and ln.matches(hid)
            ]
        return list(dict.fromkeys(found))

    def revoked_for(self, hid: str) -> list[KnownHostsLine]:
        with self._lock:
            return [ln for ln in self._lines if ln.marker == "revoked" and ln.matches(hid)]

    def preferred_types(self, address: str, port: int, pinned: str | None = None) -> list[str]:
        """Key types on record for the host (the pinned one alone when pinned), to ask for first.

        Types of usable keys come before types known only from @revoked lines: a host that still
        holds a revoked key then shows it, and is refused with that reason."""
        if pinned is not None:
            return pinned.split()[:1]
        hid = host_id(address, port)
        revoked = self.revoked_for(hid)
        usable = [k.key_type for k in self.known_for(hid) if k.blob not in {ln.blob for ln in revoked}]
        return list(dict.fromkeys([*usable, *(ln.key_type for ln in revoked)]))

    def on_record(self, address: str, port: int, *, pinned: str | None = None) -> list[KnownKey]:
        """The keys on record for a host, less any on an @revoked line: the pinned one and kvinstall's
        own known_hosts, or (nothing pinned) every known_hosts file."""
        hid = host_id(address, port)
        revoked = {ln.blob for ln in self.revoked_for(hid)}
        if pinned is None:
            return [k for k in self.known_for(hid) if k.blob not in revoked]
        try:
            ptype, pblob = parse_public_key_line(pinned)
        except ValueError:
            return []
        own = str(self.own_path)
        with self._lock:
            recorded = [
                KnownKey(ln.key_type, ln.blob)
                for ln in self._lines
                if ln.marker is None
                and (ln.source == own or ln.source.startswith(own + ":"))
                and ln.matches(hid)
            ]
        return [k for k in dict.fromkeys([KnownKey(ptype, pblob), *recorded]) if k.blob not in revoked]

    def record(self, address: str, port: int, key: paramiko.PKey) -> None:
        """Add a key for a host to kvinstall's own known_hosts (a host may hold several types)."""
        hid = host_id(address, port)
        with self._lock:
            if any(ln.marker is None and ln.matches(hid) and ln.key_type == key.get_name() for ln in self._lines):
                return
            self._append(hid, key)

    def _append(self, hid: str, key: paramiko.PKey) -> None:
        # Called under the lock.
        self._lines.append(KnownHostsLine(str(self.own_path), None, (hid,), key.get_name(), key.asbytes()))
        self.own_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.own_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(f"{hid} {key.get_name()} {key.get_base64()}\n")
        except OSError as exc:
            raise SSHError(f"cannot record the host key: {exc}", where=str(self.own_path)) from exc

    def verify(self, address: str, port: int, key: paramiko.PKey, *, pinned: str | None = None) -> Decision:
        """Raise SSHError unless `key` is trusted for address:port. Returns the decision on success."""
        hid = host_id(address, port)
        where = f"{address}:{port}"
        for line in self.revoked_for(hid):
            if line.blob == key.asbytes():
                self.untrusted[hid] = fingerprint(key)
                raise SSHError(
                    f"host key {fingerprint(key)} ({key.get_name()}) is revoked (@revoked in {line.source}); "
                    "refusing to connect",
                    where=where,
                    hint="the host must get a new host key; then pin it or record it in known_hosts",
                )
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
        if dec.verdict == "other-type":
            self.untrusted[hid] = dec.presented
            raise SSHError(
                f"the host offers only a {key.get_name()} key ({dec.presented}), but known_hosts has keys of "
                f"other types for it ({', '.join(dec.expected)}); refusing to connect",
                where=where,
                hint="if the host's keys were replaced, check the new fingerprint on the host, then remove "
                f"its old lines ({hid}) from "
                + ", ".join(str(p) for p in [*self.user_paths, self.own_path])
                + " and re-run",
            )
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
            if not any(ln.marker is None and ln.matches(hid) for ln in self._lines):
                self._append(hid, key)


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
    key = exchange_key(sock, timeout, where=where)
    return HostKey(key.get_name(), key.get_base64(), fingerprint(key))


def exchange_key(sock: Any, timeout: float, *, where: str, key_types: Sequence[str] | None = None) -> paramiko.PKey:
    """The SSH key exchange on a connected socket (or channel), then closed: the server's host key,
    verified by nobody. `key_types`: the host key algorithms the client prefers, in order (default:
    paramiko's)."""
    try:
        transport = paramiko.Transport(sock)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"SSH key exchange failed: {exc or type(exc).__name__}", where=where) from exc
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        if key_types is not None:
            opts = transport.get_security_options()
            opts.key_types = [k for k in key_types if k in opts.key_types]
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"SSH key exchange failed: {exc or type(exc).__name__}", where=where) from exc
    finally:
        transport.close()


def _tcp(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)
