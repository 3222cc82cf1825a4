"""CDI rendering: the real operator manifest of the release (tests/upstream_pack.py) + the CR."""

from __future__ import annotations

from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.cdi import COMPONENT, OPERAND_IMAGE_ENV
from kvinstall.components.kubevirt import find_object
from kvinstall.config.models import Config
from kvinstall.errors import ArtifactError
from kvinstall.model import OWN_ANNOTATION, KubeObject
from kvinstall.render.images import images_in, images_outside
from upstream_pack import MemorySource, PackSource, documents, dump_documents, upstream_file

CDI_VERSION = "v1.65.0"
SITE = "10.1.2.3:5000"
CATALOG = load_catalog()


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


def render(config: Config) -> list[KubeObject]:
    return COMPONENT.render(config, CATALOG, PackSource()).objects


def cr(objects: list[KubeObject]) -> KubeObject:
    found = find_object(objects, "CDI", "cdi")
    assert found is not None
    return found


def test_default_cr_is_cluster_scoped_with_version_gates() -> None:
    objects = render(cfg())
    the_cr = cr(objects)
    assert objects[-1] is the_cr
    assert the_cr["apiVersion"] == "cdi.kubevirt.io/v1beta1"
    assert "namespace" not in the_cr["metadata"]
    assert the_cr["metadata"]["annotations"] == {OWN_ANNOTATION: "spec"}
    assert the_cr["spec"]["config"] == {
        "featureGates": ["HonorWaitForFirstConsumer", "WebhookPvcRendering"],
        "filesystemOverhead": {"global": "0.06"},
    }
    assert the_cr["spec"]["infra"] == {"nodeSelector": {"kubernetes.io/os": "linux"}}


def test_config_knobs_reach_the_cr() -> None:
    config = cfg(
        components={
            "cdi": {
                "uploadProxyURL": "https://cdi-upload.example.test",
                "filesystemOverhead": {"global": "0.1", "storageClass": {"ceph": "0.2", "a-local": "0"}},
                "featureGates": ["ExtraGate", "HonorWaitForFirstConsumer"],
            }
        }
    )
    conf = cr(render(config))["spec"]["config"]
    assert conf["uploadProxyURLOverride"] == "https://cdi-upload.example.test"
    assert conf["filesystemOverhead"] == {"global": "0.1", "storageClass": {"a-local": "0", "ceph": "0.2"}}
    assert conf["featureGates"] == ["HonorWaitForFirstConsumer", "WebhookPvcRendering", "ExtraGate"]
    assert "insecureRegistries" not in conf


@pytest.mark.parametrize("version", ["v1.65.0", "v1.64.0"])
def test_default_gates_are_those_of_the_release_cr(version: str) -> None:
    from kvinstall.components.cdi import feature_gates

    (upstream,) = documents(upstream_file("cdi", version, "cdi-cr.yaml"))
    assert feature_gates(cfg(components={"cdi": {"version": version}}), CATALOG) == (
        upstream["spec"]["config"]["featureGates"]
    )


@pytest.mark.parametrize("insecure", [True, False])
def test_offline_rewrites_operator_and_every_operand_env(insecure: bool) -> None:
    objects = render(cfg(offline={"enabled": True, "registry": SITE, "insecure": insecure}))
    assert images_outside(objects, SITE) == set()
    deploy = find_object(objects, "Deployment", "cdi-operator")
    assert deploy is not None
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{SITE}/kubevirt/cdi-operator:{CDI_VERSION}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    for name in OPERAND_IMAGE_ENV:
        assert env[name].startswith(f"{SITE}/kubevirt/cdi-"), name
    assert env["OPERATOR_VERSION"] == CDI_VERSION  # not an image: untouched
    conf = cr(objects)["spec"]["config"]
    assert conf.get("insecureRegistries") == ([SITE] if insecure else None)


def test_online_render_keeps_upstream_images() -> None:
    found = images_in(render(cfg()))
    assert f"quay.io/kubevirt/cdi-operator:{CDI_VERSION}" in found
    assert len(found) == 7  # the operator + its seven operand env vars (OVIRT_POPULATOR reuses the importer)


def test_disabled_and_images() -> None:
    assert not COMPONENT.enabled(cfg(components={"cdi": {"enabled": False}}))
    assert COMPONENT.images(cfg(), CATALOG)[0] == f"quay.io/kubevirt/cdi-operator:{CDI_VERSION}"


def test_manifest_without_operator_is_refused() -> None:
    # Not a real release: the real manifest with its operator Deployment taken out.
    real = documents(upstream_file("cdi", CDI_VERSION, "cdi-operator.yaml"))
    data = dump_documents([o for o in real if o["kind"] != "Deployment"])
    with pytest.raises(ArtifactError, match="cdi-operator"):
        COMPONENT.render(cfg(), CATALOG, MemorySource({"cdi-operator": data}))


def test_readiness() -> None:
    rules = COMPONENT.readiness(cfg(), CATALOG)
    assert [(r.kind, r.name, r.namespace) for r in rules] == [
        ("CustomResourceDefinition", "cdis.cdi.kubevirt.io", None),
        ("Deployment", "cdi-operator", "cdi"),
        ("CDI", "cdi", None),
    ]
    assert rules[-1].phase == "Deployed"
