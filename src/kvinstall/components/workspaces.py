"""Tenant workspaces: per workspace a namespace, member RoleBindings, a quota, network isolation and
optionally its own Kube-OVN VPC.

Rendering is all this module does: adding, changing and removing a workspace is applied and pruned
by the engine through the component's inventory, like every other object. The component is always
enabled, so that removing the last workspace from the config prunes its objects too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import Cluster
from kvinstall.model import Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config, Quota, Workspace

WORKSPACE_LABEL = "kvinstall.io/workspace"
ROLES = ("view", "edit", "admin")  # bound to the ClusterRoles kubevirt.io:<role> (shipped by KubeVirt)
RBAC_GROUP = "rbac.authorization.k8s.io"


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


def bindings(workspace: Workspace) -> list[dict[str, Any]]:
    """One RoleBinding per role that has members; subjects in config order, duplicates dropped."""
    out: list[dict[str, Any]] = []
    for role in ROLES:
        subjects: list[dict[str, str]] = []
        for member in workspace.members:
            if member.role != role:
                continue
            kind, name = member.subject()
            subject = {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}
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


def render_workspace(workspace: Workspace) -> list[KubeObject]:
    from kvinstall.render.env import render_template

    labels = {**workspace.labels, WORKSPACE_LABEL: workspace.name}
    return render_template(
        "workspace.yaml.j2",
        ws=workspace.name,
        labels=dict(sorted(labels.items())),
        bindings=bindings(workspace),
        quota=quota_hard(workspace.quota),
        vpc=vpc_values(workspace),
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
            objects.extend(render_workspace(workspace))
        return Rendered(objects=objects)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        # Vpc and Subnet are acted on by Kube-OVN; the namespace existing is what a tenant needs first.
        return [ReadinessRule("v1", "Namespace", ws.name, exists_only=True) for ws in config.workspaces]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        delete_all()


COMPONENT = WorkspacesComponent()
