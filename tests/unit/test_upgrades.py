"""The upgrade rules (kvinstall.catalog.upgrades) over the shipped catalog's data, and over a catalog
with one more version (what adding a release to catalog.yaml does)."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import pytest
import yaml

from kvinstall.catalog import Catalog, load_catalog, parse_catalog
from kvinstall.catalog.upgrades import (
    check_upgrades,
    hop_supported,
    minor,
    parse_version,
    upgrade_path,
)
from kvinstall.errors import UpgradeRefused, exit_code

TITLES = {"kubernetes": "Kubernetes", "kubeovn": "Kube-OVN", "kubevirt": "KubeVirt", "cdi": "CDI",
          "kyverno": "Kyverno", "dex": "Dex"}  # fmt: skip
OLD = {
    "kubernetes": "v1.33.8",
    "kubeovn": "v1.15.24",
    "kubevirt": "v1.7.4",
    "cdi": "v1.64.0",
    "kyverno": "v1.17.2",
}
NEW = {
    "kubernetes": "v1.34.4",
    "kubeovn": "v1.16.2",
    "kubevirt": "v1.8.4",
    "cdi": "v1.65.0",
    "kyverno": "v1.18.2",
}


def shipped_data() -> dict[str, Any]:
    return yaml.safe_load(resources.files("kvinstall.catalog").joinpath("catalog.yaml").read_text())


def check(installed: dict[str, str | None], wanted: dict[str, str], catalog: Catalog | None = None,
          **kw: Any) -> Any:  # fmt: skip
    return check_upgrades(catalog or load_catalog(), installed, wanted, titles=TITLES,
                          kubeone_version="v1.13.7", **kw)  # fmt: skip


def with_kubevirt_v19(data: dict[str, Any]) -> Catalog:
    """The shipped catalog plus a KubeVirt v1.9.0 release and the hop v1.8 -> v1.9: data only."""
    data = copy.deepcopy(data)
    kv = data["components"]["kubevirt"]
    kv["versions"]["v1.9.0"] = copy.deepcopy(kv["versions"]["v1.8.4"])
    kv["versions"]["v1.9.0"]["kubernetes"] = {"min": "v1.34", "max": "v1.36"}
    kv["upgrades"]["v1.8"] = ["v1.9"]
    return parse_catalog(data)


def test_versions() -> None:
    assert parse_version("v1.34.4") == (1, 34, 4)
    assert parse_version("1.7") == (1, 7, 0)
    assert minor("v1.16.2") == "v1.16"
    with pytest.raises(ValueError):
        parse_version("latest")


def test_every_component_of_the_pack_upgrades_one_minor() -> None:
    result = check(OLD, NEW)
    assert result.refusals == []
    assert [(u.name, u.from_version, u.to_version) for u in result.upgrades] == [
        ("kubernetes", "v1.33.8", "v1.34.4"),
        ("kubeovn", "v1.15.24", "v1.16.2"),
        ("kubevirt", "v1.7.4", "v1.8.4"),
        ("cdi", "v1.64.0", "v1.65.0"),
        ("kyverno", "v1.17.2", "v1.18.2"),
    ]
    kv = result.upgrades[2]
    # The gate is the operator's own version signal, from the catalog.
    assert (
        kv.steps[-1]
        == "gate: KubeVirt kubevirt reports status.observedKubeVirtVersion = v1.8.4, and is ready"
    )
    assert result.upgrades[0].steps[0].startswith("KubeOne upgrades the control plane, then the nodes")
    assert "Deployment kube-ovn-controller runs v1.16.2" in result.upgrades[1].steps[-1]


def test_nothing_to_upgrade_when_versions_match_or_not_installed() -> None:
    assert check(NEW, NEW).upgrades == []
    fresh = check({"kubernetes": "v1.34.4"}, NEW)
    assert fresh.upgrades == [] and fresh.refusals == []


def test_downgrade_refused_unless_forced() -> None:
    result = check(NEW, {**NEW, "kubevirt": "v1.7.4"})
    (refusal,) = result.refusals
    assert refusal.name == "kubevirt"
    assert "downgrade from v1.8.4 to v1.7.4 is refused" in refusal.reason
    assert "keep version v1.8.4" in refusal.next_step and "--force-downgrade" in refusal.next_step
    forced = check(NEW, {**NEW, "kubevirt": "v1.7.4"}, force_downgrade=True)
    assert forced.refusals == []
    assert [(u.name, u.downgrade) for u in forced.upgrades] == [("kubevirt", True)]


def test_skipped_minor_refused_naming_the_next_step() -> None:
    catalog = with_kubevirt_v19(shipped_data())
    result = check({**OLD, "kubernetes": "v1.34.4"}, {**OLD, "kubernetes": "v1.34.4", "kubevirt": "v1.9.0"},
                   catalog)  # fmt: skip
    (refusal,) = result.refusals
    assert "v1.7.4 -> v1.9.0 skips a minor version" in refusal.reason
    assert "v1.7.4 -> v1.8.4 -> v1.9.0" in refusal.reason
    assert refusal.next_step == "set the version to v1.8.4, apply, then continue to v1.9.0"
    # The same data allows the single hop from v1.8.
    ok = check({**NEW}, {**NEW, "kubevirt": "v1.9.0"}, catalog)
    assert ok.refusals == [] and [u.to_version for u in ok.upgrades] == ["v1.9.0"]


def test_kubernetes_one_minor_at_a_time_within_kubeone() -> None:
    data = shipped_data()
    data["kubernetes"]["versions"]["v1.35.1"] = {"images": []}
    catalog = parse_catalog(data)
    result = check({**NEW, "kubernetes": "v1.33.8"}, {**NEW, "kubernetes": "v1.35.1"}, catalog)
    (refusal,) = result.refusals
    assert refusal.name == "kubernetes"
    assert "skips a minor version" in refusal.reason
    assert refusal.next_step == "set the version to v1.34.4, apply, then continue to v1.35.1"
    # A cluster below KubeOne's range cannot be upgraded by this KubeOne release.
    low = check({**NEW, "kubernetes": "v1.32.9"}, NEW, catalog)
    assert [r.name for r in low.refusals] == ["kubernetes"]
    assert "below what KubeOne v1.13.7 manages (v1.33 to v1.35)" in low.refusals[0].reason


def test_minor_hop_not_in_the_data_is_refused() -> None:
    data = shipped_data()
    del data["components"]["kyverno"]["upgrades"]
    result = check(NEW | {"kyverno": "v1.17.2"}, NEW, parse_catalog(data))
    (refusal,) = result.refusals
    assert "is not a supported upgrade path" in refusal.reason
    assert refusal.next_step.startswith("keep version v1.17.2")


def test_patch_upgrades_within_a_minor() -> None:
    catalog = load_catalog()
    product = catalog.components["kubevirt"]
    assert hop_supported(product, "v1.8.1", "v1.8.4")
    assert not hop_supported(product, "v1.8.4", "v1.8.1")
    assert upgrade_path(product, "v1.7.0", "v1.8.4", list(product.releases)) == ["v1.8.4"]


def test_skew_with_kubernetes() -> None:
    catalog = with_kubevirt_v19(shipped_data())
    # KubeVirt v1.9.0 needs Kubernetes v1.34 or newer: not on v1.33.
    result = check({**NEW, "kubernetes": "v1.33.8"}, {**NEW, "kubernetes": "v1.33.8", "kubevirt": "v1.9.0"},
                   catalog)  # fmt: skip
    (refusal,) = result.refusals
    assert "KubeVirt v1.9.0 does not support Kubernetes v1.33" in refusal.reason
    assert "v1.34 to v1.36" in refusal.reason
    assert refusal.next_step == "choose KubeVirt v1.8.4"
    # Kubernetes goes first: the installed KubeVirt v1.7.4 would meet Kubernetes v1.35 before its
    # own upgrade, which it does not support.
    data = shipped_data()
    data["kubernetes"]["versions"]["v1.35.1"] = {"images": []}
    cat2 = parse_catalog(data)
    result = check({**OLD, "kubernetes": "v1.34.4"}, {**NEW, "kubernetes": "v1.35.1"}, cat2)
    reasons = {r.name: r for r in result.refusals}
    assert "the installed KubeVirt v1.7.4 does not support Kubernetes v1.35" in reasons["kubevirt"].reason
    assert reasons["kubevirt"].next_step.startswith("upgrade KubeVirt to v1.8.4 before Kubernetes")


def test_refusal_error_has_its_exit_code() -> None:
    result = check(NEW, {**NEW, "cdi": "v1.64.0"})
    err = UpgradeRefused(result.refusals)
    assert err.exit_code == exit_code("upgrade") == 15
    assert "CDI: downgrade from v1.65.0 to v1.64.0 is refused; next step: keep version v1.65.0" in str(err)
    assert err.to_dict()["refusals"] == [r.to_dict() for r in result.refusals]


# --- the pure helpers around the rules: version signals, the version gate, the hold config, text ----


def test_read_signal_field_and_image() -> None:
    from kvinstall.plan.installed import read_signal

    catalog = load_catalog()
    kv_signal = catalog.components["kubevirt"].installed_version
    ovn_signal = catalog.components["kubeovn"].installed_version
    assert kv_signal is not None and ovn_signal is not None
    cr = {"status": {"observedKubeVirtVersion": "v1.7.4", "targetKubeVirtVersion": "v1.8.4"}}
    assert read_signal(cr, kv_signal) == ("v1.7.4", "v1.8.4")
    assert read_signal({"status": {}}, kv_signal) == (None, None)
    assert read_signal(None, kv_signal) == (None, None)
    deploy = {
        "spec": {
            "template": {"spec": {"containers": [{"image": "127.0.0.1:5000/kubeovn/kube-ovn:v1.15.24"}]}}
        }
    }
    assert read_signal(deploy, ovn_signal) == ("v1.15.24", None)


def test_version_gate_added_to_the_operator_cr_rule_only() -> None:
    from kvinstall.model import ReadinessRule
    from kvinstall.plan.desired import with_version_gate

    catalog = load_catalog()
    rules = [
        ReadinessRule("apps/v1", "Deployment", "virt-operator", namespace="kubevirt"),
        ReadinessRule("kubevirt.io/v1", "KubeVirt", "kubevirt", namespace="kubevirt", phase="Deployed"),
    ]
    gated = with_version_gate(rules, catalog, "kubevirt", "v1.8.4")
    assert gated[0] == rules[0]
    assert gated[1].fields == (("status.observedKubeVirtVersion", "v1.8.4"),)
    # An image signal (Kube-OVN) adds nothing: its Deployment's rollout is the gate.
    assert with_version_gate(rules, catalog, "kubeovn", "v1.16.2") == rules


def test_hold_config_sets_the_installed_versions() -> None:
    from kvinstall.config.models import Config
    from kvinstall.plan.installed import hold_config

    config = Config.model_validate(
        {"apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "c"},
         "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}], "storage": {"rwxClass": "nfs"}}
    )  # fmt: skip
    hold = hold_config(config, {"kubeovn": "v1.15.24", "kubevirt": "v1.7.4"})
    assert hold.components.kube_ovn.version == "v1.15.24"
    assert hold.components.kubevirt.version == "v1.7.4"
    assert hold.components.cdi.version == config.components.cdi.version
    assert config.components.kubevirt.version == "v1.8.4"  # the file's config is left alone


def test_plan_text_lists_the_upgrades() -> None:
    from kvinstall.plan.text import upgrades_text

    result = check(OLD, NEW)
    ups = [u.to_dict() for u in result.upgrades]
    ups[2]["liveMigrations"], ups[2]["notMigratable"] = 3, 1
    lines = upgrades_text({"upgrades": ups, "upgradeInProgress": ["cdi"]})
    assert lines[0] == "Upgrade in progress: cdi (started and not finished; apply continues it)"
    assert "  Kubernetes v1.33.8 -> v1.34.4  [upgrade]" in lines
    assert "  KubeVirt v1.7.4 -> v1.8.4  [upgrade]" in lines
    assert any(
        line.startswith("    VMs: 3 running VM(s) will be live-migrated") and "1 cannot" in line
        for line in lines
    )
