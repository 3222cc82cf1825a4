"""Host packages in a bundle (pure): which packages a config needs, dependency resolution, how
packages are named in the bundle, their lock records, and the index a site repository serves.

In the bundle each package is an OCI artifact with the .deb as its single layer, at
`kvinstall/packages/<os-release>:<name>` (one version per name and OS release; '+' in a name
becomes '_', which no Debian name contains), and each OS release has its Packages index at
`kvinstall/package-index/<os-release>:packages`. The lock's `packages` section pins every package
by name, version and sha256, and records what the config needed.

A bundle's lock is untrusted (see docs/security.md): its package records name paths on the jump host
(`mirror serve` writes <os-release>/pool/main/<name>/<filename>), so every field is checked before
use (`_check`): names, versions, architectures and file names in Debian's own alphabets, no path
separator anywhere, digests of 64 hex digits; a bad field is an IntegrityError naming it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvinstall.catalog.packages import PackageCatalog
from kvinstall.config.models import Config
from kvinstall.errors import IntegrityError
from kvinstall.mirror.debian import (
    Package,
    Relation,
    Spec,
    format_stanza,
    newest,
    packages_from_index,
    version_satisfies,
)

DEB_LAYER = "application/vnd.debian.binary-package"
INDEX_LAYER = "application/vnd.kvinstall.apt-packages.v1"
PACKAGE_PREFIX = "kvinstall/packages"
INDEX_PREFIX = "kvinstall/package-index"
INDEX_TAG = "packages"
# A site index lists only the packages of the lock (a few hundred stanzas, about 1 MiB); a bundle's
# index is read whole, so anything larger is refused unread.
MAX_INDEX = 32 << 20
# The suite and component of every repository `mirror serve` makes: one per OS release, below
# /<os-release>/ on the server.
SUITE = "kvinstall"
COMPONENT = "main"


# Debian policy's alphabets (names, versions, architectures); file names as pools hold them; OS
# release ids as the package catalog names them (debian-12, ubuntu-24.04).
_FIELD = {
    "distribution": re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"),
    "name": re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}"),
    "version": re.compile(r"[A-Za-z0-9.+~:_-]{1,128}"),
    "architecture": re.compile(r"[a-z0-9][a-z0-9-]{0,31}"),
    "filename": re.compile(r"[A-Za-z0-9][A-Za-z0-9+.~_%:-]{0,254}"),
    "sha256": re.compile(r"[0-9a-f]{64}"),
}


def _check(kind: str, value: object, field_path: str) -> str:
    """A lock field of the packages section, checked (see the module doc)."""
    text = value.removeprefix("sha256:").lower() if kind == "sha256" and isinstance(value, str) else value
    if not isinstance(text, str) or not _FIELD[kind].fullmatch(text) or ".." in text:
        raise IntegrityError(f"kvinstall-lock.json: {field_path}: {str(value)[:80]!r} is not a valid {kind}")
    return text


def package_repository(distribution: str) -> str:
    return f"{PACKAGE_PREFIX}/{distribution}"


def package_tag(name: str) -> str:
    return name.replace("+", "_")


def index_repository(distribution: str) -> str:
    return f"{INDEX_PREFIX}/{distribution}"


def pool_path(name: str, filename: str) -> str:
    return f"pool/{COMPONENT}/{name}/{filename}"


# -- what a config needs --------------------------------------------------------------------------


def needed_packages(config: Config, catalog: PackageCatalog) -> dict[str, list[Spec]]:
    """Per OS release of the config: KubeOne's packages for the cluster's Kubernetes version, plus the
    config's extra packages. Empty when the config names no OS release."""
    out: dict[str, list[Spec]] = {}
    hp = config.offline.host_packages
    for dist in hp.distributions:
        if dist not in catalog.distributions:
            continue  # the config checks name it
        entries = [*catalog.packages(dist, config.kubernetes.version), *hp.extra]
        out[dist] = list(dict.fromkeys(Spec.parse(e) for e in entries))
    return out


# -- resolution -----------------------------------------------------------------------------------


@dataclass
class Resolution:
    chosen: dict[str, Package] = field(default_factory=dict)  # name -> package
    missing: list[str] = field(default_factory=list)  # needed specs nothing provides (with why)
    unresolved: list[str] = field(default_factory=list)  # dependencies nothing provides
    required_by: dict[str, str] = field(default_factory=dict)  # name -> the package that pulled it in


