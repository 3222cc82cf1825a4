"""The host package catalog (packages.yaml beside this module): per OS family the packages KubeOne
installs, per OS release the repositories they come from. Read into plain values; no I/O besides
reading the file (KVINSTALL_PACKAGES names a site's own copy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

FAMILIES = ("deb", "rpm")


@dataclass(frozen=True)
class RepoKey:
    """How a repository's index signature is checked: a local keyring, or a key fetched from a URL
    that must have one of `fingerprints` (an empty tuple: any key the URL gives)."""

    keyring: str | None = None
    url: str | None = None
    fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Repository:
    url: str  # base URL (ends with '/')
    suite: str  # "/" (or ending in '/'): a flat repository, no components
    components: tuple[str, ...] = ()
    key: RepoKey | None = None  # None: trusted without a signature (only when asked for)

    @property
    def flat(self) -> bool:
        return self.suite.endswith("/")

    def describe(self) -> str:
        return f"{self.url} {self.suite} {' '.join(self.components)}".strip()


@dataclass(frozen=True)
class Distribution:
    name: str  # e.g. debian-12
    family: str  # deb | rpm
    architecture: str
    repositories: tuple[Repository, ...]


@dataclass(frozen=True)
class PackageCatalog:
    families: dict[str, tuple[str, ...]]  # family -> package entries with {kubernetes}/{minor}
    distributions: dict[str, Distribution]

    def packages(self, distribution: str, kubernetes: str) -> list[str]:
        """The package entries of the distribution's family for a Kubernetes version (v1.34.4)."""
        fam = self.distributions[distribution].family
        return [expand(p, kubernetes) for p in self.families.get(fam, ())]

    def repositories(self, distribution: str, kubernetes: str) -> list[Repository]:
        out = []
        for r in self.distributions[distribution].repositories:
            key = r.key
            if key is not None and key.url:
                key = RepoKey(key.keyring, expand(key.url, kubernetes), key.fingerprints)
            out.append(Repository(expand(r.url, kubernetes), r.suite, r.components, key))
        return out


def expand(text: str, kubernetes: str) -> str:
    v = kubernetes.removeprefix("v")
    minor = "v" + ".".join(v.split(".")[:2])
    return text.replace("{kubernetes}", v).replace("{minor}", minor)


def _repo(raw: dict[str, Any]) -> Repository:
    key: RepoKey | None = None
    if raw.get("keyring"):
        key = RepoKey(keyring=str(raw["keyring"]))
    elif isinstance(raw.get("key"), dict):
        k = raw["key"]
        key = RepoKey(url=str(k["url"]), fingerprints=tuple(str(f).replace(" ", "").upper() for f in k.get("fingerprints") or ()))
    url = str(raw["url"])
    return Repository(
        url=url if url.endswith("/") else url + "/",
        suite=str(raw["suite"]),
        components=tuple(str(c) for c in raw.get("components") or ()),
        key=key,
    )


def parse_package_catalog(data: dict[str, Any]) -> PackageCatalog:
    families = {str(f): tuple(str(p) for p in spec.get("packages") or ()) for f, spec in data["families"].items()}
    dists = {}
    for name, spec in data["distributions"].items():
        family = str(spec["family"])
        if family not in FAMILIES:
            raise ValueError(f"{name}: family {family!r} is not one of {', '.join(FAMILIES)}")
        dists[str(name)] = Distribution(
            name=str(name),
            family=family,
            architecture=str(spec["architecture"]),
            repositories=tuple(_repo(r) for r in spec.get("repositories") or ()),
        )
    return PackageCatalog(families=families, distributions=dists)


@lru_cache(maxsize=4)
def _load(path: str | None) -> PackageCatalog:
    from ruamel.yaml import YAML

    from kvinstall.errors import ConfigError, LocalIOError

    if path is None:
        text = resources.files("kvinstall.catalog").joinpath("packages.yaml").read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise LocalIOError(f"cannot read the package catalog: {exc.strerror or exc}", where=path) from exc
    from ruamel.yaml.error import YAMLError

    try:
        return parse_package_catalog(YAML(typ="safe").load(text))
    except (KeyError, TypeError, AttributeError, ValueError, YAMLError) as exc:
        raise ConfigError(
            [], message=f"{path or 'packages.yaml'}: not a valid package catalog ({type(exc).__name__}: {exc})"
        ) from exc


def load_package_catalog() -> PackageCatalog:
    """The package catalog shipped with kvinstall, or the file KVINSTALL_PACKAGES names."""
    return _load(os.environ.get("KVINSTALL_PACKAGES") or None)
