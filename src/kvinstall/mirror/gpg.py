"""OpenPGP for package repositories: keys (armored or binary, fingerprints read in Python),
signature checks with `gpgv` (what apt itself runs) and signing with `gpg` in a private home.

Checking a signed index yields the signed text as gpgv wrote it, never the raw file: text outside
the signature cannot slip into what is parsed afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kvinstall.errors import IntegrityError, LocalIOError

GPGV = "gpgv"
GPG = "gpg"
_TIMEOUT = 120


def dearmor(data: bytes) -> bytes:
    """ASCII-armored key or signature -> binary packets (binary input is returned unchanged)."""
    text = data.lstrip()
    if not text.startswith(b"-----BEGIN PGP"):
        return data
    lines = text.decode("ascii", "replace").splitlines()
    body: list[str] = []
    in_body = False
    for line in lines[1:]:
        if line.startswith("-----END PGP"):
            break
        if not in_body:
            if not line.strip():
                in_body = True  # headers end at the first empty line
            elif ":" not in line:
                in_body = True
                body.append(line.strip())
            continue
        if line.startswith("="):
            break  # the CRC24 checksum line
        body.append(line.strip())
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError as exc:
        raise IntegrityError(f"not an OpenPGP key: bad armor ({exc})") from exc


def _packets(data: bytes) -> Iterable[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 section 4.2, old and new formats)."""
    i = 0
    while i < len(data):
        head = data[i]
        if not head & 0x80:
            raise IntegrityError("not an OpenPGP key: bad packet header")
        if head & 0x40:  # new format
            tag = head & 0x3F
            i += 1
            first = data[i]
            if first < 192:
                length, i = first, i + 1
            elif first < 224:
                length, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
            elif first == 255:
                length, i = int.from_bytes(data[i + 1 : i + 5], "big"), i + 5
            else:
                raise IntegrityError("not an OpenPGP key: partial body lengths")
        else:
            tag = (head >> 2) & 0x0F
            kind = head & 0x03
            size = {0: 1, 1: 2, 2: 4}.get(kind)
            if size is None:
                raise IntegrityError("not an OpenPGP key: indeterminate packet length")
            length = int.from_bytes(data[i + 1 : i + 1 + size], "big")
            i += 1 + size
        if i + length > len(data):
            raise IntegrityError("not an OpenPGP key: truncated packet")
        yield tag, data[i : i + length]
        i += length


def fingerprints(key: bytes) -> list[str]:
    """The v4 fingerprints (upper-case hex) of every primary key and subkey in `key`."""
    out = []
    for tag, body in _packets(dearmor(key)):
        if tag in (6, 14) and body and body[0] == 4:
            out.append(hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper())
    if not out:
        raise IntegrityError("not an OpenPGP public key (no v4 key packet)")
    return out


@dataclass(frozen=True)
class Verified:
    text: str  # the signed content
    fingerprints: tuple[str, ...]  # keys with a good, unexpired signature (signing key and primary)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalIOError(
            f"{name} not found: it checks and makes package repository signatures",
            hint="install gnupg (Debian/Ubuntu: apt-get install gnupg; RHEL: dnf install gnupg2)",
        )
    return path


def verify_clearsigned(signed: bytes, keys: Iterable[bytes], *, allowed: Iterable[str] = (), what: str) -> Verified:
    """Check an InRelease-style clear-signed file against `keys` with gpgv.

    At least one good signature by one of the keys is needed (with `allowed` fingerprints, by one of
    those), and no bad one. Returns the signed text."""
    gpgv = _tool(GPGV)
    allowed_set = {f.replace(" ", "").upper() for f in allowed}
    with tempfile.TemporaryDirectory(prefix="kvinstall-gpgv-") as tmp:
        keyring = Path(tmp) / "keyring.gpg"
        keyring.write_bytes(b"".join(dearmor(k) for k in keys))
        src = Path(tmp) / "signed"
        src.write_bytes(signed)
        out = Path(tmp) / "content"
        res = subprocess.run(
            [gpgv, "--homedir", tmp, "--status-fd", "1", "--keyring", str(keyring), "--output", str(out), str(src)],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
        status = res.stdout.decode("utf-8", "replace").splitlines()
        bad = [s for s in status if s.startswith("[GNUPG:] BADSIG")]
        stale = {s.split()[2].upper() for s in status if s.split()[1:2] in (["EXPKEYSIG"], ["REVKEYSIG"])}
        good: list[str] = []
        for s in status:
            parts = s.split()
            if parts[1:2] == ["VALIDSIG"] and len(parts) >= 3:
                fprs = [parts[2].upper(), parts[-1].upper()]
                if not any(f.endswith(k) for f in fprs for k in stale):
                    good += fprs
        if bad:
            raise IntegrityError(f"bad signature: {bad[0].removeprefix('[GNUPG:] ')}", where=what)
        if not good:
            detail = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise IntegrityError(
                "no valid signature by a trusted key" + (f" ({detail[-1]})" if detail else ""),
                where=what,
                hint="check the repository's key (signed-by / keyring) and its expiry",
            )
        if allowed_set and not allowed_set & set(good):
            raise IntegrityError(
                f"signed by {', '.join(sorted(set(good)))}, not by the pinned key {', '.join(sorted(allowed_set))}",
                where=what,
            )
        return Verified(out.read_text(errors="replace") if out.exists() else "", tuple(dict.fromkeys(good)))


class SigningKey:
    """A signing key in a private GnuPG home (`home`): made once, then reused.

    gpg starts an agent for secret-key operations; `close()` stops it (`gpgconf --kill`), so no
    process outlives the command that signed."""

    UID = "kvinstall site package repository <kvinstall@localhost>"

    def __init__(self, home: Path) -> None:
        self.home = home

    def _gpg(self, *args: str, data: bytes | None = None) -> bytes:
        gpg = _tool(GPG)
        res = subprocess.run(
            [gpg, "--homedir", str(self.home), "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback",
             "--passphrase", "", *args],
            input=data,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
        if res.returncode != 0:
            raise LocalIOError(
                f"gpg {args[0]} failed: {res.stderr.decode('utf-8', 'replace').strip()[:400]}", where=str(self.home)
            )
        return res.stdout

    def ensure(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)
        if not self._gpg("--list-secret-keys", "--with-colons").strip():
            self._gpg("--quick-generate-key", self.UID, "ed25519", "sign", "never")

    def public_key(self) -> bytes:
        """The public key, binary (what apt's signed-by and gpgv --keyring read)."""
        return self._gpg("--export", self.UID)

    def import_secret(self, key: bytes) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._gpg("--import", data=key)

    def clearsign(self, text: bytes) -> bytes:
        return self._gpg("--digest-algo", "SHA512", "--clearsign", data=text)

    def detach_sign(self, text: bytes) -> bytes:
        return self._gpg("--digest-algo", "SHA512", "--armor", "--detach-sign", data=text)

    def close(self) -> None:
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            subprocess.run(
                [gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"],
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )

    def __enter__(self) -> SigningKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
