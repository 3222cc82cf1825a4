"""Pure logic of the apply engine: drift decisions from live objects and managedFields, diffs,
redaction, quantities, the ApplySet id, readiness verdicts and retry classification."""

from __future__ import annotations

import copy
from typing import Any

from kvinstall.kube.drift import (
    compare,
    compare_dry_run,
    diff_values,
    fold_string_data,
    redact,
    same_quantity,
)
from kvinstall.kube.inventory import ApplySetRef, applyset_id, parent_is_current, parent_object
from kvinstall.kube.retry import Backoff, is_transient_status, parse_retry_after
from kvinstall.kube.wait import is_ready
from kvinstall.model import ReadinessRule

DESIRED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}}},
        "f:selector": {},
    },
}


def live(fields: dict[str, Any] | None = FIELDS, **spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(DESIRED)
    obj["metadata"].update(resourceVersion="7", uid="u")
    obj["spec"]["ports"][0]["protocol"] = "TCP"  # defaulted by the server
    obj["spec"].update(clusterIP="10.0.0.5", type="ClusterIP")
    obj["spec"].update(spec)
    if fields is not None:
        obj["metadata"]["managedFields"] = [
            {"manager": "kvinstall", "operation": "Apply", "fieldsV1": fields}
        ]
    return obj


def test_unchanged_despite_server_defaults() -> None:
    assert compare(DESIRED, live()).verdict == "unchanged"


def test_webhook_rules_unchanged_despite_their_defaulted_scope_and_an_injected_ca() -> None:
    """A webhook's rules are an atomic list whose items the server gives `scope: "*"`; the caBundle a
    controller injects is its field, not kvinstall's. Neither is drift; a changed rule still is."""
    rule = {"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "operations": ["CREATE"],
            "resources": ["ipaddresspools"]}  # fmt: skip
    desired = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": "hooks"},
               "webhooks": [{"name": "pool.example.com", "rules": [rule], "failurePolicy": "Fail",
                             "clientConfig": {"service": {"name": "svc", "namespace": "ns"}}}]}  # fmt: skip
    fields = {"f:webhooks": {'k:{"name":"pool.example.com"}': {
        ".": {}, "f:name": {}, "f:rules": {}, "f:failurePolicy": {},
        "f:clientConfig": {"f:service": {"f:name": {}, "f:namespace": {}}}}}}  # fmt: skip
    live = copy.deepcopy(desired)
    hook = live["webhooks"][0]
    hook["rules"][0]["scope"] = "*"
    hook["clientConfig"]["caBundle"] = "LS0tLS1CRUdJTg=="
    hook["clientConfig"]["service"]["port"] = 443
    hook.update(matchPolicy="Equivalent", timeoutSeconds=10, namespaceSelector={}, objectSelector={})
    live["metadata"]["managedFields"] = [{"manager": "kvinstall", "operation": "Apply", "fieldsV1": fields}]
    assert compare(desired, live).verdict == "unchanged"
    hook["rules"][0]["operations"] = ["CREATE", "UPDATE"]
    assert compare(desired, live).verdict == "uncertain"
    # Elsewhere a `rules` list gets no such default (an RBAC role's rules have no scope).
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}  # fmt: skip
    role_live = copy.deepcopy(role)
    role_live["metadata"]["managedFields"] = [
        {"manager": "kvinstall", "operation": "Apply", "fieldsV1": {"f:rules": {}}}]
    assert compare(role, role_live).verdict == "unchanged"


def test_empty_values_the_server_omits_are_unchanged() -> None:
    # Charts render `args: []` or `env: {}`; the apiserver stores them as absent.
    desired = copy.deepcopy(DESIRED)
    desired["spec"]["externalIPs"] = []
    fields = copy.deepcopy(FIELDS)
    fields["f:spec"]["f:externalIPs"] = {}
    assert compare(desired, live(fields)).verdict == "unchanged"


def test_value_changed_by_another_manager_is_a_decided_update() -> None:
    fields = copy.deepcopy(FIELDS)
    del fields["f:spec"]["f:selector"]  # another manager took the field over
    cmp = compare(DESIRED, live(fields, selector={"app": "other"}))
    assert cmp.verdict == "changed"
    assert {"path": "spec.selector.app", "op": "change", "before": "other", "after": "web"} in [
        c.to_dict() for c in cmp.changes
    ]


def test_value_differing_in_an_owned_field_needs_the_server() -> None:
    assert compare(DESIRED, live(selector={"app": "x"})).verdict == "uncertain"


