"""Debian package metadata (pure): deb822 stanzas, version order, relations, and the repository
index files apt reads (Packages, Release).

Version order is dpkg's (epoch, upstream, revision; '~' sorts before everything, even the end);
relations are the Depends/Pre-Depends syntax (`a (>= 1) | b:any, c`). Nothing here does I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

# -- deb822 ---------------------------------------------------------------------------------------


def parse_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Paragraphs of `Field: value` lines (continuation lines start with a space or tab).

    Field names keep their case as written; values keep their continuation lines joined by
    newlines, so a stanza can be written back unchanged."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line
            continue
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue  # not a field line: ignored, as apt does
        last = name.strip()
        fields[last] = value.strip()
    if fields:
        yield fields


def format_stanza(fields: Mapping[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


# -- versions -------------------------------------------------------------------------------------


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, sep, rest = v.partition(":")
    if not sep:
        epoch, rest = "0", v
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return int(epoch) if epoch.isdigit() else 0, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 as dpkg --compare-versions orders a and b."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


_OPS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "<": lambda c: c <= 0,  # obsolete spelling of <=
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">": lambda c: c >= 0,  # obsolete spelling of >=
    ">>": lambda c: c > 0,
}


def version_satisfies(version: str, op: str, wanted: str) -> bool:
    return bool(_OPS[op](_sign(compare_versions(version, wanted))))


# -- relations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


_RELATION = re.compile(r"^([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?")


def parse_relations(text: str) -> list[list[Relation]]:
    """`a (>= 1) | b:any, c [amd64] <!nocheck>` -> [[a>=1, b], [c]] (arch and profile restrictions
    are dropped: an index lists the relations of one architecture already)."""
    out: list[list[Relation]] = []
    for group in text.split(","):
        alts: list[Relation] = []
        for alt in group.split("|"):
            m = _RELATION.match(alt.strip())
            if m:
                alts.append(Relation(m.group(1), m.group(2), m.group(3)))
        if alts:
            out.append(alts)
    return out


# -- packages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """One binary package as an index (or a .deb's control file) describes it."""

    name: str
    version: str
    architecture: str
    fields: Mapping[str, str]  # the whole stanza, as written upstream (Filename relative to its repo)

    @property
    def sha256(self) -> str:
        return self.fields.get("SHA256", "").lower()

    @property
    def size(self) -> int:
        return int(self.fields.get("Size", "0") or 0)

    @property
    def filename(self) -> str:
        return self.fields.get("Filename", "")

    @property
    def depends(self) -> list[list[Relation]]:
        rel: list[list[Relation]] = []
        for key in ("Pre-Depends", "Depends"):
            if key in self.fields:
                rel += parse_relations(self.fields[key])
        return rel

    @property
    def provides(self) -> list[Relation]:
        return [alts[0] for alts in parse_relations(self.fields.get("Provides", ""))]

    @property
    def essential(self) -> bool:
        return self.fields.get("Essential", "").lower() == "yes" or self.fields.get("Priority") == "required"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.name, self.version, self.architecture


def packages_from_index(text: str) -> list[Package]:
    out = []
    for st in parse_stanzas(text):
        if "Package" in st and "Version" in st:
            out.append(Package(st["Package"], st["Version"], st.get("Architecture", "all"), st))
    return out


@dataclass(frozen=True)
class Spec:
    """A package the hosts need: a name and optionally a version pattern (apt's `name=1.34.4-*`)."""

    name: str
    version: str | None = None  # fnmatch pattern

    def matches(self, pkg: Package) -> bool:
        return pkg.name == self.name and (self.version is None or fnmatch.fnmatchcase(pkg.version, self.version))

    def __str__(self) -> str:
        return f"{self.name}={self.version}" if self.version else self.name

    @staticmethod
    def parse(text: str) -> Spec:
        name, sep, version = text.strip().partition("=")
        if not re.match(r"^[a-z0-9][a-z0-9+.-]*$", name) or (sep and not version.strip()):
            raise ValueError(f"{text!r} is not a package name with an optional =VERSION pattern")
        return Spec(name, version.strip() or None)


def newest(candidates: Iterable[Package]) -> Package | None:
    best: Package | None = None
    for p in candidates:
        if best is None or compare_versions(p.version, best.version) > 0:
            best = p
    return best


# -- repository index files -----------------------------------------------------------------------


def parse_release(text: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a Release/InRelease file: path -> (sha256, size)."""
    out: dict[str, tuple[str, int]] = {}
    for st in parse_stanzas(text):
        for line in st.get("SHA256", "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                out[parts[2]] = (parts[0].lower(), int(parts[1]))
    return out


def release_fields(text: str) -> dict[str, str]:
    return next(parse_stanzas(text), {})


def release_file(
    *, suite: str, components: Iterable[str], architectures: Iterable[str], date: str, files: Mapping[str, bytes]
) -> str:
    """A Release file listing `files` (path relative to dists/SUITE -> content) by SHA256 and size."""
    import hashlib

    lines = [
        "Origin: kvinstall",
        "Label: kvinstall",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {date}",
        f"Architectures: {' '.join(architectures)}",
        f"Components: {' '.join(components)}",
        "Acquire-By-Hash: no",
        "SHA256:",
    ]
    for path in sorted(files):
        data = files[path]
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>12} {path}")
    return "\n".join(lines) + "\n"
