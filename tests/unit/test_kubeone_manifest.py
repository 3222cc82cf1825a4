"""The rendered KubeOne manifest, checked against the documented kubeone.k8c.io/v1beta2 field set.

k8c.io/kubeone is not built here, so KubeOne's own loader cannot be used: the JSON schema below is
written from KubeOne's v1beta2 types (pkg/apis/kubeone/v1beta2/types.go) and docs, limited to the
fields kvinstall may emit, with additionalProperties false so that a misspelt field fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from kvinstall.config.models import Config
from kvinstall.kubeone.manifest import manifest_hash, manifest_yaml, registries_auth, render_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], "additionalProperties": False}


STR = {"type": "string"}
INT = {"type": "integer"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
TAINT = obj(
    {"key": STR, "value": STR, "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}},
    ["key", "effect"],
)
HOST = obj(
    {
        "publicAddress": STR,
        "privateAddress": STR,
        "ipv6Addresses": {"type": "array"},
        "sshPort": INT,
        "sshUsername": STR,
        "sshPrivateKeyFile": STR,
        "sshCertFile": STR,
        "sshHostPublicKey": STR,
        "sshAgentSocket": STR,
        "bastion": STR,
        "bastionPort": INT,
        "bastionUser": STR,
        "bastionPrivateKeyFile": STR,
        "bastionHostPublicKey": STR,
        "hostname": STR,
        "isLeader": {"type": "boolean"},
        "taints": {"type": "array", "items": TAINT},
        "labels": STRMAP,
        "annotations": STRMAP,
        "kubelet": {"type": "object"},
        "operatingSystem": {"enum": ["ubuntu", "debian", "centos", "rhel", "rockylinux", "flatcar"]},
    },
    ["publicAddress", "privateAddress"],
)
REGISTRY = obj(
    {
        "mirrors": {"type": "array", "items": STR},
        "overridePath": {"type": "boolean"},
        "tlsConfig": obj({"insecureSkipVerify": {"type": "boolean"}}),
        "auth": obj({"username": STR, "password": STR, "auth": STR, "identityToken": STR}),
    }
)
ONE_OF_CNI = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "canal": {"type": "object"},
        "cilium": {"type": "object"},
        "weaveNet": {"type": "object"},
        "external": obj({}),
    },
}
KUBEONE_V1BETA2 = obj(
    {
        "apiVersion": {"const": "kubeone.k8c.io/v1beta2"},
        "kind": {"const": "KubeOneCluster"},
        "name": STR,
        "controlPlane": obj({"hosts": {"type": "array", "items": HOST, "minItems": 1}}, ["hosts"]),
        "staticWorkers": obj({"hosts": {"type": "array", "items": HOST}}),
        "apiEndpoint": obj(
            {"host": STR, "port": INT, "alternativeNames": {"type": "array", "items": STR}}, ["host"]
        ),
        "cloudProvider": obj({"none": obj({}), "external": {"type": "boolean"}}, ["none"]),
        "versions": obj({"kubernetes": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"}}, ["kubernetes"]),
        "containerRuntime": obj(
            {"containerd": obj({"registries": {"type": "object", "additionalProperties": REGISTRY}})}
        ),
        "clusterNetwork": obj(
            {
                "podSubnet": STR,
                "serviceSubnet": STR,
                "serviceDomainName": STR,
                "nodePortRange": STR,
                "ipFamily": STR,
                "cni": ONE_OF_CNI,
                # KubeOne v1.13.7 pkg/apis/kubeone/v1beta2 KubeProxyConfig (the fields kvinstall sets).
                "kubeProxy": obj({"ipvs": obj({"strictARP": {"type": "boolean"}}), "iptables": obj({})}),
            }
        ),
        "proxy": obj({"http": STR, "https": STR, "noProxy": STR}),
        "features": obj(
            {
                "openidConnect": obj(
                    {
                        "enable": {"type": "boolean"},
                        "config": obj(
                            {
                                "issuerUrl": STR,
                                "clientId": STR,
                                "usernameClaim": STR,
                                "usernamePrefix": STR,
                                "groupsClaim": STR,
                                "groupsPrefix": STR,
                                "requiredClaim": STR,
                                "signingAlgs": STR,
                                "caFile": STR,
                            },
                            ["issuerUrl"],
                        ),
                    }
                )
            }
        ),
        "registryConfiguration": obj({"overwriteRegistry": STR, "insecureRegistry": {"type": "boolean"}}),
        "systemPackages": obj({"configureRepositories": {"type": "boolean"}}),
    },
    ["apiVersion", "kind", "name", "controlPlane", "apiEndpoint", "cloudProvider", "versions"],
)


def load_example(name: str) -> Config:
    return Config.model_validate(YAML(typ="safe").load((EXAMPLES / name).read_text()))


def native_configs() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml") if "kind: VirtualizationCluster" in p.read_text())


@pytest.mark.parametrize("name", native_configs())
def test_every_example_renders_a_valid_manifest(name: str) -> None:
    config = load_example(name)
    m = render_manifest(config)
    jsonschema.validate(m, KUBEONE_V1BETA2)
    # the YAML text parses back to the same document
    assert YAML(typ="safe").load(manifest_yaml(config)) == m


def test_examples_exist() -> None:
    assert {"minimal.yaml", "ha-gpu.yaml", "airgapped.yaml"} <= set(native_configs())


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
    oidc = m["features"]["openidConnect"]
    assert oidc["enable"] is True
    assert oidc["config"] == {
        "issuerUrl": "https://dex.prod-virt.example.com/dex",
        "clientId": "kubernetes",
        "usernameClaim": "email",
        "groupsClaim": "groups",
    }


def test_no_oidc_without_auth_and_default_endpoint() -> None:
    m = render_manifest(load_example("minimal.yaml"))
    assert "features" not in m
    assert m["apiEndpoint"] == {"host": "192.0.2.10", "port": 6443}
    assert "containerRuntime" not in m


def test_offline_mirrors_without_secrets() -> None:
    base = YAML(typ="safe").load((EXAMPLES / "airgapped.yaml").read_text())
    base["offline"]["credentials"] = {"username": "puller", "password": "s3cr3t-value"}
    base["offline"]["insecure"] = True
    config = Config.model_validate(base)
    text = manifest_yaml(config)
    assert "s3cr3t-value" not in text
    regs = render_manifest(config)["containerRuntime"]["containerd"]["registries"]
    assert regs["registry.k8s.io"]["mirrors"] == ["http://registry.offline-site.internal:5000"]
    assert regs["docker.io"]["tlsConfig"] == {"insecureSkipVerify": True}
    auth = registries_auth(config)
    assert auth is not None and auth["kind"] == "ContainerRuntimeContainerd"
    assert auth["registries"]["quay.io"]["auth"] == {"username": "puller", "password": "s3cr3t-value"}


def test_taints_hostnames_and_pinned_keys() -> None:
    config = Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "t"},
            "ssh": {"useAgent": False},
            "hosts": [
                {
                    "address": "10.0.0.1",
                    "role": "controlPlane",
                    "taints": [],
                    "hostname": "cp",
                    "hostPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE",
                },
                {
                    "address": "10.0.0.2",
                    "role": "worker",
                    "privateAddress": "192.168.0.2",
                    "taints": [{"key": "gpu", "effect": "NoSchedule"}],
                },
            ],
        }
    )
    m = render_manifest(config, host_keys={"10.0.0.2": "ssh-ed25519 AAAAverified"})
    jsonschema.validate(m, KUBEONE_V1BETA2)
    cp, w = m["controlPlane"]["hosts"][0], m["staticWorkers"]["hosts"][0]
    assert cp["taints"] == [] and cp["hostname"] == "cp"
    assert cp["sshHostPublicKey"].startswith("ssh-ed25519 AAAAC3")
    assert "sshAgentSocket" not in cp
    assert w["taints"] == [{"key": "gpu", "effect": "NoSchedule"}]
    assert w["privateAddress"] == "192.168.0.2" and w["publicAddress"] == "10.0.0.2"
    assert w["sshHostPublicKey"] == "ssh-ed25519 AAAAverified"
    assert manifest_hash(config) == manifest_hash(config)
    assert manifest_hash(config) != manifest_hash(config, host_keys={"10.0.0.2": "ssh-ed25519 AAAAx"})


def test_schema_rejects_a_misspelt_field() -> None:
    m = render_manifest(load_example("minimal.yaml"))
    m["controlPlane"]["hosts"][0]["sshUser"] = "root"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(m, KUBEONE_V1BETA2)


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
    jsonschema.validate(m, KUBEONE_V1BETA2)
    assert m["clusterNetwork"].get("kubeProxy") == expected
