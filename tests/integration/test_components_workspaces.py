"""Workspaces on the real apiserver, through the apply engine: add, change quota, change members,
remove - each converges (a re-plan shows nothing to do). Kube-OVN's Vpc and Subnet CRDs are
stand-ins with the upstream group/kind/scope (Kube-OVN itself does not run here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.workspaces import COMPONENT
from kvinstall.config.models import Config
from kvinstall.kube import ApplyPlan, ApplySetRef, Kube, execute, plan_apply
from kvinstall.model import KubeObject
from substrate.crds import crd

pytestmark = pytest.mark.integration
CATALOG = load_catalog()


def _kubeovn_crd(kind: str, plural: str) -> KubeObject:
    return crd("kubeovn.io", kind, plural, scope="Cluster")


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    for kind, plural in (("Vpc", "vpcs"), ("Subnet", "subnets")):
        if k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{plural}.kubeovn.io") is None:
            r = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                 json=_kubeovn_crd(kind, plural))  # fmt: skip
            assert r.status_code in (201, 409), r.text
    k.resource("kubeovn.io/v1", "Subnet", wait=30)
    k.resource("kubeovn.io/v1", "Vpc", wait=30)
    yield k
    k.close()


def cfg(*workspaces: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "workspaces": list(workspaces),
        }
    )


def converge(kube: Kube, ref: ApplySetRef, config: Config) -> ApplyPlan:
    """Plan and apply; then prove convergence: a second plan has nothing to do."""
    objects = COMPONENT.render(config, CATALOG, _NoArtifacts()).objects
    plan = plan_apply(kube, ref, objects)
    execute(kube, plan)
    assert not plan_apply(kube, ref, COMPONENT.render(config, CATALOG, _NoArtifacts()).objects).has_changes
    return plan


class _NoArtifacts:
    def get(self, artifact: object) -> bytes | None:
        raise AssertionError("workspaces need no upstream artifact")


def test_add_change_quota_change_members_remove(kube: Kube) -> None:
    s = uuid.uuid4().hex[:6]
    a, b = f"team-a-{s}", f"team-b-{s}"
    ref = ApplySetRef(f"workspaces-{s}")
    team_a: dict[str, Any] = {
        "name": a,
        "members": [{"user": "alice@example.com", "role": "admin"}, {"group": "devs", "role": "edit"}],
        "quota": {"cpu": 8, "memory": "32Gi", "pods": 10},
        "vpcCIDR": "10.210.0.0/24",
    }
    team_b: dict[str, Any] = {"name": b, "members": [{"group": "ops", "role": "view"}]}

    # Add two workspaces.
    converge(kube, ref, cfg(team_a, team_b))
    assert kube.get("v1", "Namespace", a) is not None
    quota = kube.get("v1", "ResourceQuota", "workspace-quota", a)
    assert quota is not None and quota["spec"]["hard"] == {
        "requests.cpu": "8",
        "requests.memory": "32Gi",
        "pods": "10",
    }
    subnet = kube.get("kubeovn.io/v1", "Subnet", f"ws-{a}")
    assert subnet is not None and subnet["spec"]["gateway"] == "10.210.0.1"
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", "workspace-isolation", b) is not None

    # Change the quota: only the ResourceQuota changes.
    team_a["quota"] = {"cpu": 16, "memory": "32Gi"}
    plan = converge(kube, ref, cfg(team_a, team_b))
    assert [i.ref for i in plan.changed] == [f"ResourceQuota/{a}/workspace-quota"]
    quota = kube.get("v1", "ResourceQuota", "workspace-quota", a)
    assert quota is not None and quota["spec"]["hard"] == {"requests.cpu": "16", "requests.memory": "32Gi"}

    # Change the members: alice becomes a viewer; nobody is edit any more (that binding is pruned).
    team_a["members"] = [{"user": "alice@example.com", "role": "view"}]
    plan = converge(kube, ref, cfg(team_a, team_b))
    assert {p.ref for p in plan.prune} == {
        f"RoleBinding.rbac.authorization.k8s.io/{a}/workspace-admin",
        f"RoleBinding.rbac.authorization.k8s.io/{a}/workspace-edit",
    }
    view = kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", "workspace-view", a)
    assert view is not None and view["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com"}
    ]
    assert kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", "workspace-edit", a) is None

    # Remove workspace a: everything of it is pruned; its namespace is only listed as blocked
    # (the engine never deletes namespaces without the explicit flag).
    plan = converge(kube, ref, cfg(team_b))
    pruned = {p.ref for p in plan.prune}
    assert f"Vpc.kubeovn.io/ws-{a}" in pruned and f"Subnet.kubeovn.io/ws-{a}" in pruned
    assert f"ResourceQuota/{a}/workspace-quota" in pruned
    assert [p.ref for p in plan.prune_blocked] == [f"Namespace/{a}"]
    assert kube.get("kubeovn.io/v1", "Vpc", f"ws-{a}") is None
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", "workspace-isolation", a) is None
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", "workspace-isolation", b) is not None

    # With the explicit flag, the namespace goes too (it stays Terminating here: no controller-manager).
    objects = COMPONENT.render(cfg(team_b), CATALOG, _NoArtifacts()).objects
    plan = plan_apply(kube, ref, objects, prune_protected=True)
    assert [p.ref for p in plan.prune] == [f"Namespace/{a}"]
    execute(kube, plan)
    ns = kube.get("v1", "Namespace", a)
    assert ns is None or ns["metadata"].get("deletionTimestamp")
