"""Kube-OVN, the CNI: plain manifests rendered from the upstream `kube-ovn` Helm chart.

The chart looks up the InternalIPs of nodes labelled `kube-ovn/role=master` with Helm `lookup`,
which returns nothing under `helm template`: we pass MASTER_NODES (the control-plane internal
addresses) and the ovn-central replica count ourselves. The label itself is put on the
control-plane nodes by the KubeOne manifest (see Rendered.notes). The chart's hooks never run
under plain apply; `remove` does their work (finalizers, CR cleanup, the safe deletion order).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.removal import (
    clear_finalizers,
    delete_and_wait,
    delete_every,
    remove_annotations,
)
from kvinstall.model import ArtifactSource, KubeObject, ReadinessRule, Rendered
from kvinstall.render.helm import helm_template
from kvinstall.render.images import rewrite_image, rewrite_objects

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog, Release
    from kvinstall.config.models import Config

KUBEOVN_API = "kubeovn.io/v1"
MASTER_LABEL = "kube-ovn/role=master"
CHART_ARTIFACT = "kube-ovn-chart"
UPSTREAM_REGISTRY = "docker.io/kubeovn"

# Readiness in the documented order: OVN databases, OVS, controller, CNI, pinger, monitor, then
# the default networks the controller creates.
_WORKLOADS: tuple[tuple[str, str], ...] = (
    ("Deployment", "ovn-central"),
    ("DaemonSet", "ovs-ovn"),
    ("Deployment", "kube-ovn-controller"),
    ("DaemonSet", "kube-ovn-cni"),
    ("DaemonSet", "kube-ovn-pinger"),
    ("Deployment", "kube-ovn-monitor"),
)

# Custom resources the upstream uninstall deletes before the controller goes (NAT gateways and
# their rules first, then addresses, pools, VLANs and provider networks).
_CR_DELETE_ORDER: tuple[str, ...] = (
    "VpcNatGateway",
    "VpcEgressGateway",
    "VpcDns",
    "Vip",
    "IptablesSnatRule",
    "IptablesDnatRule",
    "IptablesFIPRule",
    "IptablesEIP",
    "OvnSnatRule",
    "OvnDnatRule",
    "OvnFip",
    "OvnEip",
    "IPPool",
    "Vlan",
    "ProviderNetwork",
)
_FINALIZED_KINDS: tuple[str, ...] = ("Subnet", "Vpc", "IP")


class KubeOVN(CatalogComponent):
    name = "kubeovn"
    title = "Kube-OVN"
    namespace: str | None = "kube-system"

    def __init__(self, cr_timeout: float = 120.0) -> None:
        self.cr_timeout = cr_timeout  # how long removal waits for the controller to release CRs

    def enabled(self, config: Config) -> bool:
        return True  # the CNI: without it no node becomes Ready

    def version(self, config: Config) -> str:
        return config.components.kube_ovn.version

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        release = self.release(config, catalog)
        chart = next(a for a in release.artifacts if a.name == CHART_ARTIFACT)
        notes = [
            f"control-plane nodes carry the label {MASTER_LABEL} (set through the KubeOne manifest); "
            f"ovn-central runs on {len(config.control_plane)} of them"
        ]
        data = source.get(chart)
        if data is None:
            return Rendered(unavailable=[chart], notes=notes)
        objects = helm_template(
            data,
            chart_name=chart.chart or chart.name,
            release="kube-ovn",
            namespace=release.namespace or "kube-system",
            values=chart_values(config, release),
            version=chart.version,
            kube_version=config.kubernetes.version,
        )
        if config.network.mtu is not None:
            objects = with_mtu(objects, config.network.mtu)
        if config.offline.enabled and config.offline.registry:
            # The registry values already point there; this catches any image the chart hard-codes.
            objects = rewrite_objects(objects, config.offline.registry)
        return Rendered(objects=objects, notes=notes)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self.release(config, catalog).namespace or "kube-system"
        rules = [ReadinessRule("apps/v1", kind, name, ns) for kind, name in _WORKLOADS]
        rules += [
            ReadinessRule(KUBEOVN_API, "Subnet", "ovn-default", conditions=(("Ready", "True"),)),
            ReadinessRule(KUBEOVN_API, "Subnet", "join", conditions=(("Ready", "True"),)),
            ReadinessRule(KUBEOVN_API, "Vpc", "ovn-cluster", exists_only=True),
        ]
        return rules

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        ns = self.release(config, catalog).namespace or "kube-system"
        # What the chart's pre-delete hook does: the controller will not come back to release them.
        for kind in _FINALIZED_KINDS:
            clear_finalizers(cluster, KUBEOVN_API, kind)
        # While the controller still runs it cleans OVN up for each; whatever it does not release
        # in time is unfinalized.
        delete_every(cluster, KUBEOVN_API, _CR_DELETE_ORDER, timeout=self.cr_timeout)
        delete_and_wait(
            cluster,
            [
                ("apps/v1", "Deployment", "kube-ovn-controller", ns),
                ("apps/v1", "Deployment", "kube-ovn-monitor", ns),
            ],
        )
        delete_and_wait(
            cluster,
            [("apps/v1", "DaemonSet", "kube-ovn-cni", ns), ("apps/v1", "DaemonSet", "kube-ovn-pinger", ns)],
        )
        delete_and_wait(
            cluster, [("apps/v1", "Deployment", "ovn-central", ns), ("apps/v1", "DaemonSet", "ovs-ovn", ns)]
        )
        # The controller may have re-added finalizers before it stopped.
        for kind in _FINALIZED_KINDS:
            clear_finalizers(cluster, KUBEOVN_API, kind)
        delete_all()
        remove_annotations(cluster, "Node", "ovn.kubernetes.io/")
        remove_annotations(cluster, "Namespace", "ovn.kubernetes.io/")


def with_mtu(objects: list[KubeObject], mtu: int) -> list[KubeObject]:
    """The chart has no MTU value; kube-ovn-cni's cni-server takes `--mtu`. Added to the rendered
    DaemonSet (replacing any --mtu already there), structurally, on copies."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") != "DaemonSet" or (obj.get("metadata") or {}).get("name") != "kube-ovn-cni":
            continue
        containers = obj["spec"]["template"]["spec"].get("containers") or []
        target = next(
            (c for c in containers if c.get("name") == "cni-server"), containers[0] if containers else None
        )
        if target is None:
            continue
        args = [a for a in target.get("args") or [] if not str(a).startswith("--mtu=")]
        target["args"] = [*args, f"--mtu={mtu}"]
    return out


