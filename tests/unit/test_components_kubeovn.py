"""Kube-OVN: chart values from the config, rendered by the real helm binary from the real charts of
the releases in the catalog (tests/upstream_pack.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.kubeovn import COMPONENT, chart_values
from kvinstall.config.models import Config
from kvinstall.render.images import images_in, images_outside
from upstream_pack import MemorySource, PackSource


def config(**extra: Any) -> Config:
    data: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "lab"},
        "hosts": [
            {"address": "192.0.2.10", "privateAddress": "10.0.0.1", "role": "controlPlane"},
            {"address": "192.0.2.11", "role": "controlPlane", "tunnelInterface": "bond0"},
            {"address": "192.0.2.12", "privateAddress": "10.0.0.3", "role": "controlPlane"},
            {"address": "192.0.2.20", "role": "worker"},
        ],
    }
    data.update(extra)
    return Config.model_validate(data)


CATALOG = load_catalog()
RELEASE = CATALOG.component("kubeovn", "v1.16.2")


def test_values_from_config() -> None:
    cfg = config(
        network={
            "podCIDR": "10.50.0.0/16",
            "serviceCIDR": "10.60.0.0/16",
            "joinCIDR": "100.70.0.0/16",
            "tunnelInterface": "eth1",
            "tunnelType": "vxlan",
            "mtu": 1400,
        },
        components={"kubeOVN": {"enableNatGateway": True, "enableLoadBalancer": False}},
    )
    v = chart_values(cfg, RELEASE)
    assert v["MASTER_NODES"] == "10.0.0.1,192.0.2.11,10.0.0.3"
    assert v["ipv4"] == {
        "POD_CIDR": "10.50.0.0/16",
        "POD_GATEWAY": "10.50.0.1",
        "SVC_CIDR": "10.60.0.0/16",
        "JOIN_CIDR": "100.70.0.0/16",
    }
    assert v["networking"]["IFACE"] == "bond0,eth1"
    assert v["networking"]["TUNNEL_TYPE"] == "vxlan"
    assert "MTU" not in v["networking"]  # the chart has none: kvinstall adds --mtu to the cni-server
    assert (
        v["func"]["ENABLE_LB"] is False
        and v["func"]["ENABLE_NP"] is True
        and v["func"]["ENABLE_NAT_GW"] is True
    )
    assert v["global"]["registry"]["address"] == "docker.io/kubeovn"
    assert v["global"]["images"]["kubeovn"]["tag"] == "v1.16.2"
    assert v["global"]["images"]["natgateway"] == {"repository": "vpc-nat-gateway", "tag": "v1.16.2"}


def test_explicit_gateway_and_no_mtu() -> None:
    v = chart_values(config(network={"gateway": "10.16.0.254"}), RELEASE)
    assert v["ipv4"]["POD_GATEWAY"] == "10.16.0.254"
    assert v["networking"]["IFACE"] == "bond0"


def test_render_with_real_helm() -> None:
    rendered = COMPONENT.render(config(), CATALOG, PackSource())
    objs = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    central = objs[("Deployment", "ovn-central")]
    assert central["spec"]["replicas"] == 3
    env = central["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "NODE_IPS", "value": "10.0.0.1,192.0.2.11,10.0.0.3"} in env
    assert objs[("Deployment", "kube-ovn-controller")]["spec"]["replicas"] == 3
    assert ("CustomResourceDefinition", "subnets.kubeovn.io") in objs
    assert not any(o["kind"] == "Job" for o in rendered.objects), "the chart's hooks are not rendered"
    assert images_in(rendered.objects) == {
        "docker.io/kubeovn/kube-ovn:v1.16.2",
        "docker.io/kubeovn/vpc-nat-gateway:v1.16.2",  # ConfigMap ovn-vpc-nat-config
    }
    assert any("kube-ovn/role=master" in n for n in rendered.notes)


def test_offline_render_points_every_image_at_the_site() -> None:
    cfg = config(
        offline={"enabled": True, "registry": "registry.site:5000"},
        components={"kubeOVN": {"enableNatGateway": True}},
    )
    assert chart_values(cfg, RELEASE)["global"]["registry"]["address"] == "registry.site:5000/kubeovn"
    rendered = COMPONENT.render(cfg, CATALOG, PackSource())
    assert images_outside(rendered.objects, "registry.site:5000") == set()
    assert "registry.site:5000/kubeovn/vpc-nat-gateway:v1.16.2" in images_in(rendered.objects)


def test_unavailable_chart_is_reported_not_hidden() -> None:
    rendered = COMPONENT.render(config(), CATALOG, MemorySource({}))
    assert rendered.objects == []
    assert [a.name for a in rendered.unavailable] == ["kube-ovn-chart"]


def test_readiness_in_documented_order() -> None:
    rules = COMPONENT.readiness(config(), CATALOG)
    assert [(r.kind, r.name) for r in rules] == [
        ("Deployment", "ovn-central"),
        ("DaemonSet", "ovs-ovn"),
        ("Deployment", "kube-ovn-controller"),
        ("DaemonSet", "kube-ovn-cni"),
        ("DaemonSet", "kube-ovn-pinger"),
        ("Deployment", "kube-ovn-monitor"),
        ("Subnet", "ovn-default"),
        ("Subnet", "join"),
        ("Vpc", "ovn-cluster"),
    ]
    assert rules[6].conditions == (("Ready", "True"),)
    assert rules[8].exists_only


def test_artifacts_and_images_come_from_the_catalog() -> None:
    assert [a.name for a in COMPONENT.artifacts(config(), CATALOG)] == ["kube-ovn-chart"]
    assert "docker.io/kubeovn/kube-ovn:v1.16.2" in COMPONENT.images(config(), CATALOG)


@pytest.mark.parametrize("version", ["v1.15.24"])
def test_other_catalog_version(version: str) -> None:
    cfg = config(components={"kubeOVN": {"version": version}})
    rendered = COMPONENT.render(cfg, CATALOG, PackSource())
    assert images_in(rendered.objects) == {
        f"docker.io/kubeovn/kube-ovn:{version}",
        f"docker.io/kubeovn/vpc-nat-gateway:{version}",
    }


def _cni_args(objects: list[dict]) -> list[str]:
    ds = next(o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "kube-ovn-cni")
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "cni-server")["args"]


def test_mtu_reaches_the_cni_server() -> None:
    source = PackSource()
    assert not any(
        a.startswith("--mtu") for a in _cni_args(COMPONENT.render(config(), CATALOG, source).objects)
    )
    rendered = COMPONENT.render(config(network={"mtu": 1400}), CATALOG, source)
    assert [a for a in _cni_args(rendered.objects) if a.startswith("--mtu")] == ["--mtu=1400"]
