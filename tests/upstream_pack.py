"""The real upstream release artifacts the tests run on, and how the tests serve them.

The pack lives next to the repository (`../shared/upstream`, see its PROVENANCE.md: Kube-OVN, Kyverno,
cert-manager, MetalLB and Longhorn charts, KubeVirt and CDI operator manifests and CRs, Multus daemonset
manifests, each from its upstream tag); `KVTEST_UPSTREAM`
names another place. Nothing here is hand-written: a test that needs what the real world cannot
give (a broken chart, a digest mismatch) makes it itself and says so.

Served the way production fetches them (`site_files`): a chart is found through its repository's
index.yaml and downloaded from the URL the index gives; a manifest is a plain file at its release
URL. The tests' HTTPS server stands in for the upstream hosts: every upstream URL keeps its host
and path under the server's base URL (https://github.com/kubevirt/... ->
https://127.0.0.1:PORT/github.com/kubevirt/...), and `pinned_catalog` points the shipped catalog
there, each artifact pinned to the pack file's sha256 (what a site does with KVINSTALL_CATALOG).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kvinstall.catalog import Catalog, Release, load_catalog
from kvinstall.model import Artifact

REPO = Path(__file__).resolve().parents[1]


@cache
def pack_dir() -> Path:
    """The pack: $KVTEST_UPSTREAM, else shared/upstream beside the repository (../shared/upstream,
    as CI clones it) or beside one of its parent folders (a git worktree in a subfolder)."""
    env = os.environ.get("KVTEST_UPSTREAM")
    candidates = [Path(env)] if env else [p / "shared" / "upstream" for p in REPO.parents]
    for path in candidates:
        if (path / "PROVENANCE.md").is_file():
            return path
    raise RuntimeError(f"the upstream artifact pack is not at {candidates[0]} (set KVTEST_UPSTREAM)")


# Catalog component -> its folder in the pack.
_FOLDER = {
    "kubeovn": "kube-ovn",
    "kubevirt": "kubevirt",
    "cdi": "cdi",
    "kyverno": "kyverno",
    "certmanager": "cert-manager",
    "multus": "multus",
    "metallb": "metallb",
    "longhorn": "longhorn",
}


def pack_path(component: str, release: Release, artifact: Artifact) -> Path:
    """The pack file of one catalog artifact: charts under their chart version (Kyverno) or the release
    version (the others), manifests under the release version, by the upstream file name."""
    folder = pack_dir() / _FOLDER[component]
    if artifact.kind == "chart":
        by_chart = folder / artifact.version
        return (by_chart if by_chart.is_dir() else folder / release.version) / f"{artifact.chart}-{artifact.version}.tgz"
    return folder / release.version / artifact.source.rsplit("/", 1)[-1]


@cache
def read(path: Path) -> bytes:
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_artifacts(catalog: Catalog | None = None) -> list[tuple[str, Release, Artifact, Path]]:
    """Every component artifact of the catalog with its pack file (component, release, artifact, path)."""
    catalog = catalog or load_catalog()
    out = []
    for name, product in catalog.components.items():
        if name not in _FOLDER:
            continue
        for release in product.releases.values():
            for artifact in release.artifacts:
                out.append((name, release, artifact, pack_path(name, release, artifact)))
    return out


def artifact_bytes(component: str, version: str) -> dict[str, bytes]:
    """The pack's bytes of a release's artifacts, by artifact name (for MemorySource and friends)."""
    release = load_catalog().component(component, version)
    return {a.name: read(pack_path(component, release, a)) for a in release.artifacts}


def upstream_file(component: str, version: str, name: str) -> bytes:
    """Any file of the pack by component, release folder and file name (e.g. cdi-cr.yaml)."""
    return read(pack_dir() / _FOLDER[component] / version / name)


def documents(data: bytes) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(data, Loader=yaml.CSafeLoader) if d]


def chart_file(chart: bytes, name: str) -> bytes:
    """One file of a chart archive, by its path below the chart's folder (e.g. values.yaml)."""
    with tarfile.open(fileobj=io.BytesIO(chart), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name.split("/", 1)[-1] == name and member.name.count("/") == name.count("/") + 1:
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
    raise KeyError(name)


# --- serving ----------------------------------------------------------------------------------------


def _served_path(url: str) -> str:
    """Where the test server serves an upstream URL: /HOST/PATH."""
    parts = urlsplit(url)
    return f"/{parts.netloc}{parts.path}"


def site_files(catalog: Catalog | None = None) -> dict[str, bytes]:
    """Every artifact of the catalog's component releases, as the test server serves them: chart
    repositories (index.yaml listing every version of the pack, and the archives), manifest URLs."""
    files: dict[str, bytes] = {}
    indexes: dict[str, dict[str, Any]] = {}
    for _name, _release, artifact, path in pack_artifacts(catalog):
        data = read(path)
        if artifact.kind == "chart":
            repo = _served_path(artifact.source).rstrip("/")
            meta = yaml.load(chart_file(data, "Chart.yaml"), Loader=yaml.CSafeLoader)
            index = indexes.setdefault(repo, {"apiVersion": "v1", "entries": {}})
            index["entries"].setdefault(meta["name"], []).append({
                "apiVersion": meta.get("apiVersion", "v2"),
                "name": meta["name"],
                "version": str(meta["version"]),
                "appVersion": str(meta.get("appVersion", "")),
                "description": meta.get("description", ""),
                "digest": sha256(data),
                "urls": [path.name],
            })  # fmt: skip
            files[f"{repo}/{path.name}"] = data
        else:
            files[_served_path(artifact.source)] = data
    for repo, index in indexes.items():
        files[f"{repo}/index.yaml"] = yaml.safe_dump(index, sort_keys=False).encode()
    return files


def pinned_release(release: Release, component: str, base_url: str) -> Release:
    artifacts = tuple(
        dataclasses.replace(
            a, source=base_url + _served_path(a.source), sha256=sha256(read(pack_path(component, release, a)))
        )
        for a in release.artifacts
    )
    return dataclasses.replace(release, artifacts=artifacts)


def pinned_catalog(base_url: str, catalog: Catalog | None = None) -> Catalog:
    """The catalog with every pack artifact at the test server and pinned to the pack file's sha256."""
    catalog = catalog or load_catalog()
    components = dict(catalog.components)
    for name, product in catalog.components.items():
        if name in _FOLDER:
            releases = {v: pinned_release(r, name, base_url) for v, r in product.releases.items()}
            components[name] = dataclasses.replace(product, releases=releases)
    return dataclasses.replace(catalog, components=components)


def pinned_catalog_data(base_url: str) -> dict[str, Any]:
    """The shipped catalog.yaml as data, with every pack artifact pointed at the test server and
    pinned (the form KVINSTALL_CATALOG reads)."""
    from importlib import resources

    data = yaml.safe_load(resources.files("kvinstall.catalog").joinpath("catalog.yaml").read_text())
    catalog = load_catalog()
    for name in _FOLDER:
        for version, spec in data["components"][name]["versions"].items():
            release = catalog.component(name, version)
            for raw, artifact in zip(spec.get("artifacts", []), release.artifacts, strict=True):
                raw["source"] = base_url + _served_path(artifact.source)
                raw["sha256"] = sha256(read(pack_path(name, release, artifact)))
    return data


class PackSource:
    """An ArtifactSource over the pack (no network): the bytes of a catalog artifact, by name and
    version, checked against the artifact's pinned digest like the real cache checks them. For unit
    tests; integration and e2e tests fetch through the real ArtifactCache from the HTTPS server."""

    def __init__(self, catalog: Catalog | None = None, *, missing: tuple[str, ...] = ()) -> None:
        self.files = {(a.name, a.version): p for _n, _r, a, p in pack_artifacts(catalog)}
        self.missing = missing  # artifact names to report as unavailable
        self.requested: list[str] = []

    def get(self, artifact: Artifact) -> bytes | None:
        from kvinstall.errors import IntegrityError

        self.requested.append(artifact.name)
        path = self.files.get((artifact.name, artifact.version))
        if path is None or artifact.name in self.missing:
            return None
        data = read(path)
        if artifact.sha256 and sha256(data) != artifact.sha256:
            raise IntegrityError("digest mismatch", where=f"artifact {artifact.name}")
        return data


def dump_documents(objects: list[dict[str, Any]]) -> bytes:
    return yaml.safe_dump_all(objects, sort_keys=False).encode()


class MemorySource:
    """An ArtifactSource over given bytes by artifact name, checking a pinned digest like the real
    cache: for the tests that need bytes the real world does not give (a tampered or cut manifest)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def get(self, artifact: Artifact) -> bytes | None:
        from kvinstall.errors import IntegrityError

        data = self.files.get(artifact.name)
        if data is not None and artifact.sha256 and sha256(data) != artifact.sha256:
            raise IntegrityError("digest mismatch", where=f"artifact {artifact.name}")
        return data
