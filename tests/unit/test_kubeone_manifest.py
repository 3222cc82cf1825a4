"""The rendered KubeOne manifest: what kvinstall decides for each field.

That KubeOne accepts every manifest kvinstall renders is checked with the real binary against real
hosts in tests/integration/test_kubeone_real.py; these tests pin the decisions themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kvinstall.config.models import OIDC_CA_PATH, Config
from kvinstall.kubeone.manifest import (
    manifest_hash,
    manifest_yaml,
    registries_auth,
    render_manifest,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> Config:
    return Config.model_validate(YAML(typ="safe").load((EXAMPLES / name).read_text()))


def cfg(**over: Any) -> Config:
    base: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "t"},
        "hosts": [{"address": "10.0.0.1", "role": "controlPlane"}],
    }
    base.update(over)
    return Config.model_validate(base)


def test_bare_metal_essentials_and_control_plane_label() -> None:
    m = render_manifest(load_example("ha-gpu.yaml"))
    assert m["cloudProvider"] == {"none": {}}
    assert m["clusterNetwork"]["cni"] == {"external": {}}
    assert m["versions"]["kubernetes"] == "1.34.4"
    cps = m["controlPlane"]["hosts"]
    assert len(cps) == 3 and all(h["labels"]["kube-ovn/role"] == "master" for h in cps)
    assert all("kube-ovn/role" not in h.get("labels", {}) for h in m["staticWorkers"]["hosts"])
    gpu = m["staticWorkers"]["hosts"][0]
    assert gpu["labels"] == {"nvidia.com/gpu.present": "true"}
    assert cps[0]["bastion"] == "198.51.100.5" and cps[0]["bastionUser"] == "jump"
    assert cps[0]["sshUsername"] == "ubuntu"
    assert m["apiEndpoint"] == {
        "host": "api.prod-virt.example.com",
        "port": 6443,
        "alternativeNames": ["198.51.100.10"],
    }
    # the YAML text parses back to the same document
    assert YAML(typ="safe").load(manifest_yaml(load_example("ha-gpu.yaml"))) == m


def test_containerd_hands_devices_to_the_pod_user() -> None:
    # KubeVirt's VM processes run as non-root and open /dev/kvm, vfio devices and block disks.
    for name in ("minimal.yaml", "ha-gpu.yaml", "airgapped.yaml"):
        m = render_manifest(load_example(name))
        assert m["containerRuntime"]["containerd"]["deviceOwnershipFromSecurityContext"] is True


def test_oidc_prefixes_are_explicit_and_match_the_workspace_bindings() -> None:
    from kvinstall.components.workspaces import subject_prefixes

    config = load_example("ha-gpu.yaml")
    oidc = render_manifest(config)["features"]["openidConnect"]
    assert oidc["enable"] is True
    assert oidc["config"] == {
        "issuerUrl": "https://dex.prod-virt.example.com/dex",
        "clientId": "kubernetes",
        "usernameClaim": "email",
        "usernamePrefix": "oidc:",
        "groupsClaim": "groups",
        "groupsPrefix": "oidc:",
    }
    assert subject_prefixes(config) == {"User": "oidc:", "Group": "oidc:"}
    # no prefix at all: KubeOne's '-' (its empty value means its own default, 'oidc:')
    bare = cfg(auth={"mode": "basic", "issuer": "https://dex.t/dex", "usernamePrefix": "", "groupsPrefix": ""})
    c = render_manifest(bare)["features"]["openidConnect"]["config"]
    assert c["usernamePrefix"] == "-" and c["groupsPrefix"] == "-"
    assert subject_prefixes(bare) == {"User": "", "Group": ""}


def test_issuer_ca_file_is_named_for_the_apiserver() -> None:
    m = render_manifest(cfg(auth={"mode": "basic", "issuer": "https://dex.t/dex", "issuerCAFile": "ca.pem"}))
    assert m["features"]["openidConnect"]["config"]["caFile"] == OIDC_CA_PATH
    assert OIDC_CA_PATH.startswith("/etc/ssl/certs/")  # kubeadm mounts it into the kube-apiserver pod


def test_no_oidc_without_auth_and_default_endpoint() -> None:
    m = render_manifest(load_example("minimal.yaml"))
    assert "features" not in m
    assert m["apiEndpoint"] == {"host": "192.0.2.10", "port": 6443}
    assert "registries" not in m["containerRuntime"]["containerd"]
    assert "systemPackages" not in m


def test_offline_mirrors_without_secrets_and_no_public_repositories() -> None:
    base = YAML(typ="safe").load((EXAMPLES / "airgapped.yaml").read_text())
    base["offline"]["credentials"] = {"username": "puller", "password": "s3cr3t-value"}
    base["offline"]["insecure"] = True
    base["offline"].pop("caFile")
    config = Config.model_validate(base)
    m = render_manifest(config)
    assert "s3cr3t-value" not in manifest_yaml(config)
    regs = m["containerRuntime"]["containerd"]["registries"]
    assert regs["registry.k8s.io"]["mirrors"] == ["http://registry.offline-site.internal:5000"]
    assert regs["docker.io"]["tlsConfig"] == {"insecureSkipVerify": True}
    assert m["systemPackages"] == {"configureRepositories": False}
    auth = registries_auth(config)
    assert auth is not None and auth["kind"] == "ContainerRuntimeContainerd"
    assert auth["registries"]["quay.io"]["auth"] == {"username": "puller", "password": "s3cr3t-value"}


def test_agent_socket_only_without_a_key_file() -> None:
    agent = render_manifest(cfg())["controlPlane"]["hosts"][0]
    assert agent["sshAgentSocket"] == "env:SSH_AUTH_SOCK" and "sshPrivateKeyFile" not in agent
    keyed = render_manifest(cfg(ssh={"privateKeyFile": "~/.ssh/id_ed25519"}))["controlPlane"]["hosts"][0]
    assert "sshAgentSocket" not in keyed and keyed["sshPrivateKeyFile"] == "~/.ssh/id_ed25519"
    off = render_manifest(cfg(ssh={"useAgent": False}))["controlPlane"]["hosts"][0]
    assert "sshAgentSocket" not in off


def test_relative_key_files_become_absolute() -> None:
    # KubeOne runs in the state directory: a relative path would point there.
    h = render_manifest(cfg(ssh={"privateKeyFile": "keys/id", "bastion": {"address": "10.9.9.9",
                                                                           "privateKeyFile": "keys/b"}}))
    host = h["controlPlane"]["hosts"][0]
    assert host["sshPrivateKeyFile"] == os.path.abspath("keys/id")
    assert host["bastionPrivateKeyFile"] == os.path.abspath("keys/b")


def test_host_keys_are_base64_bodies_and_not_part_of_the_hash() -> None:
    config = cfg(
        ssh={"useAgent": False, "port": 2222, "bastion": {"address": "10.9.9.9"}},
        hosts=[
            {"address": "10.0.0.1", "role": "controlPlane", "taints": [], "hostname": "cp"},
            {
                "address": "10.0.0.2",
                "role": "worker",
                "port": 22,
                "privateAddress": "192.168.0.2",
                "taints": [{"key": "gpu", "effect": "NoSchedule"}],
            },
        ],
    )
    keys = {
        "[10.0.0.1]:2222": "ecdsa-sha2-nistp256 AAAAE2VjZHNh",
        "10.0.0.2": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 comment",
        "10.9.9.9": "ssh-rsa AAAAB3NzaC1yc2E",
    }
    m = render_manifest(config, host_keys=keys)
    cp, w = m["controlPlane"]["hosts"][0], m["staticWorkers"]["hosts"][0]
    assert cp["sshHostPublicKey"] == "AAAAE2VjZHNh" and cp["sshPort"] == 2222
    assert w["sshHostPublicKey"] == "AAAAC3NzaC1lZDI1NTE5"
    assert cp["bastionHostPublicKey"] == w["bastionHostPublicKey"] == "AAAAB3NzaC1yc2E"
    assert cp["taints"] == [] and cp["hostname"] == "cp"
    assert w["taints"] == [{"key": "gpu", "effect": "NoSchedule"}]
    assert w["privateAddress"] == "192.168.0.2" and w["publicAddress"] == "10.0.0.2"
    plain = render_manifest(config)
    assert "sshHostPublicKey" not in plain["controlPlane"]["hosts"][0]
    assert manifest_hash(m) == manifest_hash(plain)
    renamed = Config.model_validate({**config.model_dump(by_alias=True), "metadata": {"name": "u"}})
    assert manifest_hash(plain) != manifest_hash(render_manifest(renamed))


@pytest.mark.parametrize(("mode", "metallb", "expected"), [
    ("iptables", True, None),  # KubeOne's default: the manifest says nothing
    ("ipvs", False, {"ipvs": {"strictARP": False}}),
    ("ipvs", True, {"ipvs": {"strictARP": True}}),  # MetalLB's layer 2 needs kube-proxy not to answer ARP
])  # fmt: skip
def test_kube_proxy_mode_and_strict_arp_for_metallb(mode: str, metallb: bool, expected: Any) -> None:
    tree = YAML(typ="safe").load((EXAMPLES / "minimal.yaml").read_text())
    tree["network"] = {"kubeProxyMode": mode}
    tree["components"] = {"metallb": {"enabled": metallb, **({"pools": [
        {"name": "lb", "addresses": ["192.0.2.200-192.0.2.220"]}]} if metallb else {})}}  # fmt: skip
    m = render_manifest(Config.model_validate(tree))
    assert m["clusterNetwork"].get("kubeProxy") == expected
