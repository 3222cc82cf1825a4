"""KubeVirt rendering: the real operator manifest of the release (tests/upstream_pack.py) + the CR from
the config, gates (the release's own lists, see catalog.yaml), devices, offline rewrite."""

from __future__ import annotations

from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.kubevirt import (
    COMPONENT,
    effective_feature_gates,
    feature_gate_problems,
    find_object,
)
from kvinstall.config.models import Config
from kvinstall.errors import ArtifactError, ConfigError, IntegrityError
from kvinstall.model import OWN_ANNOTATION, KubeObject
from kvinstall.render.images import images_in, images_outside
from upstream_pack import MemorySource, PackSource, documents, dump_documents, pinned_catalog, upstream_file

KV_VERSION = "v1.8.4"
SITE = "registry.site.test:5000"


def cfg(**extra: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            **extra,
        }
    )


def kv(**fields: Any) -> dict[str, Any]:
    return {"components": {"kubevirt": fields}}


MANIFEST = upstream_file("kubevirt", KV_VERSION, "kubevirt-operator.yaml")
CATALOG = load_catalog()


def render(config: Config, source: Any = None) -> list[KubeObject]:
    return COMPONENT.render(config, CATALOG, source or PackSource()).objects


def cr(objects: list[KubeObject]) -> KubeObject:
    found = find_object(objects, "KubeVirt", "kubevirt")
    assert found is not None
    return found


def dev_config(objects: list[KubeObject]) -> dict[str, Any]:
    return cr(objects)["spec"]["configuration"]["developerConfiguration"]


def test_renders_operator_then_cr_marked_spec_only() -> None:
    objects = render(cfg())
    kinds = [o["kind"] for o in objects]
    assert kinds[-1] == "KubeVirt"
    assert {"Namespace", "CustomResourceDefinition", "Deployment", "ClusterRole"} <= set(kinds)
    the_cr = cr(objects)
    assert the_cr["metadata"] == {
        "name": "kubevirt",
        "namespace": "kubevirt",
        "annotations": {OWN_ANNOTATION: "spec"},
    }
    assert the_cr["spec"]["configuration"]["evictionStrategy"] == "LiveMigrateIfPossible"
    assert dev_config(objects) == {"featureGates": [], "useEmulation": False}


def test_config_knobs_reach_the_cr() -> None:
    objects = render(
        cfg(
            **kv(
                useEmulation=True,
                cpuAllocationRatio=4,
                evictionStrategy="LiveMigrate",
                migrations={
                    "parallelMigrationsPerCluster": 9,
                    "bandwidthPerMigration": "64Mi",
                    "allowPostCopy": True,
                },
                mediatedDevicesConfiguration={
                    "mediatedDeviceTypes": ["nvidia-222"],
                    "nodeMediatedDeviceTypes": [
                        {"nodeSelector": {"gpu": "t4"}, "mediatedDeviceTypes": ["nvidia-223"]}
                    ],
                },
            )
        )
    )
    conf = cr(objects)["spec"]["configuration"]
    assert conf["developerConfiguration"] == {
        "featureGates": [],
        "useEmulation": True,
        "cpuAllocationRatio": 4,
    }
    assert conf["evictionStrategy"] == "LiveMigrate"
    assert conf["migrations"]["parallelMigrationsPerCluster"] == 9
    assert conf["migrations"]["bandwidthPerMigration"] == "64Mi"
    assert conf["migrations"]["allowPostCopy"] is True
    assert conf["mediatedDevicesConfiguration"] == {
        "mediatedDeviceTypes": ["nvidia-222"],
        "nodeMediatedDeviceTypes": [{"nodeSelector": {"gpu": "t4"}, "mediatedDeviceTypes": ["nvidia-223"]}],
    }
    assert "permittedHostDevices" not in conf


def test_host_devices_add_the_gate_and_gpu_needs_none() -> None:
    objects = render(
        cfg(
            **kv(
                featureGates=["Snapshot"],
                permittedHostDevices={
                    "pciHostDevices": [
                        {"pciVendorSelector": "10de:1eb8", "resourceName": "nvidia.com/TU104GL_Tesla_T4"}
                    ],
                    "mediatedDevices": [
                        {"mdevNameSelector": "GRID T4-1Q", "resourceName": "nvidia.com/GRID_T4-1Q"}
                    ],
                },
            )
        )
    )
    assert dev_config(objects)["featureGates"] == ["Snapshot", "HostDevices"]
    devices = cr(objects)["spec"]["configuration"]["permittedHostDevices"]
    assert devices["pciHostDevices"] == [
        {
            "pciVendorSelector": "10DE:1EB8",
            "resourceName": "nvidia.com/TU104GL_Tesla_T4",
            "externalResourceProvider": False,
        }
    ]
    assert devices["mediatedDevices"][0]["mdevNameSelector"] == "GRID T4-1Q"
    assert "GPU" not in dev_config(objects)["featureGates"]


