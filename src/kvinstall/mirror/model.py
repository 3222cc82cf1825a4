"""Plain values in and out of the mirror API."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kvinstall.model import Artifact

# Media types of the artifacts kvinstall itself defines (charts use Helm's own).
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
KV_MANIFEST_LAYER = "application/vnd.kvinstall.manifest.v1+yaml"
KV_BINARY_LAYER = "application/vnd.kvinstall.binary.v1"
KV_ARTIFACT_TYPE = "application/vnd.kvinstall.artifact.v1"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

LOCK_NAME = "kvinstall-lock.json"
ARTIFACT_REPOSITORY_PREFIX = "kvinstall/artifacts"
DEFAULT_PLATFORMS: tuple[str, ...] = ("linux/amd64",)

Progress = Callable[[int, int], None]  # (bytes done, bytes total); done never decreases


def artifact_tag(artifact: Artifact) -> str:
    """An OCI tag for the artifact's version (tags allow [A-Za-z0-9_.-], at most 128 characters)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", artifact.version)[:128]
    return tag if tag and tag[0] not in ".-" else f"v{tag}"[:128]


def artifact_repository(artifact: Artifact) -> str:
    return f"{ARTIFACT_REPOSITORY_PREFIX}/{artifact.name}"


def artifact_oci_ref(artifact: Artifact, site_registry: str) -> str:
    """Where an artifact lives in the site registry (and a bundle): SITE/kvinstall/artifacts/NAME:VERSION."""
    return f"{site_registry.rstrip('/')}/{artifact_repository(artifact)}:{artifact_tag(artifact)}"


@dataclass(frozen=True)
class ImageItem:
    reference: str  # e.g. docker.io/kubeovn/kube-ovn:v1.16.2 or ...@sha256:...


@dataclass(frozen=True)
class FileItem:
    """A file stored as an OCI artifact at <name>:<tag> (e.g. charts/kube-ovn:v1.16.2)."""

    name: str  # repository path in the bundle and later in the site registry
    tag: str
    source: str  # http(s) URL or local path
    sha256: str  # hex or "sha256:<hex>"
    media_type: str  # layer media type, e.g. HELM_CHART_LAYER, KV_BINARY_LAYER
    filename: str | None = None  # org.opencontainers.image.title; defaults to the source's basename
    size: int | None = None  # lets progress know the total before the download starts

    @property
    def digest(self) -> str:
        return self.sha256 if self.sha256.startswith("sha256:") else f"sha256:{self.sha256}"


MirrorItem = ImageItem | FileItem | str  # a bare str is an image reference


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach one registry host (keyed by host[:port] as written in references).

    endpoint: pull this host's references from another registry (a site's pull-through cache or
    mirror, like containerd's `mirrors`): same repository path, tag and digest, other HOST[:PORT].
    The lock keeps the upstream names either way. ca_file/insecure/credentials apply to the
    registry actually contacted (the endpoint when one is set).
    """

    endpoint: str | None = None
    ca_file: str | None = None
    insecure: bool = False  # plain HTTP
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class LockEntry:
    reference: str  # as given (image reference or name:tag for files)
    kind: str  # "image" | "file"
    repository: str  # path under the site registry
    tag: str | None
    digest: str  # what the bundle holds (and the site registry will serve)
    media_type: str
    size: int
    upstream_digest: str  # differs from digest only when a platform filter rewrote an index

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "kind": self.kind,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
            "upstreamDigest": self.upstream_digest,
        }

    @staticmethod
    def from_json(d: dict[str, object]) -> LockEntry:
        tag = d.get("tag")
        return LockEntry(
            reference=str(d["reference"]),
            kind=str(d["kind"]),
            repository=str(d["repository"]),
            tag=str(tag) if tag is not None else None,
            digest=str(d["digest"]),
            media_type=str(d["mediaType"]),
            size=int(str(d["size"])),
            upstream_digest=str(d.get("upstreamDigest") or d["digest"]),
        )


@dataclass(frozen=True)
class BundleResult:
    path: Path
    entries: list[LockEntry]
    blobs: int
    bytes_total: int  # blob bytes in the bundle
    bytes_downloaded: int  # blob bytes received over the wire in this run
    bytes_reused: int  # blob bytes already present from an interrupted run


@dataclass(frozen=True)
class PushResult:
    registry: str
    entries: list[LockEntry]
    blobs_uploaded: int
    blobs_skipped: int  # already in the registry
    blobs_mounted: int  # linked from another repository without upload
    bytes_sent: int  # blob bytes sent over the wire, retries included
    manifests_put: int
    pushed: dict[str, str] = field(default_factory=dict)  # reference -> site reference@digest


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    entries: list[LockEntry]
    platforms: list[str]
    blobs: int
    bytes_total: int


@dataclass(frozen=True)
class BundleProblem:
    digest: str | None
    images: list[str]
    message: str

    def __str__(self) -> str:
        used = f" (used by {', '.join(self.images)})" if self.images else ""
        return f"{self.digest or 'bundle'}: {self.message}{used}"


class ProgressTracker:
    """Thread-safe, monotonic byte progress.

    Transfers report the position they reached in a blob; a retried transfer starts again from 0
    but only positions beyond the blob's high-water mark count, so bytes done never go backwards
    and never pass the total.
    """

    def __init__(self, total: int, callback: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._counted: dict[str, int] = {}
        self._cap: dict[str, int] = {}
        self._callback = callback
        self._lock = threading.Lock()

    def expect(self, key: str, size: int) -> None:
        self._cap[key] = size

    def reach(self, key: str, position: int) -> None:
        with self._lock:
            have = self._counted.get(key, 0)
            target = min(position, self._cap.get(key, position))
            if target <= have:
                return
            self._counted[key] = target
            self.done += target - have
            # Called under the lock so the callback sees (done, total) in order.
            if self._callback:
                self._callback(self.done, self.total)

    def complete(self, key: str) -> None:
        if key in self._cap:
            self.reach(key, self._cap[key])
