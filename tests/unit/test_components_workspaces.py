"""Workspaces rendering: namespace, member RoleBindings, quota, isolation, VPC."""

from __future__ import annotations

from typing import Any

from kvinstall.catalog import load_catalog
from kvinstall.components.workspaces import COMPONENT
from kvinstall.config.models import Config
from kvinstall.model import KubeObject
from kvinstall.render.images import images_in

CATALOG = load_catalog()


def cfg(*workspaces: dict[str, Any], **extra: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "workspaces": list(workspaces),
            **extra,
        }
    )


def render(config: Config) -> list[KubeObject]:
    return COMPONENT.render(config, CATALOG, _NoArtifacts()).objects


class _NoArtifacts:
    def get(self, artifact: object) -> bytes | None:
        raise AssertionError("workspaces need no upstream artifact")


def by_kind(objects: list[KubeObject], kind: str) -> list[KubeObject]:
    return [o for o in objects if o["kind"] == kind]


TEAM = {
    "name": "team-a",
    "labels": {"cost-center": "42"},
    "members": [
        {"user": "alice@example.com", "role": "admin"},
        {"group": "devs", "role": "edit"},
        {"user": "bob@example.com", "role": "edit"},
        {"user": "alice@example.com", "role": "admin"},
    ],
    "quota": {"cpu": 16, "memory": "64Gi", "storage": "1Ti", "pods": 20, "persistentVolumeClaims": 30},
    "vpcCIDR": "10.200.0.0/24",
}


def test_full_workspace() -> None:
    objects = render(cfg(TEAM))
    (ns,) = by_kind(objects, "Namespace")
    assert ns["metadata"] == {
        "name": "team-a",
        "labels": {"cost-center": "42", "kvinstall.io/workspace": "team-a"},
    }
    bindings = {b["metadata"]["name"]: b for b in by_kind(objects, "RoleBinding")}
    assert set(bindings) == {"workspace-edit", "workspace-admin"}
    assert bindings["workspace-admin"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kubevirt.io:admin",
    }
    assert bindings["workspace-admin"]["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com"}
    ]
    assert [(s["kind"], s["name"]) for s in bindings["workspace-edit"]["subjects"]] == [
        ("Group", "devs"),
        ("User", "bob@example.com"),
    ]
    assert all(b["metadata"]["namespace"] == "team-a" for b in bindings.values())
    (quota,) = by_kind(objects, "ResourceQuota")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "16",
        "requests.memory": "64Gi",
        "requests.storage": "1Ti",
        "pods": "20",
        "persistentvolumeclaims": "30",
    }
    (vpc,) = by_kind(objects, "Vpc")
    (subnet,) = by_kind(objects, "Subnet")
    assert vpc["apiVersion"] == subnet["apiVersion"] == "kubeovn.io/v1"
    assert vpc["spec"] == {"namespaces": ["team-a"]}
    assert subnet["spec"] == {
        "vpc": vpc["metadata"]["name"],
        "cidrBlock": "10.200.0.0/24",
        "gateway": "10.200.0.1",
        "protocol": "IPv4",
        "namespaces": ["team-a"],
    }
    assert "namespace" not in vpc["metadata"] and "namespace" not in subnet["metadata"]


def test_network_policy_denies_all_but_the_workspace_and_dns() -> None:
    (policy,) = by_kind(render(cfg(TEAM)), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert spec["egress"][0] == {"to": [{"podSelector": {}}]}
    dns = spec["egress"][1]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_minimal_workspace_only_sets_what_is_configured() -> None:
    objects = render(cfg({"name": "bare", "quota": {"pods": 5}}))
    assert [o["kind"] for o in objects] == ["Namespace", "ResourceQuota", "NetworkPolicy"]
    assert by_kind(objects, "ResourceQuota")[0]["spec"]["hard"] == {"pods": "5"}
    assert [o["kind"] for o in render(cfg({"name": "bare"}))] == ["Namespace", "NetworkPolicy"]


def test_vpc_names_cannot_collide_with_kube_ovn_defaults() -> None:
    objects = render(
        cfg({"name": "ovn-cluster", "vpcCIDR": "10.9.0.0/16"}, {"name": "join", "vpcCIDR": "10.8.0.0/16"})
    )
    names = {o["metadata"]["name"] for o in objects if o["kind"] in ("Vpc", "Subnet")}
    assert names.isdisjoint({"ovn-cluster", "ovn-default", "join"})


def test_member_change_changes_only_bindings() -> None:
    before = render(cfg(TEAM))
    after = render(cfg({**TEAM, "members": [{"group": "devs", "role": "view"}]}))
    assert [o for o in before if o["kind"] != "RoleBinding"] == [
        o for o in after if o["kind"] != "RoleBinding"
    ]
    (binding,) = by_kind(after, "RoleBinding")
    assert binding["metadata"]["name"] == "workspace-view"
    assert binding["roleRef"]["name"] == "kubevirt.io:view"


def test_hostile_names_stay_single_values() -> None:
    # A user name with YAML-significant characters must not add keys or documents.
    evil = 'eve"\n---\nkind: ClusterRoleBinding'
    objects = render(cfg({"name": "t", "members": [{"user": evil, "role": "view"}]}))
    assert [o["kind"] for o in objects] == ["Namespace", "RoleBinding", "NetworkPolicy"]
    assert by_kind(objects, "RoleBinding")[0]["subjects"][0]["name"] == evil


def test_no_workspaces_still_enabled_so_the_last_removal_prunes() -> None:
    config = cfg()
    assert COMPONENT.enabled(config)
    assert render(config) == []


def test_offline_render_has_no_images() -> None:
    config = cfg(TEAM, offline={"enabled": True, "registry": "reg.site.test"})
    assert images_in(render(config)) == set()
    assert COMPONENT.images(config, CATALOG) == []


def test_deterministic_and_readiness() -> None:
    config = cfg(TEAM, {"name": "team-b"})
    assert render(config) == render(config)
    assert [r.name for r in COMPONENT.readiness(config, CATALOG)] == ["team-a", "team-b"]