def test_field_no_longer_desired_is_removed() -> None:
    fields = copy.deepcopy(FIELDS)
    fields["f:spec"]["f:sessionAffinity"] = {}
    cmp = compare(DESIRED, live(fields, sessionAffinity="ClientIP"))
    assert cmp.verdict == "changed"
    assert cmp.changes[0].to_dict() == {"path": "spec.sessionAffinity", "op": "remove", "before": "ClientIP"}


def test_never_applied_object_is_adopted() -> None:
    cmp = compare(DESIRED, live(None))
    assert cmp.verdict == "changed" and [c.op for c in cmp.changes] == ["owner"]


def test_quantities_compare_by_value_only_at_quantity_paths() -> None:
    assert same_quantity("spec.containers[name=c].resources.requests.cpu", "0.5", "500m")
    assert same_quantity("spec.containers[name=c].resources.limits.memory", "1Gi", "1024Mi")
    assert not same_quantity("data.cpu", "0.5", "500m")
    assert not same_quantity("spec.containers[name=c].resources.requests.cpu", "1", "2")


def test_dry_run_comparison_ignores_server_fields_and_status() -> None:
    a = live()
    b = copy.deepcopy(a)
    b["metadata"]["resourceVersion"] = "8"
    b["status"] = {"x": 1}
    assert compare_dry_run(b, a).verdict == "unchanged"
    b["spec"]["selector"] = {"app": "new"}
    assert [c.path for c in compare_dry_run(b, a).changes] == ["spec.selector.app"]


def test_secret_values_are_redacted_and_string_data_folded() -> None:
    s = fold_string_data({"kind": "Secret", "stringData": {"p": "hunter2"}, "data": {"q": "eA=="}})
    assert s["data"] == {"q": "eA==", "p": "aHVudGVyMg=="} and "stringData" not in s
    changes = redact(
        "Secret", diff_values("", {"data": {"p": "old"}}, {"data": {"p": "new"}, "type": "Opaque"})
    )
    assert [c.to_dict() for c in changes] == [
        {"path": "data.p", "op": "change", "before": "(redacted)", "after": "(redacted)"},
        {"path": "type", "op": "add", "after": "Opaque"},
    ]


def test_applyset_id_follows_kep_3659() -> None:
    # kubectl's value for a Secret parent "parent" in namespace "ns" (same formula, checked against
    # kubectl itself in tests/integration/test_kube_apply.py).
    ref = ApplySetRef("parent", "ns")
    assert ref.id == applyset_id("parent", "ns", "Secret", "")
    assert ref.id.startswith("applyset-") and ref.id.endswith("-v1") and "=" not in ref.id
    desired = parent_object(ref, {"Deployment.apps", "ConfigMap"}, {"ns", "other"})
    ann = desired["metadata"]["annotations"]
    assert ann["applyset.kubernetes.io/contains-group-kinds"] == "ConfigMap,Deployment.apps"
    assert ann["applyset.kubernetes.io/additional-namespaces"] == "other"
    assert parent_is_current(copy.deepcopy(desired), desired)
    assert not parent_is_current(None, desired)


def test_readiness_verdicts_name_the_reason() -> None:
    dep = ReadinessRule("apps/v1", "Deployment", "web", "ns")
    obj = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "True", "message": "rolling out"}],
        },
    }
    ok, why = is_ready(dep, obj)
    assert not ok and "1/2 ready" in why and "rolling out" in why
    obj["status"].update(readyReplicas=2, availableReplicas=2)
    obj["status"]["conditions"].append({"type": "Available", "status": "True"})
    assert is_ready(dep, obj) == (True, "")
    cr = ReadinessRule(
        "kubevirt.io/v1",
        "KubeVirt",
        "kv",
        "kubevirt",
        phase="Deployed",
        conditions=(("Available", "True"), ("Degraded", "False")),
    )
    ok, why = is_ready(
        cr,
        {
            "metadata": {},
            "status": {
                "phase": "Deploying",
                "conditions": [{"type": "Degraded", "status": "True", "message": "virt-api crashloop"}],
            },
        },
    )
    assert not ok and "phase Deploying" in why and "virt-api crashloop" in why
    assert is_ready(cr, None) == (False, "not found")
    job = ReadinessRule("batch/v1", "Job", "j")
    assert is_ready(job, {"status": {"conditions": [{"type": "Complete", "status": "True"}]}})[0]


def test_retry_classification() -> None:
    assert all(is_transient_status(s) for s in (429, 500, 502, 503, 504))
    assert not any(is_transient_status(s) for s in (400, 403, 404, 409, 422))
    assert is_transient_status(404, apply_not_found=True)
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None
    assert Backoff().delay(0, retry_after=120) == 30.0
    assert 0 < Backoff().delay(10) <= 3.0
