"""`mirror create`'s registry endpoints (--registry-mirror/--insecure-registry/--registry-ca), and the
upstream view of an offline config that `mirror list/create` work from."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvinstall.config.models import Config
from kvinstall.errors import UsageError
from kvinstall.imageref import parse_reference
from kvinstall.mirror.copy import Clients
from kvinstall.mirror.model import RegistryOptions
from kvinstall.mirror.sources import registry_options
from kvinstall.plan.desired import upstream_config


def test_mirror_endpoint_with_its_own_plain_http_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    opts = registry_options(
        ["docker.io=127.0.0.1:5000", "quay.io=cache.site:443", "registry-1.docker.io=127.0.0.1:5000"],
        ["127.0.0.1:5000"],
        [f"cache.site:443={ca}"],
    )
    assert opts["docker.io"] == RegistryOptions(endpoint="127.0.0.1:5000", insecure=True)
    assert opts["quay.io"] == RegistryOptions(endpoint="cache.site:443", ca_file=str(ca))
    # The endpoint named by itself keeps its settings (for references written with that host).
    assert opts["127.0.0.1:5000"] == RegistryOptions(insecure=True)


def test_settings_for_an_upstream_without_a_mirror(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    opts = registry_options([], ["reg.local:5000"], [f"ghcr.io={ca}"])
    assert opts == {"reg.local:5000": RegistryOptions(insecure=True), "ghcr.io": RegistryOptions(ca_file=str(ca))}


@pytest.mark.parametrize(
    ("mirrors", "insecure", "cas", "message"),
    [
        (["docker.io"], [], [], "expected HOST=VALUE"),
        (["docker.io=http://127.0.0.1:5000"], [], [], "without a scheme"),
        (["docker.io=a:1", "docker.io=b:2"], [], [], "two endpoints for docker.io"),
        ([], ["a/b"], [], "expected HOST"),
        ([], [], ["ghcr.io=/nonexistent/ca.pem"], "no such file"),
    ],
)
def test_bad_options_are_usage_errors(mirrors: list[str], insecure: list[str], cas: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        registry_options(mirrors, insecure, cas)


def test_clients_contact_the_endpoint_for_the_upstream_host() -> None:
    clients = Clients({"docker.io": RegistryOptions(endpoint="127.0.0.1:5000", insecure=True)}, pool=2)
    try:
        hub = clients.get(parse_reference("docker.io/kubeovn/kube-ovn:v1.16.2"))
        assert hub.host == "127.0.0.1:5000" and hub.base == "http://127.0.0.1:5000"
        quay = clients.get(parse_reference("quay.io/kubevirt/virt-operator:v1.8.4"))
        assert quay.base == "https://quay.io"
    finally:
        clients.close()


def test_upstream_config_switches_offline_off_and_keeps_the_rest() -> None:
    cfg = Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "x"},
        "hosts": [{"address": "127.0.0.10", "role": "controlPlane"}],
        "offline": {"enabled": True, "registry": "127.0.0.1:5000", "insecure": True},
    })  # fmt: skip
    up = upstream_config(cfg)
    assert not up.offline.enabled and up.offline.registry == "127.0.0.1:5000"
    assert cfg.offline.enabled  # the original is unchanged
    assert upstream_config(up) is up
