#!/usr/bin/env python3
"""A partial Debian mirror for the host-package tests, fetched once by hack/ci-setup.sh.

The tests must not reach the internet, so they serve this folder on 127.0.0.1 (tests/substrate/debs.py)
and kvinstall collects host packages from it exactly as from deb.debian.org: it checks the real
signature of bookworm's InRelease with the machine's debian-archive-keyring, the Packages index
against the signed digests, and every .deb against the index.

Layout under DEST (the default is ~/.cache/kvinstall-test/debian-bookworm):
  mirror/dists/bookworm/InRelease                          as published (signed)
  mirror/dists/bookworm/main/binary-amd64/Packages.gz      the index kvinstall reads (gzip first)
  mirror/pool/main/...                                     the .debs of the packages' closure
  local-debs/                                              copies of LOCAL's .debs (for --package-dir)
  stamp.json                                               the recipe and the InRelease's Date

The closure follows Depends and Pre-Depends with every alternative that exists (real or provided),
so it holds at least what kvinstall's resolver picks (the first satisfiable alternative, and not what
the base system already has). Stdlib only: it runs before the Python package is installed.
Bounded: every request has a timeout and a few retries. Idempotent: a stamp whose recipe matches and
whose files are all there means nothing to do; files already present with the right digest are kept.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

UPSTREAM = "http://deb.debian.org/debian"
SUITE, COMPONENT, ARCH = "bookworm", "main", "amd64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# What the tests collect: the test catalog's packages, and the ones they take as local .deb files.
PACKAGES = ("containerd", "conntrack", "socat")
LOCAL = ("ethtool", "libmnl0")
INDEX = f"{COMPONENT}/binary-{ARCH}/Packages.gz"
RECIPE = {"version": 1, "upstream": UPSTREAM, "suite": SUITE, "index": INDEX, "packages": list(PACKAGES),
          "local": list(LOCAL)}
TIMEOUT, RETRIES = 60, 3


def fetch(url: str) -> bytes:
    last: Exception | None = None
    for attempt in range(RETRIES):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise SystemExit(f"debian-mirror: {url} answered HTTP {exc.code}") from exc
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(2 * (attempt + 1))  # a short pause before trying a busy mirror again
    raise SystemExit(f"debian-mirror: cannot download {url} after {RETRIES} tries: {last}")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fetch_verified(url: str, path: Path, sha256: str, size: int) -> None:
    """Into path, unless it is already there with this digest; refused if the digest differs."""
    if path.is_file() and path.stat().st_size == size and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return
    data = fetch(url)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256 or len(data) != size:
        raise SystemExit(f"debian-mirror: {url}: sha256 {got} ({len(data)} bytes), the signed index says "
                         f"{sha256} ({size} bytes)")
    write(path, data)


def stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            out.append(fields)
    return out


def alternatives(field: str) -> list[list[str]]:
    """`a (>= 1) | b:any, c` -> [[a, b], [c]] (names only)."""
    return [[re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
            for group in field.split(",") if group.strip()]


def closure(roots: list[str], index: list[dict[str, str]]) -> list[dict[str, str]]:
    by_name: dict[str, list[dict[str, str]]] = {}
    providers: dict[str, list[str]] = {}
    for st in index:
        by_name.setdefault(st["Package"], []).append(st)
        for group in alternatives(st.get("Provides", "")):
            providers.setdefault(group[0], []).append(st["Package"])
    missing = [r for r in roots if r not in by_name]
    if missing:
        raise SystemExit(f"debian-mirror: not in {SUITE} {INDEX}: {', '.join(missing)}")
    seen: set[str] = set()
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for st in by_name[name]:
            for group in alternatives(st.get("Pre-Depends", "") + "," + st.get("Depends", "")):
                for alt in group:
                    queue += [alt] if alt in by_name else providers.get(alt, [])
    return [st for name in sorted(seen) for st in by_name[name]]


def build(dest: Path) -> dict[str, object]:
    mirror = dest / "mirror"
    dists = f"dists/{SUITE}/"
    inrelease = fetch(f"{UPSTREAM}/{dists}InRelease")
    # The same check kvinstall makes: the clear-signed text must carry a good signature of a Debian key.
    res = subprocess.run(["gpgv", "--keyring", KEYRING, "--output", "-"], input=inrelease, capture_output=True,
                         timeout=60, check=False)
    if res.returncode != 0:
        raise SystemExit(f"debian-mirror: {dists}InRelease: no good signature from {KEYRING}: "
                         f"{res.stderr.decode(errors='replace')}")
    release = stanzas(res.stdout.decode("utf-8", "replace"))[0]
    digests = {parts[2]: (parts[0], int(parts[1])) for parts in
               (line.split() for line in release.get("SHA256", "").splitlines()) if len(parts) == 3}
    if INDEX not in digests:
        raise SystemExit(f"debian-mirror: the signed Release lists no {INDEX}")
    write(mirror / dists / "InRelease", inrelease)
    sha, size = digests[INDEX]
    fetch_verified(f"{UPSTREAM}/{dists}{INDEX}", mirror / dists / INDEX, sha, size)
    index = stanzas(gzip.decompress((mirror / dists / INDEX).read_bytes()).decode("utf-8", "replace"))
    debs = closure([*PACKAGES, *LOCAL], index)
    total = 0
    for st in debs:
        fetch_verified(f"{UPSTREAM}/{st['Filename']}", mirror / st["Filename"], st["SHA256"], int(st["Size"]))
        total += int(st["Size"])
    local = dest / "local-debs"
    local.mkdir(parents=True, exist_ok=True)
    for st in debs:
        if st["Package"] in LOCAL:
            src = mirror / st["Filename"]
            write(local / src.name, src.read_bytes())
    print(f"debian-mirror: {len(debs)} packages ({total >> 20} MiB) of {SUITE} {release.get('Date', '?')}",
          file=sys.stderr)
    files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != "stamp.json")
    return {"recipe": RECIPE, "date": release.get("Date", ""),
            "files": {str(p.relative_to(dest)): p.stat().st_size for p in files}}


def cached(dest: Path) -> bool:
    """The stamp's recipe is this one and every file it lists is still there (a few stat calls)."""
    try:
        stamp = json.loads((dest / "stamp.json").read_text())
        return bool(stamp["recipe"] == RECIPE and stamp["files"] and all(
            (dest / name).stat().st_size == size for name, size in stamp["files"].items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", type=Path,
                        default=Path.home() / ".cache" / "kvinstall-test" / "debian-bookworm")
    dest = parser.parse_args().dest
    if cached(dest):
        print(f"debian-mirror: cached in {dest}", file=sys.stderr)
        return
    (dest / "stamp.json").unlink(missing_ok=True)
    write(dest / "stamp.json", json.dumps(build(dest), indent=2).encode() + b"\n")
    print(dest)


if __name__ == "__main__":
    main()
