"""KubeVirt on the real apiserver: the real operator manifest of the release (tests/upstream_pack.py,
served over local HTTPS at its release URL with a pinned digest and fetched by the real ArtifactCache)
and the CR applied by the apply engine; readiness through operator_sim (the operator's controller loop cannot run here, so the
test plays it: status patches, and clearing the CR finalizer only while virt-operator exists);
removal in the safe order, read from the apiserver's audit log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.catalog import Catalog
from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.kubevirt import COMPONENT
from kvinstall.config.models import Config
from kvinstall.errors import IntegrityError, ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, apply_objects, execute, plan_apply, wait_ready
from substrate.https_files import serve_https
from upstream_pack import pinned_catalog, site_files

pytestmark = pytest.mark.integration

MANIFEST_PATH = "/github.com/kubevirt/kubevirt/releases/download/v1.8.4/kubevirt-operator.yaml"
CR_PATH = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
DEPLOY_PATH = "/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator"


def cfg(**kv: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "components": {"kubevirt": kv},
        }
    )


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


@pytest.fixture
def served(registry_ca: Any, tmp_path: Path) -> Iterator[tuple[Catalog, ArtifactCache, str]]:
    with serve_https(site_files(), registry_ca) as url:
        cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), retries=1)
        yield pinned_catalog(url), cache, url


def test_tampered_operator_manifest_is_refused(registry_ca: Any, tmp_path: Path) -> None:
    # The real manifest with a line added, at its release URL: the catalog pins the real digest.
    files = site_files()
    files[MANIFEST_PATH] += b"# x\n"
    with serve_https(files, registry_ca) as url:
        cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), retries=1)
        with pytest.raises(IntegrityError) as err:
            COMPONENT.render(cfg(), pinned_catalog(url), cache)
    assert "kubevirt-operator" in str(err.value)


class FinalizerOperator:
    """Plays virt-operator's finalizer handling: the CR keeps its finalizer until the operator,
    which must still exist, releases it. Records whether the CR was ever left stuck."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.stuck = False
        self.released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        r = self.api.request(
            "PATCH", CR_PATH, json={"metadata": {"finalizers": ["foregroundDeleteKubeVirt"]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )  # fmt: skip
        r.raise_for_status()
        self._thread.start()

    def _loop(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            r = self.api.request("GET", CR_PATH)
            if r.status_code == 404:
                return
            if r.json()["metadata"].get("deletionTimestamp"):
                if self.api.request("GET", DEPLOY_PATH).status_code == 404:
                    self.stuck = True  # the operator is gone: nobody would ever clear the finalizer
                    return
                self.api.request(
                    "PATCH", CR_PATH, json={"metadata": {"finalizers": None}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )  # fmt: skip
                self.released = True
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _operator_runtime_objects(api: Any) -> None:
    """What virt-operator creates at run time, outside kvinstall's inventory."""
    objs = [
        ("/apis/apiregistration.k8s.io/v1/apiservices", {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1.subresources.kubevirt.io"},
            "spec": {"group": "subresources.kubevirt.io", "version": "v1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "insecureSkipTLSVerify": True,
                     "service": {"name": "virt-api", "namespace": "kubevirt", "port": 443}},
        }),
    ]  # fmt: skip
    rule = {"apiGroups": ["kubevirt.io"], "apiVersions": ["v1"], "operations": ["CREATE"],
            "resources": ["virtualmachines"]}  # fmt: skip
    hook = {"clientConfig": {"service": {"name": "virt-api", "namespace": "kubevirt", "path": "/x"}},
            "rules": [rule], "failurePolicy": "Ignore", "sideEffects": "None",
            "admissionReviewVersions": ["v1"]}  # fmt: skip
    for kind, plural, name in [
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "virt-api-mutator"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "virt-operator-validator"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "virt-api-validator"),
    ]:
        body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
                "webhooks": [{**hook, "name": f"{name}.kubevirt.io"}]}  # fmt: skip
        objs.append((f"/apis/admissionregistration.k8s.io/v1/{plural}", body))
    for path, body in objs:
        r = api.request("POST", path, json=body)
        assert r.status_code in (201, 409), r.text


def test_install_ready_converge_and_remove_in_safe_order(
    kube: Kube, kube_api: Any, operator_sim: Any, served: tuple[Catalog, ArtifactCache, str]
) -> None:
    catalog, cache, _ = served
    config = cfg(
        featureGates=["Snapshot"],
        useEmulation=True,
        permittedHostDevices={
            "pciHostDevices": [{"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/T4"}]
        },
    )
    ref = ApplySetRef("kubevirt")
    objects = COMPONENT.render(config, catalog, cache).objects
    apply_objects(kube, ref, objects)
    live_cr = kube.get("kubevirt.io/v1", "KubeVirt", "kubevirt", "kubevirt")
    assert live_cr is not None
    assert live_cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] == [
        "Snapshot",
        "HostDevices",
    ]
    assert "kvinstall.io/own" not in (live_cr["metadata"].get("annotations") or {})

    # Nothing acts yet: the timeout names each object and what it lacks.
    rules = COMPONENT.readiness(config, catalog)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    message = str(err.value)
    assert "virt-operator" in message and "KubeVirt.kubevirt.io/kubevirt/kubevirt" in message
    assert "kubevirts.kubevirt.io" not in message  # the CRD is Established by the apiserver itself

    # The operator acts (simulated): its Deployment becomes Available, the CR Deployed.
    operator_sim.deployment_available("kubevirt", "virt-operator")
    operator_sim.kubevirt_deployed("kubevirt", "kubevirt")
    wait_ready(kube, rules, timeout=30, interval=0.5)

    # Status and the operator's finalizer are not ours: an unchanged config plans no change.
    finalizers = FinalizerOperator(kube_api)
    finalizers.start()
    again = COMPONENT.render(config, catalog, cache).objects
    assert not plan_apply(kube, ref, again).has_changes
    # A knob change updates the CR's spec only.
    changed = COMPONENT.render(cfg(**{**config.components.kubevirt.model_dump(by_alias=True),
                                      "cpuAllocationRatio": 3}), catalog, cache).objects  # fmt: skip
    plan = plan_apply(kube, ref, changed)
    assert [i.ref for i in plan.changed] == ["KubeVirt.kubevirt.io/kubevirt/kubevirt"]

    # Removal: CR first (and waited for), then the operator's run-time objects, then the rest.
    _operator_runtime_objects(kube_api)
    mark = kube_api.audit_mark()
    removal = plan_apply(kube, ref, [])
    execute(kube, removal, prune_hook=lambda k, items, rest: COMPONENT.remove(config, catalog, k, rest))
    finalizers.stop()
    assert finalizers.released and not finalizers.stuck
    writes = [w for w in kube_api.writes_since(mark) if w.verb == "delete"]
    assert [(w.resource, w.name) for w in writes if w.code == 404] == []  # nothing deleted twice
    deletes = [(w.resource, w.name) for w in writes if w.code < 300]
    order = [d for d in deletes if d in {
        ("kubevirts", "kubevirt"),
        ("apiservices", "v1.subresources.kubevirt.io"),
        ("mutatingwebhookconfigurations", "virt-api-mutator"),
        ("validatingwebhookconfigurations", "virt-operator-validator"),
        ("validatingwebhookconfigurations", "virt-api-validator"),
        ("deployments", "virt-operator"),
    }]  # fmt: skip
    assert order[0] == ("kubevirts", "kubevirt")
    assert order[1] == ("apiservices", "v1.subresources.kubevirt.io")
    assert set(order[2:5]) == {
        ("mutatingwebhookconfigurations", "virt-api-mutator"),
        ("validatingwebhookconfigurations", "virt-operator-validator"),
        ("validatingwebhookconfigurations", "virt-api-validator"),
    }
    assert order[5] == ("deployments", "virt-operator")
    assert kube.get("kubevirt.io/v1", "KubeVirt", "kubevirt", "kubevirt") is None
    assert kube.get("apps/v1", "Deployment", "virt-operator", "kubevirt") is None
    assert kube.get("apiregistration.k8s.io/v1", "APIService", "v1.subresources.kubevirt.io") is None
