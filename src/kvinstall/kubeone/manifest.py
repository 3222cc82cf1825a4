"""The KubeOne manifest (`kubeone.k8c.io/v1beta2` KubeOneCluster) rendered from the config. Pure.

Bare metal (`cloudProvider: none`), CNI `external` (Kube-OVN is installed after KubeOne), control
planes labelled `kube-ovn/role=master` (the Kube-OVN chart finds its central nodes by that label),
containerd mirrors to the site registry in offline mode, and OIDC flags when Dex is enabled.
Node labels and annotations (a key ending in '-' removes it: KubeOne's own rule) and kubelet
settings pass through. Registry passwords never enter the manifest: `registries_auth()` gives
them for KubeOne's credentials file (`-c`), written with mode 0600 by the runner.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML

from kvinstall.config.dockerconfig import docker_config_logins
from kvinstall.config.models import Bastion, Config, Host, NodeKubelet

API_VERSION = "kubeone.k8c.io/v1beta2"
KIND = "KubeOneCluster"
KUBE_OVN_MASTER_LABEL = ("kube-ovn/role", "master")
# Registries whose images the cluster pulls (KubeOne/kubeadm and the components); in offline mode
# containerd is told to pull each of them from the site registry.
UPSTREAM_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io", "reg.kyverno.io")


def _bastion_fields(b: Bastion | None, host_key_of: Mapping[str, str]) -> dict[str, Any]:
    if b is None:
        return {}
    out: dict[str, Any] = {"bastion": b.address, "bastionPort": b.port}
    if b.user:
        out["bastionUser"] = b.user
    if b.private_key_file:
        out["bastionPrivateKeyFile"] = b.private_key_file
    key = b.host_public_key or host_key_of.get(b.address)
    if key:
        out["bastionHostPublicKey"] = key
    return out


def _host(config: Config, h: Host, host_key_of: Mapping[str, str]) -> dict[str, Any]:
    s = config.ssh
    out: dict[str, Any] = {
        "publicAddress": h.address,
        "privateAddress": h.internal_address,
        "sshPort": h.port or s.port,
        "sshUsername": h.user or s.user,
    }
    key_file = h.private_key_file or s.private_key_file
    if key_file:
        out["sshPrivateKeyFile"] = key_file
    if s.use_agent:
        out["sshAgentSocket"] = "env:SSH_AUTH_SOCK"
    # KubeOne checks host keys only when one is given: pass the pinned (or verified) one.
    host_key = h.host_public_key or host_key_of.get(h.address)
    if host_key:
        out["sshHostPublicKey"] = host_key
    out.update(_bastion_fields(h.bastion or s.bastion, host_key_of))
    if h.hostname:
        out["hostname"] = h.hostname
    labels = dict(h.labels)
    if h.role == "controlPlane":
        labels[KUBE_OVN_MASTER_LABEL[0]] = KUBE_OVN_MASTER_LABEL[1]
    if labels:
        out["labels"] = dict(sorted(labels.items()))
    if h.annotations:
        out["annotations"] = dict(sorted(h.annotations.items()))
    if h.kubelet is not None:
        out["kubelet"] = kubelet_fields(h.kubelet)
    if h.taints is not None:
        # [] = no taints at all (on a control plane: schedulable); unset = KubeOne's default.
        out["taints"] = [
            {"key": t.key, "value": t.value, "effect": t.effect}
            if t.value
            else {"key": t.key, "effect": t.effect}
            for t in h.taints
        ]
    return out


def kubelet_fields(k: NodeKubelet) -> dict[str, Any]:
    """KubeOne's KubeletConfig (the same camelCase keys), without the unset fields."""
    return k.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")


def _registries(config: Config) -> dict[str, Any]:
    off = config.offline
    scheme = "http" if off.insecure else "https"
    mirror = f"{scheme}://{off.registry}"
    entry: dict[str, Any] = {"mirrors": [mirror]}
    if off.insecure or off.insecure_skip_verify:
        entry["tlsConfig"] = {"insecureSkipVerify": True}
    # The upstream registries and the site registry itself (images rewritten to it) alike.
    return {r: dict(entry) for r in [*UPSTREAM_REGISTRIES, str(off.registry)]}


