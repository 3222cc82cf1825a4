"""Changes to the file, end to end: a KubeVirt feature gate added (the CR updated), Dex switched off
(every Dex object removed by the prune phase), a workspace added and another removed (its objects
pruned, its Namespace kept unless protected kinds may be pruned).

World: sshd host lab + real kube-apiserver + real helm; KubeOne is a stand-in and a fake controller
loop plays the operators (see platform_world.py). The tests of this module share one apiserver; each
converges its own starting config first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import World, apply_in_process, converged, kvinstall_writes, lab_config

pytestmark = pytest.mark.e2e

KUBEVIRT_CR = "KubeVirt.kubevirt.io/kubevirt/kubevirt"
STATE = ("update", "Secret/kvinstall-system/kvinstall-state")  # the last applied config, recorded


def _get(world: World, path: str) -> dict[str, Any] | None:
    resp = world.api.request("GET", path)
    assert resp.status_code in (200, 404), resp.text[:300]
    return resp.json() if resp.status_code == 200 else None


def test_feature_gate_added_updates_the_kubevirt_cr(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab, state, config = converged(world, host_lab, tmp_path)

    config["components"]["kubevirt"]["featureGates"] = ["Snapshot"]
    second = apply_in_process(world, lab, config, state)
    assert second.code == 0, second.error
    assert second.events.objects() == [STATE, ("update", KUBEVIRT_CR)]
    event = second.events.of("object")[1]
    assert event["phase"] == "component/kubevirt"
    assert any("featureGates" in c["path"] and "Snapshot" in str(c.get("after")) for c in event["changes"]), (
        event
    )
    cr = _get(world, "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt")
    assert cr is not None
    gates = cr["spec"]["configuration"]["developerConfiguration"]["featureGates"]
    assert "Snapshot" in gates
    # KubeOne manages nothing of this: it was not run again.
    assert second.events.phases()["kubeone"] == "skipped"


def test_dex_switched_off_is_pruned(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab, state, config = converged(world, host_lab, tmp_path)
    assert _get(world, "/apis/apps/v1/namespaces/dex/deployments/dex") is not None

    config["auth"] = {"mode": "none"}
    off = apply_in_process(world, lab, config, state)
    assert off.code == 0, off.error
    assert "component/dex" not in off.events.phases()
    deleted = {obj for action, obj in off.events.objects() if action == "delete"}
    for obj in ("Deployment.apps/dex/dex", "Service/dex/dex"):
        assert obj in deleted, sorted(deleted)
    assert any(obj.startswith("Secret/dex/") for obj in deleted), sorted(deleted)
    # Only the prune phase deleted, and only Dex's objects (and not its Namespace without --prune-all).
    prune_events = [e for e in off.events.of("object") if e["action"] == "delete"]
    assert {e["phase"] for e in prune_events} == {"prune"}
    assert all(
        e["object"].split("/")[1] == "dex" or e["object"].startswith("ClusterRole") for e in prune_events
    )
    assert "Namespace/dex" not in deleted
    assert off.events.phases()["prune"] == "ok"
    assert _get(world, "/apis/apps/v1/namespaces/dex/deployments/dex") is None
    assert _get(world, "/api/v1/namespaces/dex/services/dex") is None
    secrets = _get(world, "/api/v1/namespaces/dex/secrets") or {}
    assert [s["metadata"]["name"] for s in secrets.get("items", [])] == []

    # Switched off stays off: the next run has nothing to prune.
    mark = world.api.audit_mark()
    again = apply_in_process(world, lab, config, state)
    assert again.code == 0, again.error
    assert again.events.objects() == []
    assert kvinstall_writes(world, mark) == []


def test_workspace_added_and_another_removed(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)
    config["workspaces"][1]["quota"] = {"pods": 20}  # team-b: RoleBinding, ResourceQuota, NetworkPolicy
    first = apply_in_process(world, lab, config, state)
    assert first.code == 0, first.error
    assert _get(world, "/api/v1/namespaces/team-b/resourcequotas/workspace-quota") is not None

    config["workspaces"] = [config["workspaces"][0], {"name": "team-c", "members": [
        {"user": "carol@example.com", "role": "view"}]}]  # fmt: skip
    change = apply_in_process(world, lab, config, state)
    assert change.code == 0, change.error
    objects = set(change.events.objects())
    for obj in ("Namespace/team-c", "RoleBinding.rbac.authorization.k8s.io/team-c/workspace-view",
                "NetworkPolicy.networking.k8s.io/team-c/workspace-isolation"):  # fmt: skip
        assert ("create", obj) in objects, sorted(objects)
    for obj in ("RoleBinding.rbac.authorization.k8s.io/team-b/workspace-edit", "ResourceQuota/team-b/workspace-quota",
                "NetworkPolicy.networking.k8s.io/team-b/workspace-isolation"):  # fmt: skip
        assert ("delete", obj) in objects, sorted(objects)
    # The Namespace (and whatever tenants keep in it) stays without --prune-all.
    assert ("delete", "Namespace/team-b") not in objects
    kept = _get(world, "/api/v1/namespaces/team-b")
    assert kept is not None and "deletionTimestamp" not in kept["metadata"]
    assert (
        _get(world, "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings/workspace-edit")
        is None
    )
    assert _get(world, "/api/v1/namespaces/team-b/resourcequotas/workspace-quota") is None
    assert (
        _get(world, "/apis/networking.k8s.io/v1/namespaces/team-b/networkpolicies/workspace-isolation")
        is None
    )
    assert {e["phase"] for e in change.events.of("object") if e["action"] != "update"} == {"workspaces"}
    assert STATE in objects

    # With protected kinds prunable (--prune-all) the Namespace delete is requested. This apiserver
    # runs no namespace controller, so it stays Terminating: that is all that can be asserted here.
    mark = world.api.audit_mark()
    prune_all = apply_in_process(world, lab, config, state, prune_protected=True)
    assert prune_all.code == 0, prune_all.error
    assert prune_all.events.objects() == [("delete", "Namespace/team-b")]
    writes = kvinstall_writes(world, mark)
    assert any(w.startswith("delete /api/v1/namespaces/team-b") for w in writes), writes
    terminating = _get(world, "/api/v1/namespaces/team-b")
    assert terminating is None or "deletionTimestamp" in terminating["metadata"]

    # Asked again, it is not deleted again: an object already being deleted is no longer pruned.
    mark = world.api.audit_mark()
    again = apply_in_process(world, lab, config, state, prune_protected=True)
    assert again.code == 0, again.error
    assert again.events.objects() == []
    assert kvinstall_writes(world, mark) == []
