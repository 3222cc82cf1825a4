"""Self-healing, end to end: another manager edits the cluster behind kvinstall's back (through the
real apiserver, as the admin identity, with its own field manager); ONE re-run repairs every drift
and names each one in its event stream; the run after that is a no-op.

World: sshd host lab + real kube-apiserver + real helm; KubeOne is a stand-in and a fake controller
loop plays the operators (see platform_world.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import World, apply_in_process, delete_gone, kvinstall_writes, lab_config

pytestmark = pytest.mark.e2e

OTHER = {"fieldManager": "another-manager"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}

KUBEVIRT_CR = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
OVN_CENTRAL = "/apis/apps/v1/namespaces/kube-system/deployments/ovn-central"
VIRT_OPERATOR = "/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator"
ROLEBINDING = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/workspace-admin"
POLICY = "/apis/policies.kyverno.io/v1/validatingpolicies/kvinstall-vm-no-hostdisk"
PSA_LABEL = "pod-security.kubernetes.io/enforce"


def _ok(resp: Any) -> Any:
    assert resp.status_code < 300, f"{resp.status_code} {resp.text[:300]}"
    return resp.json()


def _changes(result: Any, obj: str) -> list[dict[str, Any]]:
    """The value changes the run reported for `obj` (ownership-only changes left out)."""
    out: list[dict[str, Any]] = []
    for e in result.events.of("object"):
        if e["object"] == obj and e["action"] == "update":
            out += [c for c in e.get("changes") or [] if c["op"] != "owner"]
    return out


def test_every_drift_is_named_and_repaired_by_one_run(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)
    config["workspaces"][0]["labels"] = {"cost-center": "cc-42"}

    first = apply_in_process(world, lab, config, state)
    assert first.code == 0, first.error

    # --- another manager drifts six things ------------------------------------------------------
    api = world.api
    delete_gone(world, KUBEVIRT_CR)
    central = _ok(api.request("GET", OVN_CENTRAL))
    container = central["spec"]["template"]["spec"]["containers"][0]["name"]
    tampered = "registry.other.example/kube-ovn:tampered"
    _ok(api.request("PATCH", OVN_CENTRAL, params=OTHER, headers=STRATEGIC, json={
        "spec": {"template": {"spec": {"containers": [{"name": container, "image": tampered}]}}}}))  # fmt: skip
    _ok(api.request("DELETE", ROLEBINDING))
    _ok(api.request("DELETE", POLICY))
    _ok(api.request("PATCH", VIRT_OPERATOR, params=OTHER, headers=STRATEGIC, json={"spec": {"replicas": 0}}))
    escaped = PSA_LABEL.replace("/", "~1")
    _ok(api.request("PATCH", "/api/v1/namespaces/kubevirt", params=OTHER, headers=JSON_PATCH,
                    json=[{"op": "remove", "path": f"/metadata/labels/{escaped}"}]))  # fmt: skip
    _ok(api.request("PATCH", "/api/v1/namespaces/team-a", params=OTHER, headers=JSON_PATCH,
                    json=[{"op": "remove", "path": "/metadata/labels/cost-center"}]))  # fmt: skip

    # --- one run repairs all of it, naming each ---------------------------------------------------
    repair = apply_in_process(world, lab, config, state)
    assert repair.code == 0, repair.error
    named = set(repair.events.objects())
    expected = {
        ("create", "KubeVirt.kubevirt.io/kubevirt/kubevirt"),
        ("update", "Deployment.apps/kube-system/ovn-central"),
        ("create", "RoleBinding.rbac.authorization.k8s.io/team-a/workspace-admin"),
        ("create", "ValidatingPolicy.policies.kyverno.io/kvinstall-vm-no-hostdisk"),
        ("update", "Deployment.apps/kubevirt/virt-operator"),
        ("update", "Namespace/kubevirt"),
        ("update", "Namespace/team-a"),
    }
    assert expected <= named, sorted(named)
    # Nothing else was touched: the repair is exactly the drift.
    assert named == expected, sorted(named - expected)

    # Field-level: what changed, from what to what.
    image = [c for c in _changes(repair, "Deployment.apps/kube-system/ovn-central") if "image" in c["path"]]
    assert image and image[0]["before"] == tampered, image
    assert image[0]["after"] != tampered
    replicas = [c for c in _changes(repair, "Deployment.apps/kubevirt/virt-operator") if c["path"] == "spec.replicas"]
    assert replicas and replicas[0]["before"] == 0 and replicas[0]["after"] == 2, replicas
    psa = [c for c in _changes(repair, "Namespace/kubevirt") if PSA_LABEL in c["path"]]
    assert psa and psa[0]["after"] == "privileged", _changes(repair, "Namespace/kubevirt")
    label = [c for c in _changes(repair, "Namespace/team-a") if "cost-center" in c["path"]]
    assert label and label[0]["after"] == "cc-42", _changes(repair, "Namespace/team-a")
    # Each drift is reported in the phase of the component that owns it.
    phase_of = {e["object"]: e["phase"] for e in repair.events.of("object")}
    assert phase_of["KubeVirt.kubevirt.io/kubevirt/kubevirt"] == "component/kubevirt"
    assert phase_of["Deployment.apps/kube-system/ovn-central"] == "component/kubeovn"
    assert phase_of["ValidatingPolicy.policies.kyverno.io/kvinstall-vm-no-hostdisk"] == "component/policies"
    assert phase_of["RoleBinding.rbac.authorization.k8s.io/team-a/workspace-admin"] == "workspaces"

    # The cluster really is repaired (read back as the admin, not through kvinstall).
    assert _ok(api.request("GET", KUBEVIRT_CR))["metadata"]["name"] == "kubevirt"
    live = _ok(api.request("GET", OVN_CENTRAL))["spec"]["template"]["spec"]["containers"][0]["image"]
    assert live == image[0]["after"]
    assert _ok(api.request("GET", VIRT_OPERATOR))["spec"]["replicas"] == 2
    assert _ok(api.request("GET", ROLEBINDING))["roleRef"]["name"] == "kubevirt.io:admin"
    _ok(api.request("GET", POLICY))
    assert _ok(api.request("GET", "/api/v1/namespaces/kubevirt"))["metadata"]["labels"][PSA_LABEL] == "privileged"
    assert _ok(api.request("GET", "/api/v1/namespaces/team-a"))["metadata"]["labels"]["cost-center"] == "cc-42"

    # --- and then there is nothing left to do -----------------------------------------------------
    mark = api.audit_mark()
    third = apply_in_process(world, lab, config, state)
    assert third.code == 0, third.error
    assert third.events.objects() == []
    assert kvinstall_writes(world, mark) == []
