"""Kyverno and the baseline VM policies on the real apiserver.

Kyverno: the real chart (tests/upstream_pack.py) served from a local HTTPS chart repository (index +
archive) with a pinned digest, rendered by the real helm, applied by the apply engine. Kyverno itself
cannot run here, so the test plays it: Deployments become Available and the webhook configurations
it creates at run time appear. Removal order is read from the audit log.

Policies: applied as ValidatingPolicy objects (against the chart's real CRD). Kyverno's CEL engine
cannot run here either, so each policy's CEL (variables, matchConditions, validations) is loaded
into the kube-apiserver's own ValidatingAdmissionPolicy, same CEL language and Kubernetes
libraries, and real VM objects (of a stand-in VirtualMachine CRD in a test-only group) are
created against it: allowed ones pass, each violation is denied with the policy's message.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.catalog import Catalog
from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.kyverno import COMPONENT, DEPLOYMENTS
from kvinstall.components.policies import COMPONENT as POLICIES
from kvinstall.components.policies import render_policies
from kvinstall.config.models import Config
from kvinstall.errors import ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, apply_objects, execute, plan_apply, wait_ready
from substrate.crds import crd as make_crd
from substrate.https_files import serve_https
from upstream_pack import pinned_catalog, site_files

pytestmark = pytest.mark.integration

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1"


def cfg(**policies: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "components": {"kyverno": {"policies": policies}},
        }
    )


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


@pytest.fixture
def served(registry_ca: Any, tmp_path: Path) -> Iterator[tuple[Catalog, ArtifactCache]]:
    with serve_https(site_files(), registry_ca) as url:
        yield pinned_catalog(url), ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), retries=1)


def kyverno_creates_webhook(api: Any, kind: str, name: str) -> None:
    """What Kyverno does at run time. The rules match a group nothing uses, so this failurePolicy=Fail
    webhook without a backend cannot block the other tests sharing the apiserver."""
    hook = {"name": "validate.kyverno.svc-fail", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 1,
            "clientConfig": {"service": {"namespace": "kyverno", "name": "kyverno-svc", "path": "/validate"}},
            "rules": [{"apiGroups": ["unused.kvtest.io"], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["nothings"]}]}  # fmt: skip
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"webhook.kyverno.io/managed-by": "kyverno"}},
        "webhooks": [hook],
    }
    plural = (
        "validatingwebhookconfigurations"
        if kind.startswith("Validating")
        else "mutatingwebhookconfigurations"
    )
    r = api.request("POST", f"{WEBHOOKS}/{plural}", json=body)
    assert r.status_code == 201, r.text


def test_install_ready_policies_and_remove_in_safe_order(
    kube: Kube, kube_api: Any, operator_sim: Any, served: tuple[Catalog, ArtifactCache]
) -> None:
    catalog, cache = served
    config = cfg(mode="Enforce", hostDevicesNamespaces=["gpu-lab"])
    ref = ApplySetRef("kyverno")
    apply_objects(kube, ref, COMPONENT.render(config, catalog, cache).objects)
    assert kube.get("v1", "Namespace", "kyverno") is not None

    rules = COMPONENT.readiness(config, catalog)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    for name in DEPLOYMENTS:
        assert name in str(err.value)
    for name in DEPLOYMENTS:
        operator_sim.deployment_available("kyverno", name)
    wait_ready(kube, rules, timeout=30, interval=0.5)

    # The policies, after Kyverno (its CRDs come with the chart).
    pref = ApplySetRef("policies")
    apply_objects(kube, pref, POLICIES.render(config, catalog, cache).objects)
    policy_rules = POLICIES.readiness(config, catalog)
    # Not ready until Kyverno (played here) has compiled each policy and says so in its status.
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, policy_rules, timeout=1, interval=0.5)
    assert "status.conditionStatus.ready is unset, want True" in str(err.value)
    for rule in policy_rules:
        operator_sim.patch_status(
            f"/apis/policies.kyverno.io/v1/validatingpolicies/{rule.name}",
            {"status": {"conditionStatus": {"ready": True}}},
        )
    wait_ready(kube, policy_rules, timeout=30, interval=0.5)
    live = kube.get("policies.kyverno.io/v1", "ValidatingPolicy", "kvinstall-vm-host-devices")
    assert live is not None and live["spec"]["validationActions"] == ["Deny"]
    # Disabling a policy prunes it.
    fewer = cfg(mode="Enforce", disabled=["kvinstall-vm-no-hostdisk"])
    apply_objects(kube, pref, POLICIES.render(fewer, catalog, cache).objects)
    assert kube.get("policies.kyverno.io/v1", "ValidatingPolicy", "kvinstall-vm-no-hostdisk") is None
    assert kube.get("policies.kyverno.io/v1", "ValidatingPolicy", "kvinstall-vm-host-devices") is not None
    execute(kube, plan_apply(kube, pref, []),
            prune_hook=lambda k, items, rest: POLICIES.remove(fewer, catalog, k, rest))  # fmt: skip
    assert kube.get("policies.kyverno.io/v1", "ValidatingPolicy", "kvinstall-vm-host-devices") is None

    kyverno_creates_webhook(
        kube_api, "ValidatingWebhookConfiguration", "kyverno-resource-validating-webhook-cfg"
    )
    kyverno_creates_webhook(kube_api, "MutatingWebhookConfiguration", "kyverno-resource-mutating-webhook-cfg")
    mark = kube_api.audit_mark()
    execute(kube, plan_apply(kube, ref, []),
            prune_hook=lambda k, items, rest: COMPONENT.remove(config, catalog, k, rest))  # fmt: skip
    deletes = [w for w in kube_api.writes_since(mark) if w.verb == "delete" and not w.dry_run]
    # Each object deleted once: nothing deleted again after the removal hook took it (no 404s).
    assert [f"{w.resource}/{w.name}" for w in deletes if w.code == 404] == []
    steps = [(w.resource, w.name) for w in deletes if w.code < 300]
    deployments = [steps.index(("deployments", d)) for d in DEPLOYMENTS]
    hooks = [
        steps.index(("validatingwebhookconfigurations", "kyverno-resource-validating-webhook-cfg")),
        steps.index(("mutatingwebhookconfigurations", "kyverno-resource-mutating-webhook-cfg")),
    ]
    rest = steps.index(("configmaps", "kyverno"))
    assert max(deployments) < min(hooks) and max(hooks) < rest
    assert kube.get("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
                    "kyverno-resource-validating-webhook-cfg") is None  # fmt: skip


# --- the policies' CEL, evaluated by the apiserver ----------------------------------------------

GROUP = "policytest.kvinstall.io"


def _vm_crd(kind: str, plural: str) -> dict[str, Any]:
    return make_crd(GROUP, kind, plural, status=False)


def as_admission_policy(policy: dict[str, Any], suffix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ValidatingPolicy's CEL as a ValidatingAdmissionPolicy + binding, matching the test group."""
    spec = policy["spec"]
    match = copy.deepcopy(spec["matchConstraints"])
    for rule in match["resourceRules"]:
        rule["apiGroups"] = [GROUP]
    name = f"{policy['metadata']['name']}-{suffix}"
    vap_spec = {"failurePolicy": "Fail", "matchConstraints": match, "validations": spec["validations"]}
    for key in ("variables", "matchConditions"):
        if key in spec:
            vap_spec[key] = spec[key]
    vap = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": vap_spec,
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return vap, binding