def test_host_devices_gate_not_duplicated() -> None:
    config = cfg(
        **kv(
            featureGates=["HostDevices"],
            permittedHostDevices={
                "pciHostDevices": [{"pciVendorSelector": "10DE:1EB8", "resourceName": "a.io/b"}]
            },
        )
    )
    assert effective_feature_gates(config, CATALOG) == ["HostDevices"]


def test_unknown_and_discontinued_gates_are_config_errors() -> None:
    config = cfg(**kv(featureGates=["Snapshot", "NoSuchGate", "Macvtap"]))
    problems = feature_gate_problems(config, CATALOG)
    assert [(p.path, p.severity) for p in problems] == [
        ("components.kubevirt.featureGates[1]", "error"),
        ("components.kubevirt.featureGates[2]", "error"),
    ]
    assert "NoSuchGate" in problems[0].message and "discontinued" in problems[1].message
    # KubeVirt's own words say why and what instead.
    assert "Macvtap network binding is discontinued since v1.3" in problems[1].message
    with pytest.raises(ConfigError) as err:
        render(config)
    assert len(err.value.problems) == 2


@pytest.mark.parametrize("version", ["v1.8.4", "v1.7.4"])
def test_every_gate_of_the_release_is_accepted(version: str) -> None:
    """Every alpha/beta gate the release registers validates cleanly and reaches the CR; GA and
    deprecated ones warn; discontinued ones are refused (naming the gate and the version)."""
    gates = CATALOG.component("kubevirt", version).feature_gates
    active = sorted(gates.alpha | gates.beta)
    config = cfg(**kv(version=version, featureGates=active))
    assert feature_gate_problems(config, CATALOG) == []
    assert effective_feature_gates(config, CATALOG) == active
    for state in ("ga", "deprecated"):
        listed = sorted(getattr(gates, state))
        problems = feature_gate_problems(cfg(**kv(version=version, featureGates=listed)), CATALOG)
        assert [p.severity for p in problems] == ["warning"] * len(listed), state
        assert all(state.replace("ga", "GA") in p.message for p in problems)
    for gate in sorted(gates.discontinued):
        (problem,) = feature_gate_problems(cfg(**kv(version=version, featureGates=[gate])), CATALOG)
        assert problem.severity == "error"
        assert f"{gate} is discontinued in KubeVirt {version}" in problem.message
        assert problem.hint


def test_deprecated_gates_still_reach_the_cr() -> None:
    config = cfg(**kv(featureGates=["MultiArchitecture"]))
    assert [p.code for p in feature_gate_problems(config, CATALOG)] == ["deprecated-gate"]
    assert effective_feature_gates(config, CATALOG) == ["MultiArchitecture"]


def test_gates_are_checked_against_the_chosen_version() -> None:
    # Template is new in v1.8; ExperimentalVirtiofsSupport was deprecated in v1.7 and is gone in v1.8.
    assert feature_gate_problems(cfg(**kv(featureGates=["Template"])), CATALOG) == []
    problems = feature_gate_problems(cfg(**kv(version="v1.7.4", featureGates=["Template"])), CATALOG)
    assert [p.severity for p in problems] == ["error"]
    old = feature_gate_problems(cfg(**kv(version="v1.7.4", featureGates=["ExperimentalVirtiofsSupport"])), CATALOG)
    new = feature_gate_problems(cfg(**kv(featureGates=["ExperimentalVirtiofsSupport"])), CATALOG)
    assert [p.severity for p in old] == ["warning"] and [p.severity for p in new] == ["error"]


def test_ga_gates_warn_and_are_left_out() -> None:
    config = cfg(**kv(featureGates=["GPU", "LiveMigration", "VMExport"]))
    problems = feature_gate_problems(config, CATALOG)
    assert [p.severity for p in problems] == ["warning", "warning"]
    rendered = COMPONENT.render(config, CATALOG, PackSource())
    assert dev_config(rendered.objects)["featureGates"] == ["VMExport"]
    assert len(rendered.notes) == 2 and all("GA" in n for n in rendered.notes)