class _Universe:
    def __init__(self, candidates: Iterable[Package]) -> None:
        self.by_name: dict[str, list[Package]] = {}
        self.providers: dict[str, list[Package]] = {}
        for p in candidates:
            self.by_name.setdefault(p.name, []).append(p)
            for prov in p.provides:
                self.providers.setdefault(prov.name, []).append(p)
        self.base = self._base()

    def _base(self) -> set[str]:
        """What every Debian system has: the Essential/required packages and what they depend on
        (a minimal debootstrap). Unversioned dependencies on these are not carried; versioned ones
        are (a host may need the newer version)."""
        base = {n for n, ps in self.by_name.items() if any(p.essential for p in ps)}
        todo = list(base)
        while todo:
            pkg = newest(self.by_name.get(todo.pop(), []))
            for group in pkg.depends if pkg else []:
                name = group[0].name
                if name in self.by_name and name not in base:
                    base.add(name)
                    todo.append(name)
        return base

    def best(self, rel: Relation) -> Package | None:
        own = [
            p
            for p in self.by_name.get(rel.name, [])
            if rel.op is None or version_satisfies(p.version, rel.op, rel.version or "")
        ]
        if own:
            return newest(own)
        if rel.op is None:  # a virtual package satisfies only unversioned relations (mostly)
            return newest(self.providers.get(rel.name, []))
        return None


def _satisfied(group: Sequence[Relation], chosen: Mapping[str, Package], u: _Universe) -> bool:
    for rel in group:
        have = chosen.get(rel.name)
        if have is not None and (
            rel.op is None or version_satisfies(have.version, rel.op, rel.version or "")
        ):
            return True
        if rel.op is None and rel.name in u.base:
            return True
        if rel.op is None and any(prov.name == rel.name for p in chosen.values() for prov in p.provides):
            return True
    return False


def resolve(specs: Sequence[Spec], candidates: Iterable[Package]) -> Resolution:
    """The newest candidate of every spec, and (breadth first) of every dependency that the chosen
    packages or the base system do not already satisfy; the first satisfiable alternative wins,
    as apt's resolver prefers it."""
    u = _Universe(candidates)
    res = Resolution()
    queue: list[tuple[Package, str]] = []
    for spec in specs:
        matching = [p for p in u.by_name.get(spec.name, []) if spec.matches(p)]
        best = newest(matching)
        if best is None:
            others = sorted({p.version for p in u.by_name.get(spec.name, [])})
            why = f"only {', '.join(others)} available" if others else "in none of the sources"
            res.missing.append(f"{spec}: {why}")
            continue
        have = res.chosen.get(best.name)
        if have is None:
            res.chosen[best.name] = best
            queue.append((best, ""))
    while queue:
        pkg, _ = queue.pop(0)
        for group in pkg.depends:
            if _satisfied(group, res.chosen, u):
                continue
            pick = next((p for p in (u.best(r) for r in group) if p is not None), None)
            if pick is None:
                res.unresolved.append(f"{pkg.name} {pkg.version} needs {' | '.join(map(str, group))}")
                continue
            if pick.name not in res.chosen:
                res.chosen[pick.name] = pick
                res.required_by[pick.name] = pkg.name
                queue.append((pick, pkg.name))
    return res


def missing_packages(needed: Iterable[Spec], available: Iterable[Package]) -> list[str]:
    """The needed specs no available package satisfies, each with what is there instead."""
    by_name: dict[str, list[str]] = {}
    for p in available:
        by_name.setdefault(p.name, []).append(p.version)
    out = []
    for spec in needed:
        versions = by_name.get(spec.name, [])
        if not any(spec.matches(Package(spec.name, v, "", {})) for v in versions):
            out.append(f"{spec}" + (f" (has {', '.join(sorted(versions))})" if versions else ""))
    return out


# -- lock records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    filename: str  # the .deb's file name
    sha256: str  # hex
    size: int
    source: str  # where it came from (repository URL or local path)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any], where: str = "package") -> LockedPackage:
        if not isinstance(d, Mapping):
            raise IntegrityError(f"kvinstall-lock.json: {where}: expected an object")
        size = d.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise IntegrityError(
                f"kvinstall-lock.json: {where}.size: {str(size)[:40]!r} is not a size in bytes"
            )
        return LockedPackage(
            name=_check("name", d.get("name"), f"{where}.name"),
            version=_check("version", d.get("version"), f"{where}.version"),
            architecture=_check("architecture", d.get("architecture"), f"{where}.architecture"),
            filename=_check("filename", d.get("filename"), f"{where}.filename"),
            sha256=_check("sha256", d.get("sha256"), f"{where}.sha256"),
            size=size,
            source=d["source"] if isinstance(d.get("source"), str) else "",
        )