def render_manifest(config: Config, *, host_keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The KubeOneCluster for `config`.

    host_keys: optional verified host keys ('ssh-ed25519 AAAA...') by host address, e.g. from
    kvinstall's known_hosts, so that KubeOne verifies hosts too (it does not unless told).
    """
    keys = host_keys or {}
    ep = config.endpoint()
    api: dict[str, Any] = {"host": ep.host, "port": ep.port}
    if ep.alternative_names:
        api["alternativeNames"] = list(ep.alternative_names)
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": config.name,
        "versions": {"kubernetes": config.kubernetes.version.removeprefix("v")},
        "cloudProvider": {"none": {}},
        "controlPlane": {"hosts": [_host(config, h, keys) for h in config.control_plane]},
        "apiEndpoint": api,
        "clusterNetwork": {
            "podSubnet": config.network.pod_cidr,
            "serviceSubnet": config.network.service_cidr,
            "cni": {"external": {}},
        },
    }
    proxy = kube_proxy(config)
    if proxy is not None:
        manifest["clusterNetwork"]["kubeProxy"] = proxy
    if config.kubelet is not None:
        manifest["kubeletConfig"] = kubelet_fields(config.kubelet)
    if config.workers:
        manifest["staticWorkers"] = {"hosts": [_host(config, h, keys) for h in config.workers]}
    if config.offline.enabled and config.offline.registry:
        manifest["containerRuntime"] = {"containerd": {"registries": _registries(config)}}
    if config.auth.mode != "none":
        oidc: dict[str, Any] = {
            "issuerUrl": config.auth.issuer or "",
            "clientId": config.auth.client_id,
            "usernameClaim": config.auth.username_claim,
            "groupsClaim": config.auth.groups_claim,
        }
        manifest["features"] = {"openidConnect": {"enable": True, "config": oidc}}
    return manifest


def kube_proxy(config: Config) -> dict[str, Any] | None:
    """clusterNetwork.kubeProxy: nothing for iptables (KubeOne's default, so such manifests stay as they
    were); IPVS with strict ARP when MetalLB is on: otherwise kube-proxy answers ARP for every Service
    address from each node's kube-ipvs0 and contradicts MetalLB's layer 2 announcements."""
    if config.network.kube_proxy_mode != "ipvs":
        return None
    return {"ipvs": {"strictARP": config.components.metallb.enabled}}


def registries_auth(config: Config) -> dict[str, Any] | None:
    """The `registriesAuth` document for KubeOne's credentials file (holds registry passwords).

    Kept out of the manifest so that the manifest (stored in the state directory, hashed, shown in
    plans) never carries a secret. The logins of `imagePullSecret` first; in offline mode the site
    registry's login for every registry it stands in for. None when there is nothing to authenticate.
    """
    registries: dict[str, Any] = {}
    if config.image_pull_secret is not None:
        text = config.image_pull_secret.require("imagePullSecret")
        try:
            logins = docker_config_logins(text)
        except ValueError as exc:
            from kvinstall.config.problems import Problem
            from kvinstall.errors import ConfigError

            raise ConfigError([Problem(str(exc), loc=("imagePullSecret",))]) from exc
        registries.update({host: {"auth": auth} for host, auth in logins.items()})
    off = config.offline
    if off.enabled and off.registry and off.credentials:
        auth = {
            "username": off.credentials.username,
            "password": off.credentials.password.require("offline.credentials.password"),
        }
        registries.update({r: {"auth": dict(auth)} for r in [*UPSTREAM_REGISTRIES, str(off.registry)]})
    if not registries:
        return None
    return {"apiVersion": API_VERSION, "kind": "ContainerRuntimeContainerd", "registries": registries}


def to_yaml(doc: Any) -> str:
    y = YAML()
    y.default_flow_style = False
    y.width = 4096
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def manifest_yaml(config: Config, *, host_keys: Mapping[str, str] | None = None) -> str:
    return to_yaml(render_manifest(config, host_keys=host_keys))


def manifest_hash(config: Config, *, host_keys: Mapping[str, str] | None = None) -> str:
    """sha256 of the rendered manifest text: the key of the skip-if-unchanged decision."""
    return "sha256:" + hashlib.sha256(manifest_yaml(config, host_keys=host_keys).encode()).hexdigest()
