"""KubeVirt: the upstream operator manifest, then the KubeVirt CR rendered from the config.

Facts (reference/components.md): the operator manifest holds the Namespace `kubevirt`, the CRD,
RBAC and Deployment `virt-operator`; the CR `kubevirt.io/v1` KubeVirt `kubevirt/kubevirt` tells
the operator what to deploy. Offline, only the virt-operator image is rewritten (container image
and env VIRT_OPERATOR_IMAGE): the operator derives every other image from its own reference.
Removal must delete the CR first (its finalizer needs the running operator), then the objects the
operator created outside our inventory (apiservice, webhooks), then the operator itself.

The helpers at the top (operator manifest parsing, the operator-CR marker) are shared with cdi.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.config.checks import feature_gate_problems
from kvinstall.config.problems import Problem
from kvinstall.errors import ArtifactError, ConfigError
from kvinstall.model import OWN_ANNOTATION, Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog, Release
    from kvinstall.config.models import Config


CRD_API = "apiextensions.k8s.io/v1"
READY_CONDITIONS: tuple[tuple[str, str], ...] = (
    ("Available", "True"),
    ("Progressing", "False"),
    ("Degraded", "False"),
)


def mark_operator_cr(obj: KubeObject) -> KubeObject:
    """Mark `obj` as an operator CR whose `spec` only kvinstall owns."""
    meta = obj.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {}) or {}
    annotations[OWN_ANNOTATION] = "spec"
    meta["annotations"] = annotations
    return obj


def parse_manifest(data: bytes, artifact: Artifact) -> list[KubeObject]:
    """The Kubernetes objects of an upstream multi-document YAML manifest."""
    from kvinstall.render.env import TemplateError, parse_documents

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError("the manifest is not UTF-8 text", where=artifact.describe()) from exc
    try:
        objects = parse_documents(text, where=artifact.name)
    except TemplateError as exc:
        raise ArtifactError(f"the manifest is not valid YAML: {exc}", where=artifact.describe()) from exc
    for i, obj in enumerate(objects):
        if not obj.get("apiVersion") or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
            raise ArtifactError(
                f"document {i} is not a Kubernetes object (apiVersion, kind and metadata.name needed)",
                where=artifact.describe(),
            )
    return objects


def operator_objects(
    release: Release, source: ArtifactSource, rendered: Rendered, *, operator: str, title: str
) -> list[KubeObject]:
    """The objects of every URL artifact of the release (an operator manifest, which must hold the
    operator's Deployment `operator`); missing artifacts are recorded as unavailable."""
    objects = _manifest_objects(release, source, rendered)
    if objects and find_object(objects, "Deployment", operator) is None:
        raise ArtifactError(
            f"the {title} operator manifest has no Deployment {operator}",
            where=release.artifacts[0].describe() if release.artifacts else release.name,
        )
    return objects


def _manifest_objects(release: Release, source: ArtifactSource, rendered: Rendered) -> list[KubeObject]:
    objects: list[KubeObject] = []
    for artifact in release.artifacts:
        if artifact.kind != "url":
            continue
        data = source.get(artifact)
        if data is None:
            rendered.unavailable.append(artifact)
            rendered.notes.append(f"{artifact.describe()} is not available here: its objects are not shown")
            continue
        objects.extend(parse_manifest(data, artifact))
    return objects


def offline_rewrite(objects: list[KubeObject], config: Config) -> list[KubeObject]:
    """In offline mode, every image reference (container images and *_IMAGE env) at the site registry."""
    if not config.offline.enabled:
        return objects
    from kvinstall.render.images import rewrite_objects

    if not config.offline.registry:
        raise ConfigError([Problem("offline mode needs the site registry", loc=("offline", "registry"))])
    return rewrite_objects(objects, config.offline.registry)


def find_object(objects: list[KubeObject], kind: str, name: str) -> KubeObject | None:
    for obj in objects:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    return None


# --- feature gates -------------------------------------------------------------------------------


def _release(config: Config, catalog: Catalog) -> Release:
    return catalog.component("kubevirt", config.components.kubevirt.version)


def devices_declared(config: Config) -> bool:
    devices = config.components.kubevirt.permitted_host_devices
    return bool(devices.pci_host_devices or devices.mediated_devices)


def effective_feature_gates(config: Config, catalog: Catalog) -> list[str]:
    """The gates to write into the CR: the configured alpha/beta/deprecated ones (GA ones dropped,
    as they are on anyway), plus HostDevices when devices are declared. Raises ConfigError on
    unknown or discontinued gates."""
    errors: list[object] = [p for p in feature_gate_problems(config, catalog) if p.severity == "error"]
    if errors:
        raise ConfigError(errors)
    gates = _release(config, catalog).feature_gates
    out: list[str] = []
    for gate in config.components.kubevirt.feature_gates:
        if gate not in gates.ga and gate not in out:
            out.append(gate)
    # Without the gate KubeVirt refuses VMs with hostDevices; GPUs (`gpus:`) need no gate (GPU is GA).
    if devices_declared(config) and "HostDevices" not in out:
        out.append("HostDevices")
    return out


# --- the CR --------------------------------------------------------------------------------------


def _cr_values(config: Config, catalog: Catalog) -> dict[str, Any]:
    kv = config.components.kubevirt
    developer: dict[str, Any] = {
        "featureGates": effective_feature_gates(config, catalog),
        "useEmulation": kv.use_emulation,
    }
    if kv.cpu_allocation_ratio is not None:
        developer["cpuAllocationRatio"] = kv.cpu_allocation_ratio
    m = kv.migrations
    migrations = {
        "parallelMigrationsPerCluster": m.parallel_migrations_per_cluster,
        "parallelOutboundMigrationsPerNode": m.parallel_outbound_migrations_per_node,
        "bandwidthPerMigration": str(m.bandwidth_per_migration),
        "completionTimeoutPerGiB": m.completion_timeout_per_gib,
        "progressTimeout": m.progress_timeout,
        "allowAutoConverge": m.allow_auto_converge,
        "allowPostCopy": m.allow_post_copy,
    }
    devices = kv.permitted_host_devices
    permitted: dict[str, Any] | None = None
    if devices_declared(config):
        permitted = {
            "pciHostDevices": [
                {
                    "pciVendorSelector": d.pci_vendor_selector,
                    "resourceName": d.resource_name,
                    "externalResourceProvider": d.external_resource_provider,
                }
                for d in devices.pci_host_devices
            ],
            "mediatedDevices": [
                {
                    "mdevNameSelector": d.mdev_name_selector,
                    "resourceName": d.resource_name,
                    "externalResourceProvider": d.external_resource_provider,
                }
                for d in devices.mediated_devices
            ],
        }
    mdev: dict[str, Any] | None = None
    if kv.mediated_devices_configuration is not None:
        mdc = kv.mediated_devices_configuration
        mdev = {}
        if mdc.mediated_device_types:
            mdev["mediatedDeviceTypes"] = list(mdc.mediated_device_types)
        if mdc.node_mediated_device_types:
            mdev["nodeMediatedDeviceTypes"] = [
                {"nodeSelector": dict(n.node_selector), "mediatedDeviceTypes": list(n.mediated_device_types)}
                for n in mdc.node_mediated_device_types
            ]
    return {
        "cr_name": "kubevirt",
        "namespace": _release(config, catalog).namespace or "kubevirt",
        "developer": developer,
        "migrations": migrations,
        "eviction_strategy": kv.eviction_strategy,
        # On upgrades, running VMs move to the new virt-launcher by live migration when allowed.
        "workload_update_strategy": {"workloadUpdateMethods": ["LiveMigrate"]} if kv.live_migration else {},
        "permitted_host_devices": permitted,
        "mediated_devices_configuration": mdev,
        # virt-operator deploys the bundle unless told not to: only the opt-out is written.
        "common_instancetypes": None if kv.common_instancetypes else {"enabled": False},
    }


def render_cr(config: Config, catalog: Catalog) -> KubeObject:
    """The KubeVirt CR for the config, marked as an operator CR (kvinstall owns its spec only)."""
    from kvinstall.render.env import render_template

    (cr,) = render_template("kubevirt-cr.yaml.j2", **_cr_values(config, catalog))
    return mark_operator_cr(cr)


# --- the component -------------------------------------------------------------------------------


class KubeVirtComponent(CatalogComponent):
    name = "kubevirt"
    title = "KubeVirt"
    namespace: str | None = "kubevirt"

    def enabled(self, config: Config) -> bool:
        return True

    def version(self, config: Config) -> str:
        return config.components.kubevirt.version

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        release = _release(config, catalog)
        out = list(release.images)
        for gate in effective_feature_gates(config, catalog):
            for image in release.gate_images.get(gate, ()):
                if image not in out:
                    out.append(image)
        return out

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        rendered = Rendered()
        release = _release(config, catalog)
        objects = operator_objects(release, source, rendered, operator="virt-operator", title="KubeVirt")
        objects.append(render_cr(config, catalog))
        for problem in feature_gate_problems(config, catalog):
            if problem.severity == "warning":
                rendered.notes.append(f"{problem.path}: {problem.message}")
        # The operator keeps KUBEVIRT_VERSION and derives its operands' images from its own reference.
        rendered.objects = offline_rewrite(objects, config)
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = _release(config, catalog).namespace or "kubevirt"
        return [
            ReadinessRule(CRD_API, "CustomResourceDefinition", "kubevirts.kubevirt.io"),
            ReadinessRule("apps/v1", "Deployment", "virt-operator", namespace=ns),
            ReadinessRule(
                "kubevirt.io/v1",
                "KubeVirt",
                "kubevirt",
                namespace=ns,
                phase="Deployed",
                conditions=READY_CONDITIONS,
            ),
        ]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        ns = _release(config, catalog).namespace or "kubevirt"
        # The CR first, while the operator still runs to clear its finalizer (foregroundDeleteKubeVirt).
        cluster.delete("kubevirt.io/v1", "KubeVirt", "kubevirt", namespace=ns)
        cluster.wait_deleted("kubevirt.io/v1", "KubeVirt", "kubevirt", namespace=ns)
        # Created by the operator at run time, so not in our inventory.
        cluster.delete("apiregistration.k8s.io/v1", "APIService", "v1.subresources.kubevirt.io")
        cluster.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "virt-api-mutator")
        for name in ("virt-operator-validator", "virt-api-validator"):
            cluster.delete("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", name)
        delete_all()


COMPONENT = KubeVirtComponent()
