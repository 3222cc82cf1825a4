"""The plain value types every layer shares: Kubernetes objects, upstream artifacts, readiness
rules, what a component renders, and the desired state made of them.

Nothing here does I/O or imports another kvinstall module: the catalog, the renderers, the apply
engine, the mirror, the components and the pipeline above them all speak these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

KubeObject = dict[str, Any]

# An operator's custom resource carrying this annotation (value "spec") is applied spec-only: the
# apply engine never takes the status or the fields the operator adds (finalizers, defaults).
OWN_ANNOTATION = "kvinstall.io/own"


@dataclass(frozen=True)
class Artifact:
    """An upstream artifact: an HTTPS file with a pinned sha256, a Helm chart, or an OCI reference."""

    name: str  # stable id, e.g. "kubevirt-operator"
    kind: Literal["url", "chart", "oci", "binary"]
    source: str  # URL; chart repository URL; or OCI reference
    version: str
    sha256: str | None = None  # of the file / chart archive; None where unknown upstream
    chart: str | None = None  # chart name, for kind == "chart"
    media_type: str | None = None  # OCI media type used in the bundle

    def describe(self) -> str:
        if self.kind == "chart":
            return f"chart {self.chart} {self.version} from {self.source}"
        return f"{self.kind} {self.source}"


@dataclass(frozen=True)
class ReadinessRule:
    """How to tell one object is ready. Built-in kinds (Deployment, DaemonSet, StatefulSet, CRD, Job)
    need only the identity; custom resources name a phase and/or conditions."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    phase: str | None = None  # e.g. "Deployed"
    conditions: tuple[tuple[str, str], ...] = ()  # e.g. (("Available", "True"), ("Degraded", "False"))
    exists_only: bool = False  # ready as soon as it exists (e.g. Vpc ovn-cluster)
    # Dotted paths that must hold a value, e.g. (("status.conditionStatus.ready", True),) for a
    # Kyverno ValidatingPolicy, whose readiness is neither a phase nor a condition.
    fields: tuple[tuple[str, object], ...] = ()


class ArtifactSource(Protocol):
    """Gives the bytes of an upstream artifact, verified against its pinned digest."""

    def get(self, artifact: Artifact) -> bytes | None:
        """The artifact's bytes, or None when not available here (e.g. plan offline, not cached)."""
        ...


@dataclass
class Rendered:
    """What a component renders for one config."""

    objects: list[KubeObject] = field(default_factory=list)
    # Artifacts whose content was not available: their objects are missing from `objects`,
    # and the plan says so instead of pretending.
    unavailable: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DesiredHost:
    name: str
    address: str
    role: str
    user: str
    checks: tuple[str, ...]


@dataclass
class DesiredComponent:
    name: str
    title: str
    version: str
    namespace: str | None
    objects: list[KubeObject]
    images: list[str]
    artifacts: list[Artifact]
    unavailable: list[Artifact]
    readiness: list[ReadinessRule]
    notes: list[str] = field(default_factory=list)


@dataclass
class DesiredState:
    """What the config asks for (the output of desire): hosts and their checks, the KubeOne
    manifest, every component's objects, images and readiness rules, the artifacts a site needs."""

    cluster: str
    hosts: list[DesiredHost]
    kubeone_manifest: dict[str, Any]
    kubeone_manifest_sha256: str
    kubernetes_images: list[str]
    components: list[DesiredComponent]
    binaries: list[Artifact]
    offline_registry: str | None = None  # offline mode: the site registry everything comes from
    upstream_dns: str | None = None  # the resolver the cluster DNS forwards outside names to
    package_repository: str | None = None  # offline mode: the site package repository the hosts use

    def all_images(self) -> list[str]:
        seen: dict[str, None] = {}
        for img in self.kubernetes_images:
            seen.setdefault(img, None)
        for comp in self.components:
            for img in comp.images:
                seen.setdefault(img, None)
        return list(seen)

    def all_artifacts(self) -> list[Artifact]:
        return [*(a for c in self.components for a in c.artifacts), *self.binaries]

    def component(self, name: str) -> DesiredComponent | None:
        return next((c for c in self.components if c.name == name), None)