@dataclass(frozen=True)
class PackageSet:
    """The packages of one OS release in a bundle."""

    distribution: str
    family: str
    architecture: str
    needed: tuple[str, ...]  # the specs the config needed when the bundle was made
    index_sha256: str  # of the Packages index in the bundle
    packages: tuple[LockedPackage, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "architecture": self.architecture,
            "needed": list(self.needed),
            "index": {
                "reference": f"{index_repository(self.distribution)}:{INDEX_TAG}",
                "sha256": self.index_sha256,
            },
            "packages": [p.to_json() for p in self.packages],
        }

    @staticmethod
    def from_json(distribution: str, d: Mapping[str, Any]) -> PackageSet:
        distribution = _check("distribution", distribution, "packages")
        where = f"packages.{distribution}"
        if not isinstance(d, Mapping):
            raise IntegrityError(f"kvinstall-lock.json: {where}: expected an object")
        index, packages, needed = d.get("index"), d.get("packages", []), d.get("needed", [])
        if not isinstance(index, Mapping):
            raise IntegrityError(f"kvinstall-lock.json: {where}.index: expected an object")
        if not isinstance(packages, list) or not isinstance(needed, list):
            raise IntegrityError(f"kvinstall-lock.json: {where}.packages and .needed: expected lists")
        architecture = d.get("architecture", "")
        locked = tuple(LockedPackage.from_json(p, f"{where}.packages[{i}]") for i, p in enumerate(packages))
        twice = sorted(n for n, count in Counter(p.name for p in locked).items() if count > 1)
        if twice:  # one pool path and one artifact tag per name
            raise IntegrityError(f"kvinstall-lock.json: {where}.packages: {', '.join(twice)} listed twice")
        return PackageSet(
            distribution=distribution,
            family=str(d.get("family", "deb")),
            architecture=_check("architecture", architecture, f"{where}.architecture")
            if architecture
            else "",
            needed=tuple(_needed(n, f"{where}.needed[{i}]") for i, n in enumerate(needed)),
            index_sha256=_check("sha256", index.get("sha256"), f"{where}.index.sha256"),
            packages=locked,
        )

    def as_packages(self) -> list[Package]:
        return [Package(p.name, p.version, p.architecture, {}) for p in self.packages]


def _needed(value: object, field_path: str) -> str:
    """What the config needed, as recorded: shown to the operator, so printable and short."""
    if not isinstance(value, str) or not value.isprintable() or not 0 < len(value) <= 256:
        raise IntegrityError(f"kvinstall-lock.json: {field_path}: {str(value)[:80]!r} is not a package spec")
    return value


def package_sets(lock: Mapping[str, Any]) -> list[PackageSet]:
    """The package sets of a bundle's lock (none in a bundle made without host packages)."""
    raw = lock.get("packages") or {}
    if not isinstance(raw, dict):
        raise IntegrityError("kvinstall-lock.json: packages: expected an object")
    return [PackageSet.from_json(str(dist), d) for dist, d in sorted(raw.items())]


# -- the index a site repository serves -----------------------------------------------------------


_INDEX_FIELDS_FIRST = ("Package", "Version", "Architecture")
_DROPPED = {"Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5"}


def index_stanza(pkg: Package, locked: LockedPackage) -> dict[str, str]:
    """The package's stanza as the site index lists it: upstream fields, our pool path, its digest."""
    fields = {k: pkg.fields[k] for k in _INDEX_FIELDS_FIRST if k in pkg.fields}
    fields.update({k: v for k, v in pkg.fields.items() if k not in fields and k not in _DROPPED})
    fields["Filename"] = pool_path(locked.name, locked.filename)
    fields["Size"] = str(locked.size)
    fields["SHA256"] = locked.sha256
    return fields


def packages_index(stanzas: Iterable[Mapping[str, str]]) -> bytes:
    ordered = sorted(stanzas, key=lambda s: (s.get("Package", ""), s.get("Version", "")))
    return "\n".join(format_stanza(s) for s in ordered).encode()


def index_packages(index: bytes) -> list[Package]:
    return packages_from_index(index.decode("utf-8", "replace"))
