"""Kyverno from the real chart of the release (rendered by the real helm), and the baseline VM policies."""

from __future__ import annotations

from typing import Any

from kvinstall.catalog import load_catalog
from kvinstall.components import ALL_COMPONENTS, COMPONENT_MODULES, component
from kvinstall.components.base import ordered
from kvinstall.components.kyverno import COMPONENT as KYVERNO
from kvinstall.components.kyverno import DEPLOYMENTS, chart_values
from kvinstall.components.policies import COMPONENT as POLICIES
from kvinstall.components.policies import policy_ids, render_policies
from kvinstall.config.models import Config
from kvinstall.render.images import images_in, images_outside
from upstream_pack import MemorySource, PackSource

CATALOG = load_catalog()


def config(**extra: Any) -> Config:
    data: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "lab"},
        "hosts": [{"address": "10.0.0.1", "role": "controlPlane"}],
    }
    data.update(extra)
    return Config.model_validate(data)


def test_online_render_uses_upstream_images() -> None:
    rendered = KYVERNO.render(config(), CATALOG, PackSource())
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
    assert {("Deployment", d) for d in DEPLOYMENTS} <= names
    assert ("Namespace", "kyverno") in names
    assert rendered.objects[0]["kind"] == "Namespace"
    assert ("CustomResourceDefinition", "validatingpolicies.policies.kyverno.io") in names
    assert "reg.kyverno.io/kyverno/kyverno:v1.18.2" in images_in(rendered.objects)
    # Hooks (webhook cleanup, CRD migration, the readiness test) are not applied.
    assert not any(o["kind"] in ("Job", "Pod") for o in rendered.objects)
    # The chart writes `defaultMode: 0444`: octal, as Kubernetes reads it (r--r--r--).
    deploy = next(o for o in rendered.objects if (o["kind"], o["metadata"]["name"]) == ("Deployment", DEPLOYMENTS[0]))
    modes = [v["projected"]["defaultMode"] for v in deploy["spec"]["template"]["spec"]["volumes"] if "projected" in v]
    assert modes == [0o444]


def test_offline_points_every_image_at_the_site() -> None:
    cfg = config(offline={"enabled": True, "registry": "10.1.1.1:5000"})
    values = chart_values(cfg)
    assert values["admissionController"]["initContainer"]["image"]["registry"] == "10.1.1.1:5000"
    rendered = KYVERNO.render(cfg, CATALOG, PackSource())
    assert images_outside(rendered.objects, "10.1.1.1:5000") == set()
    assert "10.1.1.1:5000/kyverno/kyvernopre:v1.18.2" in images_in(rendered.objects)


def test_online_values_are_empty() -> None:
    assert chart_values(config()) == {}


def test_readiness_is_the_four_deployments() -> None:
    assert [(r.kind, r.name, r.namespace) for r in KYVERNO.readiness(config(), CATALOG)] == [
        ("Deployment", d, "kyverno") for d in DEPLOYMENTS
    ]


def test_disabled_kyverno_disables_policies() -> None:
    cfg = config(components={"kyverno": {"enabled": False}})
    assert not KYVERNO.enabled(cfg) and not POLICIES.enabled(cfg)
    assert [c.name for c in ordered(ALL_COMPONENTS, cfg)] == ["kubeovn", "kubevirt", "cdi", "workspaces"]


def test_install_order() -> None:
    assert [c.name for c in ALL_COMPONENTS] == list(COMPONENT_MODULES)
    assert COMPONENT_MODULES.index("kyverno") > COMPONENT_MODULES.index("dex")
    assert component("kubeovn").title == "Kube-OVN"


# --- policies ---------------------------------------------------------------------------------


def test_policy_set_shape() -> None:
    ids = policy_ids()
    assert len(ids) == 5 and len(set(ids)) == 5
    for policy in render_policies(config()):
        assert policy["apiVersion"] == "policies.kyverno.io/v1"
        assert policy["kind"] == "ValidatingPolicy"
        assert policy["spec"]["validationActions"] == ["Audit"]
        assert policy["spec"]["validations"]
        exprs = policy["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"]
        assert exprs[0] == {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system"],
        } or (policy["metadata"]["name"] == "kvinstall-vm-host-devices")


def test_enforce_mode_and_allowed_namespaces_and_disabled() -> None:
    cfg = config(
        components={
            "kyverno": {
                "policies": {
                    "mode": "Enforce",
                    "hostDevicesNamespaces": ["gpu-team", "ai"],
                    "disabled": ["kvinstall-vm-no-hostdisk"],
                }
            }
        }
    )
    policies = {p["metadata"]["name"]: p for p in render_policies(cfg)}
    assert "kvinstall-vm-no-hostdisk" not in policies
    assert all(p["spec"]["validationActions"] == ["Deny"] for p in policies.values())
    hd = policies["kvinstall-vm-host-devices"]["spec"]["matchConstraints"]["namespaceSelector"][
        "matchExpressions"
    ]
    assert hd[0]["values"] == ["ai", "gpu-team", "kube-system"]
    other = policies["kvinstall-vm-no-sidecar-hooks"]["spec"]["matchConstraints"]["namespaceSelector"]
    assert other["matchExpressions"][0]["values"] == ["kube-system"]
    # The shipped manifests are not modified by rendering.
    again = {p["metadata"]["name"]: p for p in render_policies(config())}
    assert again["kvinstall-vm-host-devices"]["spec"]["validationActions"] == ["Audit"]


def test_policies_component() -> None:
    cfg = config(components={"kyverno": {"policies": {"disabled": ["nope"]}}})
    rendered = POLICIES.render(cfg, CATALOG, MemorySource({}))
    assert len(rendered.objects) == 5
    assert any("nope" in n for n in rendered.notes)
    assert [r.name for r in POLICIES.readiness(cfg, CATALOG)] == sorted(policy_ids())


def test_every_policy_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    for pid in policy_ids():
        assert f"`{pid}`" in doc
