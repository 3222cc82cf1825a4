"""Kube-OVN on the real apiserver: the real kube-ovn chart (tests/upstream_pack.py) served from a local
HTTPS chart repository (index.yaml + archive) with a pinned digest, fetched by the real
ArtifactCache, rendered by the real helm, applied by the apply engine. No kubelet or controller runs
here, so the test plays them (operator_sim and status patches): workloads become ready, the
controller creates the default Subnets and Vpc with its finalizer. Removal is checked in the
apiserver's audit log: finalizers cleared, CRs deleted, controller, then CNI, then OVN central."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.catalog import Catalog
from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.kubeovn import COMPONENT, KubeOVN
from kvinstall.config.models import Config
from kvinstall.errors import IntegrityError, ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, apply_objects, execute, plan_apply, wait_ready
from substrate.https_files import serve_https
from upstream_pack import pinned_catalog, site_files

pytestmark = pytest.mark.integration

OVN = "/apis/kubeovn.io/v1"
FINALIZER = "kube-ovn-controller"


def cfg() -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [
                {"address": "192.0.2.10", "privateAddress": "10.0.0.1", "role": "controlPlane"},
                {"address": "192.0.2.20", "role": "worker"},
            ],
            "network": {"tunnelInterface": "eth1"},
            "components": {"kubeOVN": {"enableNatGateway": True}},
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


def test_tampered_chart_is_refused(registry_ca: Any, tmp_path: Path) -> None:
    # The real chart with a byte appended, under its own name: what a tampered download looks like.
    files = site_files()
    files["/kubeovn.github.io/kube-ovn/kube-ovn-v1.16.2.tgz"] += b"\0"
    with serve_https(files, registry_ca) as url:
        catalog = pinned_catalog(url)
        cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), retries=1)
        with pytest.raises(IntegrityError) as err:
            COMPONENT.render(cfg(), catalog, cache)
    assert "kube-ovn-chart" in str(err.value)


def daemonset_ready(api: Any, namespace: str, name: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"
    obj = api.request("GET", path).json()
    status = {"observedGeneration": obj["metadata"]["generation"], "desiredNumberScheduled": 2,
              "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberReady": 2,
              "numberAvailable": 2, "numberMisscheduled": 0}  # fmt: skip
    r = api.request("PATCH", f"{path}/status", json={"status": status},
                    headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert r.status_code == 200, r.text


def controller_creates(api: Any, plural: str, name: str, spec: dict[str, Any], ready: bool = False) -> None:
    """What kube-ovn-controller does at start: the default networks, with its finalizer."""
    meta = {"name": name, "finalizers": [FINALIZER]}
    body = {"apiVersion": "kubeovn.io/v1", "kind": plural, "metadata": meta, "spec": spec}
    body["kind"] = {"subnets": "Subnet", "vpcs": "Vpc", "ips": "IP", "vpc-nat-gateways": "VpcNatGateway",
                    "vips": "Vip", "ippools": "IPPool"}[plural]  # fmt: skip
    r = api.request("POST", f"{OVN}/{plural}", json=body)
    assert r.status_code == 201, r.text
    if ready:
        cond = {"type": "Ready", "status": "True", "reason": "ResourceReady", "message": "ready"}
        r = api.request("PATCH", f"{OVN}/{plural}/{name}/status", json={"status": {"conditions": [cond]}},
                        headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert r.status_code == 200, r.text


def test_install_ready_and_remove_in_safe_order(
    kube: Kube, kube_api: Any, operator_sim: Any, served: tuple[Catalog, ArtifactCache]
) -> None:
    catalog, cache = served
    config = cfg()
    ref = ApplySetRef("kubeovn")
    objects = COMPONENT.render(config, catalog, cache).objects
    apply_objects(kube, ref, objects)
    central = kube.get("apps/v1", "Deployment", "ovn-central", "kube-system")
    assert central is not None and central["spec"]["replicas"] == 1
    cni = kube.get("apps/v1", "DaemonSet", "kube-ovn-cni", "kube-system")
    assert cni is not None and "--iface=eth1" in cni["spec"]["template"]["spec"]["containers"][0]["args"]

    # Nothing runs yet: the timeout names what is missing, workloads and default networks alike.
    rules = COMPONENT.readiness(config, catalog)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    message = str(err.value)
    for missing in ("ovn-central", "ovs-ovn", "kube-ovn-controller", "kube-ovn-cni", "kube-ovn-monitor",
                    "Subnet.kubeovn.io/ovn-default", "Vpc.kubeovn.io/ovn-cluster"):  # fmt: skip
        assert missing in message

    # The controllers act (simulated).
    for name in ("ovn-central", "kube-ovn-controller", "kube-ovn-monitor"):
        operator_sim.deployment_available("kube-system", name)
    for name in ("ovs-ovn", "kube-ovn-cni", "kube-ovn-pinger"):
        daemonset_ready(kube_api, "kube-system", name)
    controller_creates(kube_api, "vpcs", "ovn-cluster", {})
    controller_creates(kube_api, "subnets", "ovn-default", {"cidrBlock": "10.16.0.0/16"}, ready=True)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=1.5, interval=0.5)
    assert "Subnet.kubeovn.io/join" in str(err.value) and "ovn-default" not in str(err.value)
    controller_creates(kube_api, "subnets", "join", {"cidrBlock": "100.64.0.0/16"}, ready=True)
    wait_ready(kube, rules, timeout=30, interval=0.5)
    assert not plan_apply(kube, ref, COMPONENT.render(config, catalog, cache).objects).has_changes

    # Tenant objects the controller would have cleaned up, and node state it leaves behind.
    controller_creates(kube_api, "ips", "vm1.ws1", {})
    controller_creates(kube_api, "vpc-nat-gateways", "gw1", {"vpc": "ws1"})
    controller_creates(kube_api, "vips", "vip1", {})
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "kvtest-ovn-node", "annotations": {"ovn.kubernetes.io/allocated": "true",
                                                                    "other/keep": "yes"}}}  # fmt: skip
    assert kube_api.request("POST", "/api/v1/nodes", json=node).status_code == 201

    mark = kube_api.audit_mark()
    removal = plan_apply(kube, ref, [])
    # No controller releases the tenant CRs here: a short wait, then their finalizers are cleared.
    remover = KubeOVN(cr_timeout=3)
    execute(kube, removal, prune_hook=lambda k, items, rest: remover.remove(config, catalog, k, rest))
    writes = [w for w in kube_api.writes_since(mark) if w.code < 300 and not w.dry_run]
    steps = [(w.verb, w.resource, w.name) for w in writes]

    def first(verb: str, resource: str, name: str) -> int:
        return steps.index((verb, resource, name))

    # Finalizers released first, then the CRs, controller+monitor, CNI, OVN central and OVS.
    unfinalized = [first("patch", "subnets", n) for n in ("ovn-default", "join")] + [
        first("patch", "vpcs", "ovn-cluster"),
        first("patch", "ips", "vm1.ws1"),
    ]
    assert max(unfinalized) < first("delete", "vpc-nat-gateways", "gw1")
    assert first("delete", "vpc-nat-gateways", "gw1") < first("delete", "vips", "vip1")
    assert first("delete", "vips", "vip1") < first("delete", "deployments", "kube-ovn-controller")
    assert first("delete", "deployments", "kube-ovn-monitor") < first("delete", "daemonsets", "kube-ovn-cni")
    assert first("delete", "daemonsets", "kube-ovn-cni") < first("delete", "deployments", "ovn-central")
    assert first("delete", "daemonsets", "kube-ovn-cni") < first("delete", "daemonsets", "ovs-ovn")
    assert first("delete", "deployments", "ovn-central") < first("delete", "configmaps", "ovn-vpc-nat-config")
    for kind, name in (
        ("Deployment", "ovn-central"),
        ("DaemonSet", "kube-ovn-cni"),
        ("VpcNatGateway", "gw1"),
    ):
        api = "kubeovn.io/v1" if kind == "VpcNatGateway" else "apps/v1"
        assert kube.get(api, kind, name, None if kind == "VpcNatGateway" else "kube-system") is None
    subnet = kube.get("kubeovn.io/v1", "Subnet", "ovn-default")
    assert subnet is not None and not subnet["metadata"].get("finalizers")
    annotations = kube_api.request("GET", "/api/v1/nodes/kvtest-ovn-node").json()["metadata"]["annotations"]
    assert annotations == {"other/keep": "yes"}

    # Leave the shared apiserver clean for other tests.
    for path in (f"{OVN}/subnets/ovn-default", f"{OVN}/subnets/join", f"{OVN}/vpcs/ovn-cluster",
                 f"{OVN}/ips/vm1.ws1", "/api/v1/nodes/kvtest-ovn-node"):  # fmt: skip
        kube_api.request("DELETE", path)
