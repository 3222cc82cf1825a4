"""Kyverno, from its upstream Helm chart; installed last among the controllers, because its
webhooks (failurePolicy Fail) can block other installs while it is not ready.

Offline: the registry of each image the applied objects use is set one by one (a per-image
`registry` wins over `global.image.registry`). The chart's other images (webhooks cleanup, CRD
migration, tests) belong to Helm hooks, which kvinstall neither applies nor mirrors.
Removal: the Deployments first, then the webhook configurations Kyverno created at run time
(left behind, they would reject API requests with nobody to answer them), then the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.removal import delete_and_wait, list_served
from kvinstall.model import ArtifactSource, ReadinessRule, Rendered
from kvinstall.render.helm import helm_template
from kvinstall.render.images import rewrite_objects

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CHART_ARTIFACT = "kyverno-chart"
DEPLOYMENTS = (
    "kyverno-admission-controller",
    "kyverno-background-controller",
    "kyverno-cleanup-controller",
    "kyverno-reports-controller",
)
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
WEBHOOK_API = "admissionregistration.k8s.io/v1"
# Value paths (dotted) of every image of the objects kvinstall applies (charts 3.7 and 3.8 alike).
IMAGE_VALUE_PATHS = (
    "admissionController.container.image",
    "admissionController.initContainer.image",
    "backgroundController.image",
    "cleanupController.image",
    "reportsController.image",
)


def _set_path(values: dict[str, Any], dotted: str, leaf: dict[str, Any]) -> None:
    node = values
    for key in dotted.split("."):
        node = node.setdefault(key, {})
    node.update(leaf)


def chart_values(config: Config) -> dict[str, Any]:
    """The chart values for this config (pure)."""
    values: dict[str, Any] = {}
    if config.offline.enabled and config.offline.registry:
        site = config.offline.registry
        for path in IMAGE_VALUE_PATHS:
            _set_path(values, path, {"registry": site})
    return values


def _is_kyverno_webhook(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        str(meta.get("name", "")).startswith("kyverno-")
        or labels.get("webhook.kyverno.io/managed-by") == "kyverno"
    )


class Kyverno(CatalogComponent):
    name = "kyverno"
    title = "Kyverno"
    namespace: str | None = "kyverno"

    def enabled(self, config: Config) -> bool:
        return config.components.kyverno.enabled

    def version(self, config: Config) -> str:
        return config.components.kyverno.version

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        release = self.release(config, catalog)
        chart = next(a for a in release.artifacts if a.name == CHART_ARTIFACT)
        data = source.get(chart)
        if data is None:
            return Rendered(unavailable=[chart])
        ns = release.namespace or "kyverno"
        objects = helm_template(
            data,
            chart_name=chart.chart or chart.name,
            release="kyverno",
            namespace=ns,
            values=chart_values(config),
            version=chart.version,
            kube_version=config.kubernetes.version,
        )
        # helm template renders no Namespace for the release; Kyverno needs its own.
        if not any(o.get("kind") == "Namespace" and o["metadata"].get("name") == ns for o in objects):
            objects.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if config.offline.enabled and config.offline.registry:
            objects = rewrite_objects(objects, config.offline.registry)
        return Rendered(objects=objects)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self.release(config, catalog).namespace or "kyverno"
        return [ReadinessRule("apps/v1", "Deployment", name, ns) for name in DEPLOYMENTS]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        ns = self.release(config, catalog).namespace or "kyverno"
        delete_and_wait(cluster, [("apps/v1", "Deployment", name, ns) for name in DEPLOYMENTS])
        hooks = [
            (WEBHOOK_API, kind, str(obj["metadata"]["name"]), None)
            for kind in WEBHOOK_KINDS
            for obj in list_served(cluster, WEBHOOK_API, kind)
            if _is_kyverno_webhook(obj)
        ]
        delete_and_wait(cluster, hooks, timeout=60)
        delete_all()


COMPONENT = Kyverno()
