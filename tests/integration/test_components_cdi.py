"""CDI on the real apiserver: the real operator manifest of the release (tests/upstream_pack.py, served
over local HTTPS at its release URL with a pinned digest, fetched by the real ArtifactCache) and the
cluster-scoped CR; readiness through operator_sim (CDI's operator cannot run here, the test plays it
on the real CRD, which has no status subresource); removal with the CR deleted (and its finalizer
released by the simulated operator) before the operator, each object deleted once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.cdi import COMPONENT
from kvinstall.config.models import Config
from kvinstall.errors import ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, apply_objects, execute, plan_apply, wait_ready
from kvinstall.render.images import images_outside
from substrate.https_files import serve_https
from upstream_pack import pinned_catalog, site_files

pytestmark = pytest.mark.integration

CDI_VERSION = "v1.65.0"
CR_PATH = "/apis/cdi.kubevirt.io/v1beta1/cdis/cdi"
DEPLOY_PATH = "/apis/apps/v1/namespaces/cdi/deployments/cdi-operator"
SITE = "127.0.0.1:5999"  # never contacted: only written into image references
MERGE = {"Content-Type": "application/merge-patch+json"}


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


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


def test_offline_install_ready_and_remove(
    kube: Kube, kube_api: Any, operator_sim: Any, registry_ca: Any, tmp_path: Path
) -> None:
    config = cfg(
        offline={"enabled": True, "registry": SITE, "insecure": True},
        components={
            "cdi": {
                "uploadProxyURL": "https://upload.example.test",
                "featureGates": ["DataVolumeClaimAdoption"],
            }
        },
    )
    with serve_https(site_files(), registry_ca) as url:
        catalog = pinned_catalog(url)
        cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), retries=1)
        objects = COMPONENT.render(config, catalog, cache).objects
    assert images_outside(objects, SITE) == set()

    ref = ApplySetRef("cdi")
    apply_objects(kube, ref, objects)
    live = kube.get("cdi.kubevirt.io/v1beta1", "CDI", "cdi")
    assert live is not None
    assert live["spec"]["config"]["insecureRegistries"] == [SITE]
    assert live["spec"]["config"]["uploadProxyURLOverride"] == "https://upload.example.test"
    deploy = kube.get("apps/v1", "Deployment", "cdi-operator", "cdi")
    assert deploy is not None
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IMPORTER_IMAGE"] == f"{SITE}/kubevirt/cdi-importer:{CDI_VERSION}"

    rules = COMPONENT.readiness(config, catalog)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    assert "CDI.cdi.kubevirt.io/cdi" in str(err.value) and "cdi-operator" in str(err.value)

    # The operator acts (simulated): Deployment Available, CR Deployed with its conditions, finalizer.
    operator_sim.deployment_available("cdi", "cdi-operator")
    operator_sim.cdi_deployed()
    wait_ready(kube, rules, timeout=30, interval=0.5)
    r = kube_api.request("PATCH", CR_PATH, json={"metadata": {"finalizers": ["operator.cdi.kubevirt.io"]}},
                         headers=MERGE)  # fmt: skip
    r.raise_for_status()
    assert not plan_apply(kube, ref, objects).has_changes

    released: list[bool] = []

    def operator_loop() -> None:  # releases the finalizer only while the operator exists
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = kube_api.request("GET", CR_PATH)
            if got.status_code == 404:
                return
            if got.json()["metadata"].get("deletionTimestamp"):
                if kube_api.request("GET", DEPLOY_PATH).status_code == 404:
                    released.append(False)
                    return
                kube_api.request("PATCH", CR_PATH, json={"metadata": {"finalizers": None}}, headers=MERGE)
                released.append(True)
                return
            time.sleep(0.2)

    t = threading.Thread(target=operator_loop, daemon=True)
    t.start()
    mark = kube_api.audit_mark()
    removal = plan_apply(kube, ref, [])
    execute(kube, removal, prune_hook=lambda k, items, rest: COMPONENT.remove(config, catalog, k, rest))
    t.join(30)
    assert released == [True]
    writes = [w for w in kube_api.writes_since(mark) if w.verb == "delete"]
    assert [(w.resource, w.name) for w in writes if w.code == 404] == []  # the CR is not deleted twice
    deletes = [(w.resource, w.name) for w in writes if w.code < 300]
    assert deletes.index(("cdis", "cdi")) < deletes.index(("deployments", "cdi-operator"))
    assert kube.get("cdi.kubevirt.io/v1beta1", "CDI", "cdi") is None
