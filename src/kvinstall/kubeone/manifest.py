"""The KubeOne manifest (`kubeone.k8c.io/v1beta2` KubeOneCluster) rendered from the config. Pure
(relative key file paths are made absolute against the working directory, as kvinstall reads them).

Bare metal (`cloudProvider: none`), CNI `external` (Kube-OVN is installed after KubeOne), control
planes labelled `kube-ovn/role=master` (the Kube-OVN chart finds its central nodes by that label),
containerd set up for KubeVirt (device ownership from the security context) and, in offline mode,
mirroring every upstream registry to the site registry with no public package repositories, and
OIDC flags when Dex is enabled. Node labels and annotations (a key ending in '-' removes it:
KubeOne's own rule) and kubelet settings pass through. Every field was checked with the real
`kubeone config dump` of the catalog's KubeOne (tests/integration/test_kubeone_real.py).

Registry passwords never enter the manifest: `registries_auth()` gives them for KubeOne's
credentials file (`-c`), written with mode 0600 by the runner. Host keys are added by the caller
(`host_keys`): the keys kvinstall verified, so that KubeOne checks them too (it checks none unless
told); they are left out of `manifest_hash`, which says whether the cluster's definition changed.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML

from kvinstall.config.dockerconfig import docker_config_logins
from kvinstall.config.models import OIDC_CA_PATH, Bastion, Config, Host, NodeKubelet

API_VERSION = "kubeone.k8c.io/v1beta2"
KIND = "KubeOneCluster"
KUBE_OVN_MASTER_LABEL = ("kube-ovn/role", "master")
# Registries whose images the cluster pulls (KubeOne/kubeadm and the components); in offline mode
# containerd is told to pull each of them from the site registry.
UPSTREAM_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io", "reg.kyverno.io")
AGENT_SOCKET = "env:SSH_AUTH_SOCK"

HOST_KEY_FIELDS = ("sshHostPublicKey", "bastionHostPublicKey")


def host_key_id(address: str, port: int) -> str:
    """How `host_keys` names a host: as known_hosts does ('addr', or '[addr]:port' off port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def key_body(line: str) -> str:
    """'ssh-ed25519 AAAA... [comment]' -> 'AAAA...': KubeOne's host key fields take the base64
    body only (they are bytes; the whole line does not decode)."""
    parts = line.split()
    return parts[1] if len(parts) >= 2 else line.strip()


def _file(path: str) -> str:
    # KubeOne runs in the state directory and expands only '~/': a relative path would point there.
    return path if path.startswith("~/") else os.path.abspath(os.path.expanduser(path))


def _bastion_fields(b: Bastion | None, host_keys: Mapping[str, str]) -> dict[str, Any]:
    if b is None:
        return {}
    out: dict[str, Any] = {"bastion": b.address, "bastionPort": b.port}
    if b.user:
        out["bastionUser"] = b.user
    if b.private_key_file:
        out["bastionPrivateKeyFile"] = _file(b.private_key_file)
    key = host_keys.get(host_key_id(b.address, b.port))
    if key:
        out["bastionHostPublicKey"] = key_body(key)
    return out


def uses_agent(config: Config, h: Host) -> bool:
    """KubeOne gets the agent socket only when no key file is given (an unset SSH_AUTH_SOCK fails
    every connection of KubeOne even when the key file would do)."""
    return config.ssh.use_agent and not (h.private_key_file or config.ssh.private_key_file)


def _host(config: Config, h: Host, host_keys: Mapping[str, str]) -> dict[str, Any]:
    s = config.ssh
    port = h.port or s.port
    out: dict[str, Any] = {
        "publicAddress": h.address,
        "privateAddress": h.internal_address,
        "sshPort": port,
        "sshUsername": h.user or s.user,
    }
    key_file = h.private_key_file or s.private_key_file
    if key_file:
        out["sshPrivateKeyFile"] = _file(key_file)
    if uses_agent(config, h):
        out["sshAgentSocket"] = AGENT_SOCKET
    host_key = host_keys.get(host_key_id(h.address, port))
    if host_key:
        out["sshHostPublicKey"] = key_body(host_key)
    out.update(_bastion_fields(h.bastion or s.bastion, host_keys))
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
    """containerd's registry mirrors: every upstream registry and the site registry itself (images
    rewritten to it) pull from the site registry. KubeOne's TLS settings for a registry are
    insecureSkipVerify only: a site CA (offline.caFile) reaches containerd through the hosts'
    trust store (see docs/airgap.md)."""
    off = config.offline
    scheme = "http" if off.insecure else "https"
    entry: dict[str, Any] = {"mirrors": [f"{scheme}://{off.registry}"]}
    if off.insecure or off.insecure_skip_verify:
        entry["tlsConfig"] = {"insecureSkipVerify": True}
    return {r: copy.deepcopy(entry) for r in [*UPSTREAM_REGISTRIES, str(off.registry)]}


def oidc_prefix(prefix: str) -> str:
    """The config's prefix as KubeOne takes it: '' (no prefix) is KubeOne's '-'."""
    return prefix or "-"


def render_manifest(config: Config, *, host_keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The KubeOneCluster for `config`.

    host_keys: verified host keys ('ssh-ed25519 AAAA...') by host_key_id(address, port), for the
    hosts and bastions KubeOne connects to; hosts without one get no sshHostPublicKey.
    """
    keys = host_keys or {}
    ep = config.endpoint()
    api: dict[str, Any] = {"host": ep.host, "port": ep.port}
    if ep.alternative_names:
        api["alternativeNames"] = list(ep.alternative_names)
    # KubeVirt hands devices (/dev/kvm, vfio, disks) to non-root VM processes: containerd must give
    # them the owner of the container's security context.
    containerd: dict[str, Any] = {"deviceOwnershipFromSecurityContext": True}
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
        "containerRuntime": {"containerd": containerd},
    }
    proxy = kube_proxy(config)
    if proxy is not None:
        manifest["clusterNetwork"]["kubeProxy"] = proxy
    if config.kubelet is not None:
        manifest["kubeletConfig"] = kubelet_fields(config.kubelet)
    if config.workers:
        manifest["staticWorkers"] = {"hosts": [_host(config, h, keys) for h in config.workers]}
    if config.offline.enabled and config.offline.registry:
        containerd["registries"] = _registries(config)
        # No internet: KubeOne must not add the public Kubernetes/Docker package repositories (the
        # hosts' own package source has to provide containerd, kubeadm, kubelet, kubectl).
        manifest["systemPackages"] = {"configureRepositories": False}
    if config.auth.mode != "none":
        a = config.auth
        oidc: dict[str, Any] = {
            "issuerUrl": a.issuer or "",
            "clientId": a.client_id,
            "usernameClaim": a.username_claim,
            "usernamePrefix": oidc_prefix(a.username_prefix),
            "groupsClaim": a.groups_claim,
            "groupsPrefix": oidc_prefix(a.groups_prefix),
        }
        if a.issuer_ca_file:
            oidc["caFile"] = OIDC_CA_PATH
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


def without_host_keys(manifest: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    for section in ("controlPlane", "staticWorkers"):
        for h in (out.get(section) or {}).get("hosts", []):
            for f in HOST_KEY_FIELDS:
                h.pop(f, None)
    return out


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without host keys: the key of the skip-if-unchanged decision (a host
    key is how KubeOne checks a host, not part of the cluster)."""
    return "sha256:" + hashlib.sha256(to_yaml(without_host_keys(manifest)).encode()).hexdigest()