def vm(
    name: str,
    spec: dict[str, Any] | None = None,
    *,
    instancetype: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    domain: dict[str, Any] = {"devices": {}, "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    template: dict[str, Any] = {"spec": {"domain": domain, **(spec or {})}}
    if spec and "domain" in spec:
        template["spec"]["domain"] = spec["domain"]
    if annotations:
        template["metadata"] = {"annotations": annotations}
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"template": template},
    }
    if instancetype:
        body["spec"]["instancetype"] = {"name": "u1.small"}
    return body


def test_policy_cel_allows_good_vms_and_denies_each_violation(kube: Kube, kube_api: Any) -> None:
    suffix = uuid.uuid4().hex[:6]
    ns_plain, ns_gpu = f"kvtest-pol-{suffix}", f"kvtest-gpu-{suffix}"
    config = cfg(hostDevicesNamespaces=[ns_gpu])
    for crd in (
        _vm_crd("VirtualMachine", "virtualmachines"),
        _vm_crd("VirtualMachineInstance", "virtualmachineinstances"),
    ):
        kube.apply(crd, force=True)
    kube.resource(f"{GROUP}/v1", "VirtualMachine", wait=30)
    created: list[str] = []
    try:
        for ns in (ns_plain, ns_gpu):
            assert kube_api.request("POST", "/api/v1/namespaces",
                                    json={"metadata": {"name": ns}}).status_code == 201  # fmt: skip
            created.append(f"/api/v1/namespaces/{ns}")
        for policy in render_policies(config):
            for obj in as_admission_policy(policy, suffix):
                kube.apply(obj, force=True)
                plural = "validatingadmissionpolicies" if obj["kind"].endswith("Policy") else \
                    "validatingadmissionpolicybindings"  # fmt: skip
                created.append(f"{WEBHOOKS}/{plural}/{obj['metadata']['name']}")

        def create(ns: str, body: dict[str, Any]) -> tuple[int, str]:
            r = kube_api.request("POST", f"/apis/{GROUP}/v1/namespaces/{ns}/virtualmachines", json=body)
            return r.status_code, r.text

        gpu = {"domain": {"devices": {"gpus": [{"name": "g", "deviceName": "nvidia.com/T4"}]},
                          "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}}  # fmt: skip
        hostdev = {"domain": {"devices": {"hostDevices": [{"name": "h", "deviceName": "nvidia.com/A"}]},
                              "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}  # fmt: skip
        sriov = {"domain": {"devices": {"interfaces": [{"name": "n", "sriov": {}}]},
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}  # fmt: skip
        no_limits = {"domain": {"devices": {}, "cpu": {"cores": 2}}}
        hostdisk = {"volumes": [{"name": "d", "hostDisk": {"path": "/var/x.img", "type": "DiskOrCreate"}}]}
        pvc = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]}
        lun = {"domain": {"devices": {"disks": [{"name": "l", "lun": {"reservation": True}}]},
                          "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}  # fmt: skip
        lun_ok = {"domain": {"devices": {"disks": [{"name": "l", "lun": {}}]},
                             "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}  # fmt: skip

        # Allowed.
        for i, (ns, body) in enumerate([
            (ns_plain, vm("plain")), (ns_plain, vm("pvc", pvc)), (ns_plain, vm("lun-ok", lun_ok)),
            (ns_plain, vm("typed", no_limits, instancetype=True)), (ns_gpu, vm("gpu", gpu)),
            (ns_gpu, vm("hostdev", hostdev)),
            (ns_plain, vm("other-annotation", annotations={"kubevirt.io/allow-pod-bridge-network-live-migration": "true"})),
        ]):  # fmt: skip
            code, text = create(ns, body)
            assert code == 201, f"allowed case {i} ({body['metadata']['name']}) was refused: {text}"

        # Denied, each with its policy's message.
        for ns, body, message in [
            (ns_plain, vm("gpu", gpu), "GPUs"),
            (ns_plain, vm("hostdev", hostdev), "host devices"),
            (ns_plain, vm("sriov", sriov), "SR-IOV"),
            (ns_plain, vm("nolimits", no_limits), "limits.cpu"),
            (ns_plain, vm("hostdisk", hostdisk), "hostDisk"),
            (ns_plain, vm("sidecar", annotations={"hooks.kubevirt.io/hookSidecars": "[]"}), "hookSidecars"),
            (ns_plain, vm("lun", lun), "reservation"),
        ]:  # fmt: skip
            code, text = create(ns, body)
            assert code in (403, 422), f"{body['metadata']['name']} was not denied: {code} {text}"
            assert message in text, text
    finally:
        for path in reversed(created):
            kube_api.request("DELETE", path)
