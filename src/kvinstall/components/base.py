"""The one small protocol every platform component implements (the values it exchanges are in
kvinstall.model).

A component answers, for a Config and the release catalog: which upstream artifacts it needs,
which images, which objects to apply, how to tell it is ready, and how to remove it safely.
Everything except `remove` is pure: rendering gets upstream artifact bytes through an
`ArtifactSource` (a cache, the network or the site registry) supplied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kvinstall.model import Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog, Release
    from kvinstall.config.models import Config


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

    def _ns(self, config: Config, catalog: Catalog) -> str:
        """The catalog release's namespace, else the component's own."""
        own = getattr(self, "namespace", None)
        assert own is not None, f"{self.name} names no namespace"
        return self.release(config, catalog).namespace or own


def ordered(components: Sequence[Component], config: Config) -> list[Component]:
    """The enabled components, in install order (the order of the sequence given)."""
    return [c for c in components if c.enabled(config)]