def test_images_include_gate_images_of_enabled_gates_only() -> None:
    base = COMPONENT.images(cfg(), CATALOG)
    assert base == [
        f"quay.io/kubevirt/{n}:{KV_VERSION}"
        for n in ("virt-operator", "virt-api", "virt-controller", "virt-handler", "virt-launcher")
    ]
    with_export = COMPONENT.images(cfg(**kv(featureGates=["VMExport", "Snapshot"])), CATALOG)
    assert with_export == [
        *base,
        f"quay.io/kubevirt/virt-exportproxy:{KV_VERSION}",
        f"quay.io/kubevirt/virt-exportserver:{KV_VERSION}",
    ]
    # virt-template has its own version (the bundle virt-operator v1.8.4 embeds).
    with_template = COMPONENT.images(cfg(**kv(featureGates=["Template"])), CATALOG)
    assert with_template[len(base) :] == [
        "quay.io/kubevirt/virt-template-apiserver:v0.1.8",
        "quay.io/kubevirt/virt-template-controller:v0.1.8",
    ]


def test_offline_rewrites_operator_image_and_env_keeps_version() -> None:
    config = cfg(offline={"enabled": True, "registry": SITE})
    objects = render(config)
    assert images_outside(objects, SITE) == set()
    assert images_in(objects)  # the scan did find the operator's references
    deploy = find_object(objects, "Deployment", "virt-operator")
    assert deploy is not None
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{SITE}/kubevirt/virt-operator:{KV_VERSION}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIRT_OPERATOR_IMAGE"] == f"{SITE}/kubevirt/virt-operator:{KV_VERSION}"
    assert env["KUBEVIRT_VERSION"] == KV_VERSION
    # Online, nothing is rewritten.
    assert images_in(render(cfg())) == {f"quay.io/kubevirt/virt-operator:{KV_VERSION}"}


def test_render_is_deterministic() -> None:
    config = cfg(**kv(featureGates=["Snapshot"], cpuAllocationRatio=2))
    assert render(config) == render(config)


def test_unavailable_manifest_is_reported_not_hidden() -> None:
    rendered = COMPONENT.render(cfg(), CATALOG, MemorySource({}))
    assert [a.name for a in rendered.unavailable] == ["kubevirt-operator"]
    assert [o["kind"] for o in rendered.objects] == ["KubeVirt"]
    assert rendered.notes


def test_tampered_manifest_is_refused() -> None:
    # The real manifest with a byte added: what a digest mismatch looks like (the pack has none).
    pinned = pinned_catalog("https://artifacts.test")
    with pytest.raises(IntegrityError) as err:
        COMPONENT.render(cfg(), pinned, MemorySource({"kubevirt-operator": MANIFEST + b"\n# tampered\n"}))
    assert "kubevirt-operator" in str(err.value)


def _without_operator() -> bytes:
    return dump_documents([o for o in documents(MANIFEST) if o["kind"] != "Deployment"])


@pytest.mark.parametrize(
    ("data", "message"),
    # Broken manifests, made here: no release is broken like this.
    [
        (b"- just\n- a list\n", "not a mapping"),
        (b"kind: Deployment\n", "not a Kubernetes object"),
        (b"a: [unclosed\n", "not valid YAML"),
        (_without_operator(), "no Deployment virt-operator"),
    ],
)
def test_broken_manifest_is_an_artifact_error(data: bytes, message: str) -> None:
    with pytest.raises(ArtifactError) as err:
        COMPONENT.render(cfg(), CATALOG, MemorySource({"kubevirt-operator": data}))
    assert message in str(err.value)
    assert "kubevirt-operator" in str(err.value)


def test_readiness_order_crd_operator_cr() -> None:
    rules = COMPONENT.readiness(cfg(), CATALOG)
    assert [(r.kind, r.name) for r in rules] == [
        ("CustomResourceDefinition", "kubevirts.kubevirt.io"),
        ("Deployment", "virt-operator"),
        ("KubeVirt", "kubevirt"),
    ]
    assert rules[2].phase == "Deployed"
    assert dict(rules[2].conditions) == {"Available": "True", "Progressing": "False", "Degraded": "False"}


def test_workload_updates_live_migrate_only_when_live_migration_is_allowed() -> None:
    assert cr(render(cfg()))["spec"]["workloadUpdateStrategy"] == {"workloadUpdateMethods": ["LiveMigrate"]}
    assert cr(render(cfg(**kv(liveMigration=False))))["spec"]["workloadUpdateStrategy"] == {}
