"""CDI (Containerized Data Importer): the upstream operator manifest, then the cluster-scoped CR `cdi`.

CDI has no registry field: offline, the cdi-operator image and the env vars it reads its operand
images from (CONTROLLER_IMAGE, IMPORTER_IMAGE, ... all ending in _IMAGE) are rewritten. A plain-HTTP
site registry also goes into `spec.config.insecureRegistries`, or importer pods could not pull from it.
Removal deletes the CR first (finalizer `operator.cdi.kubevirt.io`, cleared by the running operator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.kubevirt import (
    CRD_API,
    READY_CONDITIONS,
    mark_operator_cr,
    offline_rewrite,
    operator_objects,
)
from kvinstall.model import ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog, Release
    from kvinstall.config.models import Config

# The operand images the cdi-operator Deployment names in its env (reference/components.md).
OPERAND_IMAGE_ENV = (
    "CONTROLLER_IMAGE",
    "IMPORTER_IMAGE",
    "CLONER_IMAGE",
    "OVIRT_POPULATOR_IMAGE",
    "APISERVER_IMAGE",
    "UPLOAD_SERVER_IMAGE",
    "UPLOAD_PROXY_IMAGE",
)


def _release(config: Config, catalog: Catalog) -> Release:
    return catalog.component("cdi", config.components.cdi.version)


def feature_gates(config: Config, catalog: Catalog) -> list[str]:
    """The version's default gates (the upstream CR lists them) plus the configured extras."""
    out: list[str] = []
    for gate in [*_release(config, catalog).cdi_feature_gates, *config.components.cdi.feature_gates]:
        if gate not in out:
            out.append(gate)
    return out


def cdi_config(config: Config, catalog: Catalog) -> dict[str, Any]:
    cdi = config.components.cdi
    out: dict[str, Any] = {"featureGates": feature_gates(config, catalog)}
    if cdi.upload_proxy_url:
        out["uploadProxyURLOverride"] = cdi.upload_proxy_url
    overhead: dict[str, Any] = {"global": cdi.filesystem_overhead.global_}
    if cdi.filesystem_overhead.storage_class:
        overhead["storageClass"] = dict(sorted(cdi.filesystem_overhead.storage_class.items()))
    out["filesystemOverhead"] = overhead
    off = config.offline
    if off.enabled and (off.insecure or off.insecure_skip_verify) and off.registry:
        # CDI's importer skips TLS verification (or uses HTTP) for the registries listed here.
        out["insecureRegistries"] = [off.registry]
    return out


def render_cr(config: Config, catalog: Catalog) -> KubeObject:
    from kvinstall.render.env import render_template

    (cr,) = render_template("cdi-cr.yaml.j2", cr_name="cdi", cdi_config=cdi_config(config, catalog))
    return mark_operator_cr(cr)


class CDIComponent(CatalogComponent):
    name = "cdi"
    title = "CDI"
    namespace: str | None = "cdi"

    def enabled(self, config: Config) -> bool:
        return config.components.cdi.enabled

    def version(self, config: Config) -> str:
        return config.components.cdi.version

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        rendered = Rendered()
        release = _release(config, catalog)
        objects = operator_objects(release, source, rendered, operator="cdi-operator", title="CDI")
        objects.append(render_cr(config, catalog))
        rendered.objects = offline_rewrite(objects, config)
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = _release(config, catalog).namespace or "cdi"
        return [
            ReadinessRule(CRD_API, "CustomResourceDefinition", "cdis.cdi.kubevirt.io"),
            ReadinessRule("apps/v1", "Deployment", "cdi-operator", namespace=ns),
            ReadinessRule(
                "cdi.kubevirt.io/v1beta1", "CDI", "cdi", phase="Deployed", conditions=READY_CONDITIONS
            ),
        ]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        cluster.delete("cdi.kubevirt.io/v1beta1", "CDI", "cdi")
        cluster.wait_deleted("cdi.kubevirt.io/v1beta1", "CDI", "cdi")
        delete_all()


COMPONENT = CDIComponent()
