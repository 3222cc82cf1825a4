"""Tenant workspaces: per workspace a namespace, member RoleBindings, a quota, network isolation,
optionally its own Kube-OVN VPC, and a Multus NetworkAttachmentDefinition per secondary network
(bridge and macvlan attachments carry no IPAM: VMs on them use the network's own addressing, e.g.
DHCP; a kube-ovn attachment gets a Kube-OVN Subnet of its own, which hands out the addresses).

Rendering is all this module does: adding, changing and removing a workspace is applied and pruned
by the engine through the component's inventory, like every other object. The component is always
enabled, so that removing the last workspace from the config prunes its objects too.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import Cluster
from kvinstall.model import Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config, Quota, SecondaryNetwork, Workspace

WORKSPACE_LABEL = "kvinstall.io/workspace"
ROLES = ("view", "edit", "admin")  # bound to the ClusterRoles kubevirt.io:<role> (shipped by KubeVirt)
RBAC_GROUP = "rbac.authorization.k8s.io"
KUBE_OVN_SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"


def vpc_name(workspace: str) -> str:
    # Prefixed: Vpc and Subnet are cluster-scoped and must not collide with Kube-OVN's own
    # (ovn-cluster, ovn-default, join) whatever a workspace is called.
    return f"ws-{workspace}"


def quota_hard(quota: Quota) -> dict[str, str]:
    """The ResourceQuota `hard` map: only the limits that are set (as the strings the API returns)."""
    hard: dict[str, str] = {}
    if quota.cpu is not None:
        hard["requests.cpu"] = str(quota.cpu)
    if quota.memory is not None:
        hard["requests.memory"] = str(quota.memory)
    if quota.storage is not None:
        hard["requests.storage"] = str(quota.storage)
    if quota.pods is not None:
        hard["pods"] = str(quota.pods)
    if quota.persistent_volume_claims is not None:
        hard["persistentvolumeclaims"] = str(quota.persistent_volume_claims)
    return hard


def subject_prefixes(config: Config) -> dict[str, str]:
    """What the kube-apiserver puts before OIDC user and group names (KubeOne sets both flags from
    auth), so that a binding names the member as the apiserver will: none without OIDC."""
    if config.auth.mode == "none":
        return {"User": "", "Group": ""}
    return {"User": config.auth.username_prefix, "Group": config.auth.groups_prefix}


def bindings(workspace: Workspace, prefixes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One RoleBinding per role that has members; subjects in config order, duplicates dropped."""
    out: list[dict[str, Any]] = []
    for role in ROLES:
        subjects: list[dict[str, str]] = []
        for member in workspace.members:
            if member.role != role:
                continue
            kind, name = member.subject()
            subject = {"kind": kind, "apiGroup": RBAC_GROUP, "name": (prefixes or {}).get(kind, "") + name}
            if subject not in subjects:
                subjects.append(subject)
        if subjects:
            out.append(
                {"name": f"workspace-{role}", "cluster_role": f"kubevirt.io:{role}", "subjects": subjects}
            )
    return out


def vpc_values(workspace: Workspace) -> dict[str, str] | None:
    if workspace.vpc_cidr is None:
        return None
    net = ipaddress.ip_network(workspace.vpc_cidr)
    return {
        "name": vpc_name(workspace.name),
        "subnet": vpc_name(workspace.name),
        "cidr": str(net),
        "gateway": str(next(net.hosts())),
        "protocol": "IPv4" if net.version == 4 else "IPv6",
    }


def ovn_provider(workspace: str, network: str) -> str:
    """How Kube-OVN ties a Subnet to an attachment: NAME.NAMESPACE.ovn."""
    return f"{network}.{workspace}.ovn"


def network_values(workspace: Workspace, net: SecondaryNetwork) -> dict[str, Any]:
    """The CNI configuration of one secondary network (as compact, sorted JSON: an unchanged config
    gives byte-identical attachments), and its Kube-OVN subnet for type kube-ovn."""
    cni: dict[str, Any] = {"cniVersion": "0.3.1", "name": net.name}
    subnet: dict[str, str] | None = None
    if net.type == "bridge":
        cni |= {"type": "bridge", "bridge": net.bridge, "ipam": {}}
        if net.vlan is not None:
            cni["vlan"] = net.vlan
    elif net.type == "macvlan":
        cni |= {"type": "macvlan", "master": net.master, "mode": "bridge", "ipam": {}}
    else:
        provider = ovn_provider(workspace.name, net.name)
        cni |= {"type": "kube-ovn", "server_socket": KUBE_OVN_SOCKET, "provider": provider}
        cidr = ipaddress.ip_network(str(net.cidr))
        subnet = {
            "name": f"{vpc_name(workspace.name)}-{net.name}",
            "cidr": str(cidr),
            "gateway": str(next(cidr.hosts())),
            "protocol": "IPv4" if cidr.version == 4 else "IPv6",
            "provider": provider,
        }
    if net.mtu is not None:
        cni["mtu"] = net.mtu
    return {"name": net.name, "config": json.dumps(cni, sort_keys=True, separators=(",", ":")), "subnet": subnet}


def render_workspace(workspace: Workspace, prefixes: dict[str, str] | None = None) -> list[KubeObject]:
    from kvinstall.render.env import render_template

    labels = {**workspace.labels, WORKSPACE_LABEL: workspace.name}
    return render_template(
        "workspace.yaml.j2",
        ws=workspace.name,
        labels=dict(sorted(labels.items())),
        bindings=bindings(workspace, prefixes),
        quota=quota_hard(workspace.quota),
        vpc=vpc_values(workspace),
        networks=[network_values(workspace, net) for net in workspace.secondary_networks],
    )


class WorkspacesComponent:
    name = "workspaces"
    title = "Workspaces"
    namespace: str | None = None

    def enabled(self, config: Config) -> bool:
        return True

    def version(self, config: Config) -> str:
        return "v1"

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]:
        return []

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        return []

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        objects: list[KubeObject] = []
        for workspace in config.workspaces:
            objects.extend(render_workspace(workspace, subject_prefixes(config)))
        return Rendered(objects=objects)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        # Vpc and Subnet are acted on by Kube-OVN; the namespace existing is what a tenant needs first.
        return [ReadinessRule("v1", "Namespace", ws.name, exists_only=True) for ws in config.workspaces]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        delete_all()


COMPONENT = WorkspacesComponent()
