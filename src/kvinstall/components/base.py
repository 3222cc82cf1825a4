"""The one small protocol every platform component implements, and the values it exchanges.

A component answers, for a Config and the release catalog: which upstream artifacts it needs,
which images, which objects to apply, how to tell it is ready, and how to remove it safely.
Everything except `remove` is pure: rendering gets upstream artifact bytes through an
`ArtifactSource` (a cache, the network or the site registry) supplied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog, Release
    from kvinstall.config.models import Config

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


class Cluster(Protocol):
    """The slice of the apply engine a component's removal hook uses (see kvinstall.kube)."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> KubeObject | None: ...

    def apply(self, obj: KubeObject, *, force: bool, dry_run: bool = False) -> KubeObject: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None: ...

    def wait_deleted(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, timeout: float = 300
    ) -> None: ...

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[KubeObject]: ...

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> None: ...


class Component(Protocol):
    name: str  # e.g. "kubevirt"; also the ApplySet name suffix
    title: str  # e.g. "KubeVirt"
    namespace: str | None

    def enabled(self, config: Config) -> bool: ...

    def version(self, config: Config) -> str: ...

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]: ...

    def images(self, config: Config, catalog: Catalog) -> list[str]: ...

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered: ...

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]: ...

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        """Remove the component in its safe order. `delete_all` deletes every remaining member of the
        component's inventory; a component calls it after the steps that must come first."""
        ...


class CatalogComponent:
    """What most components share: their release, artifacts and images come from the catalog entry
    of `name` at the version the config chooses. Subclasses give `version` and the rest."""

    name: str

    def version(self, config: Config) -> str:
        raise NotImplementedError

    def release(self, config: Config, catalog: Catalog) -> Release:
        return catalog.component(self.name, self.version(config))

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]:
        return list(self.release(config, catalog).artifacts)

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        return list(self.release(config, catalog).images)


def ordered(components: Sequence[Component], config: Config) -> list[Component]:
    """The enabled components, in install order (the order of the sequence given)."""
    return [c for c in components if c.enabled(config)]
