"""Small OCI images and multi-arch indexes built in pure Python and pushed to a registry.

Everything is deterministic (tar entries with mtime 0 / uid 0, gzip with mtime 0), so the same content
gives the same digests in every run. Manifests are pushed as the exact bytes that were hashed (never
re-serialised).

Use
- ``build_image(files, arch=..., shared_layers=...) -> Image`` and ``build_index([Image, ...]) -> Index``
  build in memory; ``push_image(registry, repo, tag, image)`` / ``push_index(...)`` push with plain HTTP calls
  (``registry`` is a :class:`substrate.registries.Registry`).
- Fixture ``oci_images`` (session): a :class:`SeededImages` already pushed to ``registries.upstream``:
  ``.single`` (one linux/amd64 image, ``kvtest/single:v1``) and ``.multi`` (index of amd64 + arm64 sharing
  a base layer, ``kvtest/multi:v1``), each a :class:`Pushed` with ``.ref`` (``HOST/repo:tag``),
  ``.digest_ref`` (``HOST/repo@sha256:...``), ``.digest``, ``.repo``, ``.tag`` and the built object
  (``.image`` or ``.index``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

import pytest
import requests

from .registries import Registries, Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST,
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes
    digest: str = field(init=False)
    # the tar before gzip; the image config lists its digest as the layer's diff_id
    diff_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", sha256(self.data))

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def layer(files: dict[str, bytes]) -> Blob:
    """A gzip'd tar layer with the given path -> content files, byte-for-byte reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(tar_bytes)
    return Blob(OCI_LAYER_GZIP, gz.getvalue(), diff_id=sha256(tar_bytes))


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    arch: str
    os: str = "linux"

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": len(self.manifest),
                "platform": {"architecture": self.arch, "os": self.os}}

    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


@dataclass(frozen=True)
class Index:
    images: tuple[Image, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def build_image(files: dict[str, bytes], arch: str = "amd64", shared_layers: tuple[Blob, ...] = (),
                annotations: dict[str, str] | None = None) -> Image:
    """An image of ``shared_layers`` (e.g. a common base) plus one layer holding ``files``."""
    layers = (*shared_layers, layer(files))
    config_obj = {
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in layers]},
    }
    config = Blob(OCI_CONFIG, canonical_json(config_obj))
    manifest_obj: dict[str, object] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config.descriptor(), "layers": [b.descriptor() for b in layers],
    }
    if annotations:
        manifest_obj["annotations"] = annotations
    return Image(config, layers, canonical_json(manifest_obj), arch)


def build_index(images: list[Image]) -> Index:
    obj = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [i.descriptor() for i in images]}
    return Index(tuple(images), canonical_json(obj))


def push_blob(session: requests.Session, registry: Registry, repo: str, blob: Blob) -> None:
    base = f"{registry.url}/v2/{repo}/blobs"
    if session.head(f"{base}/{blob.digest}", timeout=10).status_code == 200:
        return
    r = session.post(f"{base}/uploads/", timeout=10)
    r.raise_for_status()
    location = r.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    sep = "&" if "?" in location else "?"
    r = session.put(f"{location}{sep}digest={blob.digest}", data=blob.data,
                    headers={"Content-Type": "application/octet-stream"}, timeout=30)
    r.raise_for_status()


def push_manifest(session: requests.Session, registry: Registry, repo: str, ref: str, data: bytes,
                  media_type: str) -> str:
    """PUT the raw manifest bytes; returns the digest the registry computed (== sha256 of ``data``)."""
    r = session.put(f"{registry.url}/v2/{repo}/manifests/{ref}", data=data,
                    headers={"Content-Type": media_type}, timeout=10)
    r.raise_for_status()
    digest = r.headers.get("Docker-Content-Digest", sha256(data))
    assert digest == sha256(data), f"registry changed the manifest digest: {digest} != {sha256(data)}"
    return digest


def push_image(registry: Registry, repo: str, tag: str, image: Image) -> str:
    with registry.session() as s:
        for b in image.blobs():
            push_blob(s, registry, repo, b)
        return push_manifest(s, registry, repo, tag, image.manifest, OCI_MANIFEST)


def push_index(registry: Registry, repo: str, tag: str, index: Index) -> str:
    with registry.session() as s:
        for img in index.images:
            for b in img.blobs():
                push_blob(s, registry, repo, b)
            push_manifest(s, registry, repo, img.digest, img.manifest, OCI_MANIFEST)
        return push_manifest(s, registry, repo, tag, index.manifest, OCI_INDEX)


def get_manifest(registry: Registry, repo: str, ref: str) -> tuple[bytes, str]:
    """The raw manifest bytes and media type stored under ``ref`` (tag or digest)."""
    with registry.session() as s:
        r = s.get(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=10)
        r.raise_for_status()
        return r.content, r.headers.get("Content-Type", "")


def get_blob(registry: Registry, repo: str, digest: str) -> bytes:
    with registry.session() as s:
        r = s.get(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=30)
        r.raise_for_status()
        return r.content


@dataclass(frozen=True)
class Pushed:
    registry: Registry
    repo: str
    tag: str
    digest: str
    image: Image | None = None
    index: Index | None = None

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{self.repo}:{self.tag}"

    @property
    def digest_ref(self) -> str:
        return f"{self.registry.host}/{self.repo}@{self.digest}"


@dataclass(frozen=True)
class SeededImages:
    single: Pushed
    multi: Pushed
    base_layer: Blob


def base_layer() -> Blob:
    return layer({"etc/kvtest-base": b"shared base layer\n"})


@pytest.fixture(scope="session")
def oci_images(registries: Registries) -> SeededImages:
    up = registries.upstream
    base = base_layer()
    single = build_image({"hello.txt": b"single\n"}, "amd64", (base,))
    amd = build_image({"arch.txt": b"amd64\n"}, "amd64", (base,))
    arm = build_image({"arch.txt": b"arm64\n"}, "arm64", (base,))
    index = build_index([amd, arm])
    return SeededImages(
        single=Pushed(up, "kvtest/single", "v1", push_image(up, "kvtest/single", "v1", single), image=single),
        multi=Pushed(up, "kvtest/multi", "v1", push_index(up, "kvtest/multi", "v1", index), index=index),
        base_layer=base,
    )
