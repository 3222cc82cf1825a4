"""observe (I/O): which versions run, as the cluster itself says (each component's own version signal,
catalog `installedVersion`; the kubelets for Kubernetes), with what the journal recorded where the
signal is silent; the live VMs a KubeVirt upgrade would move; the upgrade check for a plan; and the
repair check that comes before any upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kvinstall.catalog import Catalog, VersionSignal
from kvinstall.catalog.upgrades import KUBERNETES, UpgradeCheck, check_upgrades
from kvinstall.model import DesiredState, KubeObject

if TYPE_CHECKING:
    from kvinstall.config.models import Config
    from kvinstall.kube.client import Kube


@dataclass(frozen=True)
class Installed:
    """One product's installed version; `target` differs while its operator rolls out another one."""

    name: str
    version: str | None
    target: str | None = None
    source: str = ""

    @property
    def in_progress(self) -> bool:
        return bool(self.version and self.target and self.target != self.version)


@dataclass
class InstalledVersions:
    products: dict[str, Installed] = field(default_factory=dict)

    def versions(self) -> dict[str, str | None]:
        return {name: i.version for name, i in self.products.items()}


def _dig(obj: KubeObject, path: str) -> Any:
    node: Any = obj
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def image_tag(image: str) -> str | None:
    from kvinstall.imageref import parse_reference

    try:
        return parse_reference(image).tag
    except ValueError:
        return None


def read_signal(obj: KubeObject | None, signal: VersionSignal) -> tuple[str | None, str | None]:
    """(version, target) that the signal's object reports; (None, None) when it does not exist."""
    if obj is None:
        return None, None
    if signal.field:
        version = _dig(obj, signal.field)
        target = _dig(obj, signal.target) if signal.target else None
        return (str(version) if version else None), (str(target) if target else None)
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return (image_tag(containers[0].get("image", "")) if containers else None), None


def kubelet_versions(nodes: list[KubeObject]) -> list[str]:
    from kvinstall.catalog.upgrades import parse_version

    found = {((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") for n in nodes}
    return sorted((v for v in found if v), key=parse_version)


def observe_installed(
    kube: Kube, catalog: Catalog, desired: DesiredState, nodes: list[KubeObject], recorded: dict[str, str]
) -> InstalledVersions:
    """The installed version of Kubernetes (the oldest kubelet; the newest is the target while nodes
    differ) and of every desired component whose catalog entry names its signal. `recorded`: the
    versions the journal holds, used when the signal's object exists but reports no version yet."""
    out = InstalledVersions()
    kubelets = kubelet_versions(nodes)
    if kubelets:
        out.products[KUBERNETES] = Installed(KUBERNETES, kubelets[0], kubelets[-1], "the nodes' kubelets")
    for comp in desired.components:
        product = catalog.components.get(comp.name)
        signal = product.installed_version if product else None
        if signal is None:
            continue
        # The namespace the config puts the object in (e.g. Dex's), else the catalog's.
        namespace = next(
            (
                (o.get("metadata") or {}).get("namespace")
                for o in comp.objects
                if o.get("kind") == signal.kind and (o.get("metadata") or {}).get("name") == signal.name
            ),
            signal.namespace,
        )
        obj = (
            kube.get(signal.api_version, signal.kind, signal.name, namespace)
            if kube.try_resource(signal.api_version, signal.kind) is not None
            else None
        )
        version, target = read_signal(obj, signal)
        where = (
            f"{signal.field or 'image'} of {signal.kind} {namespace + '/' if namespace else ''}{signal.name}"
        )
        if obj is not None and version is None and comp.name in recorded:
            version, where = recorded[comp.name], "the journal (the cluster reports no version yet)"
        if obj is not None or version is not None:
            out.products[comp.name] = Installed(comp.name, version, target, where)
    return out


def count_vmis(kube: Kube) -> tuple[int, int]:
    """(live-migratable, not migratable) running VirtualMachineInstances: on a KubeVirt upgrade with
    workloadUpdateStrategy LiveMigrate, the first move to the new virt-launcher by live migration."""
    if kube.try_resource("kubevirt.io/v1", "VirtualMachineInstance") is None:
        return 0, 0
    migratable = other = 0
    for vmi in kube.list("kubevirt.io/v1", "VirtualMachineInstance"):
        st = vmi.get("status") or {}
        if st.get("phase") not in (None, "Running"):
            continue
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        if conds.get("LiveMigratable") == "True":
            migratable += 1
        else:
            other += 1
    return migratable, other


def wanted_versions(config: Config, desired: DesiredState) -> dict[str, str]:
    """Kubernetes, then every desired component in install order."""
    return {KUBERNETES: config.kubernetes.version, **{c.name: c.version for c in desired.components}}


def upgrade_check(
    kube: Kube,
    config: Config,
    catalog: Catalog,
    desired: DesiredState,
    installed: InstalledVersions,
    *,
    force_downgrade: bool,
) -> UpgradeCheck:
    titles = {KUBERNETES: "Kubernetes", **{c.name: c.title for c in desired.components}}
    result = check_upgrades(
        catalog,
        installed.versions(),
        wanted_versions(config, desired),
        titles=titles,
        kubeone_version=config.kubeone.version,
        force_downgrade=force_downgrade,
    )
    for i, up in enumerate(result.upgrades):
        if up.name == "kubevirt":
            migratable, other = count_vmis(kube)
            result.upgrades[i] = replace(up, migrations=migratable, not_migratable=other)
    return result


def settings_of(config: Config, name: str) -> Any:
    """A component's section of the config (components.kube_ovn for kubeovn)."""
    return getattr(config.components, name.replace("kubeovn", "kube_ovn"), None)


def hold_config(config: Config, versions: dict[str, str]) -> Config:
    """The config with the given components at other versions (the installed ones): what the platform
    should look like now, before the upgrade (the repair check compares the cluster with it)."""
    updates = {}
    for name, version in versions.items():
        section = settings_of(config, name)
        if section is not None and hasattr(section, "version"):
            updates[name.replace("kubeovn", "kube_ovn")] = section.model_copy(update={"version": version})
    return config.model_copy(update={"components": config.components.model_copy(update=updates)})