def _tunnel_interfaces(config: Config) -> str:
    """IFACE: Kube-OVN takes a comma list and uses the first that exists on a node, so per-host
    interfaces are listed first (in host order, deduplicated), then the cluster default."""
    names: list[str] = []
    for host in config.hosts:
        if host.tunnel_interface and host.tunnel_interface not in names:
            names.append(host.tunnel_interface)
    default = config.network.tunnel_interface
    if default and default not in names:
        names.append(default)
    return ",".join(names)


def chart_values(config: Config, release: Release) -> dict[str, Any]:
    """The chart values for this config (pure)."""
    net = config.network
    masters = [h.internal_address for h in config.control_plane]
    v6 = ipaddress.ip_network(net.pod_cidr).version == 6
    family = "ipv6" if v6 else "ipv4"
    kubeovn = config.components.kube_ovn
    registry = UPSTREAM_REGISTRY
    if config.offline.enabled and config.offline.registry:
        registry = rewrite_image(f"{UPSTREAM_REGISTRY}/kube-ovn", config.offline.registry).rsplit("/", 1)[0]
    networking: dict[str, Any] = {
        "NET_STACK": family,
        "NETWORK_TYPE": "geneve",
        "TUNNEL_TYPE": net.tunnel_type,
        "IFACE": _tunnel_interfaces(config),
        "DEFAULT_SUBNET": "ovn-default",
        "DEFAULT_VPC": "ovn-cluster",
        "NODE_SUBNET": "join",
    }
    return {
        "global": {
            "registry": {"address": registry},
            "images": {
                "kubeovn": {"repository": "kube-ovn", "tag": release.version},
                "natgateway": {"repository": "vpc-nat-gateway", "tag": release.version},
            },
        },
        "namespace": release.namespace or "kube-system",
        # The chart sizes ovn-central and kube-ovn-controller by the number of these addresses.
        "MASTER_NODES": ",".join(masters),
        "MASTER_NODES_LABEL": MASTER_LABEL,
        "networking": networking,
        "func": {
            "ENABLE_LB": kubeovn.enable_load_balancer,
            "ENABLE_NP": kubeovn.enable_network_policy,
            "ENABLE_NAT_GW": kubeovn.enable_nat_gateway,
            "ENABLE_KEEP_VM_IP": True,
            "ENABLE_LIVE_MIGRATION_OPTIMIZE": True,
        },
        family: {
            "POD_CIDR": net.pod_cidr,
            "POD_GATEWAY": net.effective_gateway(),
            "SVC_CIDR": net.service_cidr,
            "JOIN_CIDR": net.join_cidr,
        },
    }


COMPONENT = KubeOVN()
