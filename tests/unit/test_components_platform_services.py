"""MetalLB, Longhorn, cert-manager and Multus rendered from the real charts and manifests of their
releases (the real helm): the settings each takes from the config, what each refuses, and what stays
the controllers' (webhook CAs). The whole lifecycle is in tests/e2e/test_platform_services.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvinstall.catalog import load_catalog
from kvinstall.components import component
from kvinstall.config.models import Config
from kvinstall.model import KubeObject
from upstream_pack import MemorySource, PackSource

CATALOG = load_catalog()
SOURCE = PackSource()
POOL = {"name": "lb", "addresses": ["192.0.2.200-192.0.2.220"]}


def config(workers: int = 2, **components: Any) -> Config:
    hosts = [{"address": "192.0.2.10", "role": "controlPlane"}]
    hosts += [{"address": f"192.0.2.{20 + i}", "role": "worker"} for i in range(workers)]
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "lab"},
        "hosts": hosts, "components": components,
    })  # fmt: skip


def render(name: str, cfg: Config) -> list[KubeObject]:
    rendered = component(name).render(cfg, CATALOG, SOURCE)
    assert rendered.unavailable == []
    return rendered.objects


def find(objects: list[KubeObject], kind: str, name: str) -> KubeObject:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def kinds(objects: list[KubeObject], kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == kind]


@pytest.mark.parametrize(("workers", "replicas", "expected"), [(2, None, 2), (5, None, 3), (5, 1, 1)])
def test_longhorn_replicas_follow_the_workers(workers: int, replicas: int | None, expected: int) -> None:
    lh: dict[str, Any] = {"enabled": True, "dataPath": "/srv/longhorn"}
    if replicas is not None:
        lh["replicas"] = replicas
    objects = render("longhorn", config(workers, longhorn=lh))
    settings = yaml.safe_load(find(objects, "ConfigMap", "longhorn-default-setting")["data"]["default-setting.yaml"])
    assert settings["default-replica-count"] == expected
    assert settings["default-data-path"] == "/srv/longhorn/"
    assert settings["upgrade-checker"] is False  # no call home
    rwx = find(objects, "StorageClass", "longhorn-rwx")
    assert rwx["provisioner"] == "driver.longhorn.io" and rwx["parameters"]["migratable"] == "true"
    # The manager makes the `longhorn` class from the chart's settings: kvinstall applies none of that name.
    assert kinds(objects, "StorageClass") == ["longhorn-rwx"]


def test_cert_manager_issuers(tmp_path: Path) -> None:
    self_signed = render("certmanager", config(certManager={"enabled": True}))
    assert find(self_signed, "ClusterIssuer", "kvinstall")["spec"] == {"ca": {"secretName": "kvinstall-ca"}}
    ca_cert = find(self_signed, "Certificate", "kvinstall-ca")
    assert ca_cert["spec"]["isCA"] is True and ca_cert["spec"]["secretName"] == "kvinstall-ca"
    assert "kvinstall-ca" not in kinds(self_signed, "Secret")  # cert-manager makes and renews it

    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    own = render("certmanager", config(certManager={"enabled": True, "issuer": "ca", "ca": {
        "certFile": str(tmp_path / "ca.pem"), "key": {"valueFrom": {"file": str(tmp_path / "ca.key")}}}}))  # fmt: skip
    secret = find(own, "Secret", "kvinstall-ca")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert find(own, "ClusterIssuer", "kvinstall")["spec"] == {"ca": {"secretName": "kvinstall-ca"}}
    assert kinds(own, "Certificate") == []

    acme = render("certmanager", config(certManager={"enabled": True, "issuer": "acme", "acme": {
        "email": "ops@example.com", "ingressClass": "traefik"}}))  # fmt: skip
    spec = find(acme, "ClusterIssuer", "kvinstall")["spec"]["acme"]
    assert spec["email"] == "ops@example.com"
    assert spec["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert spec["solvers"] == [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]
    # The webhooks' caBundle is cert-manager's cainjector's to fill: never set by kvinstall.
    hooks = [o for o in acme if o["kind"].endswith("WebhookConfiguration")]
    assert hooks and all("caBundle" not in w["clientConfig"] for h in hooks for w in h["webhooks"])


def test_metallb_pools_l2_and_bgp_peers(tmp_path: Path) -> None:
    l2 = render("metallb", config(metallb={"enabled": True, "pools": [POOL, {"name": "more", "autoAssign": False,
                                                                              "addresses": ["192.0.2.64/28"]}]}))  # fmt: skip
    assert find(l2, "IPAddressPool", "more")["spec"]["autoAssign"] is False
    assert find(l2, "L2Advertisement", "kvinstall-l2")["spec"]["ipAddressPools"] == ["lb", "more"]
    assert kinds(l2, "BGPPeer") == [] and kinds(l2, "BGPAdvertisement") == []
    speaker = find(l2, "DaemonSet", "metallb-speaker")
    assert "frr" in {c["name"] for c in speaker["spec"]["template"]["spec"]["containers"]}

    (tmp_path / "bgp.pw").write_text("s3cret\n")
    bgp = render("metallb", config(metallb={"enabled": True, "l2": False, "frrK8s": True, "pools": [POOL],
                                            "bgpPeers": [{"address": "192.0.2.1", "asn": 64512, "myASN": 64513,
                                                          "password": {"valueFrom": {"file": str(tmp_path / "bgp.pw")}}}]}))  # fmt: skip
    assert kinds(bgp, "L2Advertisement") == []
    peer = find(bgp, "BGPPeer", "peer-192-0-2-1")["spec"]
    assert (peer["peerAddress"], peer["peerASN"], peer["myASN"]) == ("192.0.2.1", 64512, 64513)
    secret = find(bgp, "Secret", peer["passwordSecret"]["name"])
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    assert find(bgp, "BGPAdvertisement", "kvinstall-bgp")["spec"]["ipAddressPools"] == ["lb"]
    assert "frr-k8s" in " ".join(kinds(bgp, "DaemonSet"))  # BGP in the frr-k8s daemon


@pytest.mark.parametrize(("plugin", "image"), [("thick", "v4.2.3-thick"), ("thin", "v4.2.3")])
def test_multus_pins_the_release_image_and_cleans_up_on_exit(plugin: str, image: str) -> None:
    objects = render("multus", config(multus={"enabled": True, "plugin": plugin}))
    ds = find(objects, "DaemonSet", "kube-multus-ds")
    images = {c["image"] for c in ds["spec"]["template"]["spec"]["containers"]}
    assert images == {f"ghcr.io/k8snetworkplumbingwg/multus-cni:{image}"}  # not the manifest's moving tag
    text = json.dumps(objects)
    assert "snapshot" not in text
    if plugin == "thin":
        assert "--cleanup-config-on-exit=true" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
    else:
        daemon = json.loads(find(objects, "ConfigMap", "multus-daemon-config")["data"]["daemon-config.json"])
        assert daemon["cleanupConfigOnExit"] is True


def test_missing_chart_is_named_not_rendered() -> None:
    """Without the chart's bytes (no cache, no network: plan on a fresh machine) the component names
    what is missing and renders only kvinstall's own objects (the phase then observes nothing and
    apply refuses to run it)."""
    rendered = component("longhorn").render(config(longhorn={"enabled": True}), CATALOG, MemorySource({}))
    assert [a.name for a in rendered.unavailable] == ["longhorn-chart"]
    assert [(o["kind"], o["metadata"]["name"]) for o in rendered.objects] == [("StorageClass", "longhorn-rwx")]
    assert any("not available here" in n for n in rendered.notes)
