"""What an offline site needs, from the desired state: every image (catalog and rendered objects,
KubeOne's own for the Kubernetes version), every chart, manifest and binary.

The list is always made from the upstream view of the config (plan.desired.desire_upstream): an offline
config renders its images at the site registry, but a bundle is made from, and its lock names, the
upstream references (docker.io/..., quay.io/...) that the offline render maps to the site.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from kvinstall.config.models import Config
from kvinstall.mirror.model import (
    HELM_CHART_LAYER,
    KV_BINARY_LAYER,
    KV_MANIFEST_LAYER,
    FileItem,
    MirrorItem,
    artifact_repository,
    artifact_tag,
)
from kvinstall.model import Artifact, DesiredState

_LAYER = {
    "chart": HELM_CHART_LAYER,
    "url": KV_MANIFEST_LAYER,
    "binary": KV_BINARY_LAYER,
    "oci": KV_BINARY_LAYER,
}


@dataclass(frozen=True)
class Needed:
    kind: str  # image | chart | manifest | binary
    reference: str  # image reference, or the artifact's upstream source
    digest: str | None
    component: str


def needed(desired: DesiredState) -> list[Needed]:
    from kvinstall.render.images import images_in, normalize_image

    out: dict[str, Needed] = {}

    def image(ref: str, component: str) -> None:
        # One entry per image, however it is written (nginx, docker.io/library/nginx).
        out.setdefault(normalize_image(ref), Needed("image", ref, _digest_of(ref), component))

    for img in desired.kubernetes_images:
        image(img, "kubernetes")
    for comp in desired.components:
        for img in [*comp.images, *sorted(images_in(comp.objects))]:
            image(img, comp.name)
        for art in comp.artifacts:
            out.setdefault(art.source + art.version, _artifact_need(art, comp.name))
    for art in desired.binaries:
        out.setdefault(art.source, _artifact_need(art, "kubeone" if "kubeone" in art.name else "helm"))
    return list(out.values())


def _artifact_need(art: Artifact, component: str) -> Needed:
    kind = {"chart": "chart", "url": "manifest"}.get(art.kind, "binary")
    return Needed(kind, art.describe(), art.sha256, component)


def _digest_of(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None


def mirror_items(desired: DesiredState, fetch: ArtifactFetch) -> list[MirrorItem]:
    """Images by reference; artifacts fetched (and digest-verified) into the cache first, then
    stored as OCI artifacts at kvinstall/artifacts/NAME:VERSION."""

    items: list[MirrorItem] = [n.reference for n in needed(desired) if n.kind == "image"]
    for art in dict.fromkeys(desired.all_artifacts()):
        path, digest = fetch(art)
        items.append(
            FileItem(
                name=artifact_repository(art),
                tag=artifact_tag(art),
                source=str(path),
                sha256=digest,
                media_type=_LAYER[art.kind],
                filename=art.source.rstrip("/").rsplit("/", 1)[-1] or art.name,
            )
        )
    return items


class CachedSource(Protocol):
    """An artifact source that keeps what it fetched as files (kvinstall.components.artifacts)."""

    def get(self, artifact: Artifact) -> bytes | None: ...

    def path_for(self, digest: str) -> Path: ...


class ArtifactFetch:
    """Fetches an artifact through the verified cache and gives its cached file and digest."""

    def __init__(self, cache: CachedSource) -> None:
        self.cache = cache

    def __call__(self, art: Artifact) -> tuple[Path, str]:
        import hashlib

        from kvinstall.errors import ArtifactError

        data = self.cache.get(art)
        if data is None:
            raise ArtifactError(f"{art.describe()} is not available", where=art.name)
        digest = hashlib.sha256(data).hexdigest()
        return self.cache.path_for(digest), digest


@dataclass(frozen=True)
class PushTarget:
    """Where and how `mirror push` uploads; repr never shows the password."""

    registry: str
    ca_file: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    skip_verify: bool = False  # TLS, certificate not verified (offline.insecureSkipVerify)

    def with_password(self, password: str) -> PushTarget:
        return replace(self, password=password)


def push_target(config: Config, *, override: PushTarget) -> PushTarget:
    """The config's offline section, with what the command line gave taking precedence."""
    off = config.offline
    creds = off.credentials
    password = override.password
    if password is None and creds is not None and override.username in (None, creds.username):
        password = creds.password.require("offline.credentials.password")
    return PushTarget(
        registry=override.registry or (off.registry or ""),
        ca_file=override.ca_file or off.ca_file,
        insecure=override.insecure or off.insecure,
        username=override.username or (creds.username if creds else None),
        password=password,
        # The config's setting applies to its own registry only, not to one given on the command line.
        skip_verify=override.skip_verify
        or (off.insecure_skip_verify and override.registry in (None, "", off.registry)),
    )
