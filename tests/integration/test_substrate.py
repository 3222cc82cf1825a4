"""Exercises every substrate fixture against the real servers it starts."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import oras.client
import paramiko
import pytest
import requests
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

from substrate.crds import crd
from substrate.host_lab import DEBIAN_12, SUDO_USER, UBUNTU_2404, ClientKeys, HostSpec, Lab
from substrate.kube_api import KubeApi
from substrate.oci_images import (
    OCI_INDEX,
    OCI_MANIFEST,
    SeededImages,
    build_image,
    get_blob,
    get_manifest,
    push_image,
    sha256,
)
from substrate.operator_sim import OperatorSim
from substrate.procs import wait_until
from substrate.registries import Registries, Registry

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- registries and images

@pytest.mark.parametrize("which", ["upstream", "mirror", "tls", "auth"])
def test_registry_push_pull_round_trip(registries: Registries, which: str) -> None:
    reg: Registry = getattr(registries, which)
    image = build_image({"roundtrip.txt": which.encode()}, "amd64")
    repo = f"roundtrip/{which}"
    digest = push_image(reg, repo, "v1", image)
    assert digest == image.digest
    raw, media_type = get_manifest(reg, repo, "v1")
    assert raw == image.manifest and media_type == OCI_MANIFEST
    for blob in image.blobs():
        assert get_blob(reg, repo, blob.digest) == blob.data


def test_auth_registry_rejects_anonymous(registries: Registries) -> None:
    r = requests.get(f"{registries.auth.url}/v2/", timeout=5)
    assert r.status_code == 401
    assert "Basic" in r.headers.get("WWW-Authenticate", "")


def test_tls_registry_needs_its_ca(registries: Registries) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registries.tls.url}/v2/", timeout=5)
    assert registries.tls.ca is not None and registries.tls.ca.exists()


def test_oras_pull_from_upstream_and_push_to_mirror(registries: Registries, oci_images: SeededImages,
                                                    tmp_path: pytest.TempPathFactory) -> None:
    """A third-party client (oras-py) reads what the pure-Python builder pushed."""
    up = oras.client.OrasClient(hostname=registries.upstream.host, insecure=True)
    manifest = up.get_manifest(oci_images.single.ref)
    assert manifest["config"]["digest"] == oci_images.single.image.config.digest  # type: ignore[union-attr]
    tags = up.get_tags(f"{registries.upstream.host}/kvtest/single")
    assert "v1" in tags


def test_multi_arch_index_shares_base_layer(registries: Registries, oci_images: SeededImages) -> None:
    multi = oci_images.multi
    assert multi.index is not None
    raw, media_type = get_manifest(registries.upstream, multi.repo, multi.tag)
    assert media_type == OCI_INDEX and sha256(raw) == multi.digest
    platforms = {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]}
    assert platforms == {"amd64", "arm64"}
    firsts = {img.layers[0].digest for img in multi.index.images}
    assert firsts == {oci_images.base_layer.digest}


def test_skopeo_copies_index_to_mirror_preserving_digests(registries: Registries,
                                                          oci_images: SeededImages) -> None:
    """skopeo (a real peer) copies the multi-arch index from upstream to mirror, digests unchanged."""
    src = oci_images.multi
    subprocess.run(
        ["skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
         f"docker://{src.ref}", f"docker://{registries.mirror.host}/copied/multi:v1"],
        check=True, capture_output=True, timeout=120,
    )
    raw, _ = get_manifest(registries.mirror, "copied/multi", "v1")
    assert sha256(raw) == src.digest


def test_registry_restart_keeps_content(registry_factory: object) -> None:
    reg: Registry = registry_factory("restart")  # type: ignore[operator]
    image = build_image({"keep.txt": b"kept"})
    push_image(reg, "keep/me", "v1", image)
    old_host = reg.host
    reg.restart()
    assert reg.host == old_host
    raw, _ = get_manifest(reg, "keep/me", "v1")
    assert raw == image.manifest


# ---------------------------------------------------------------- kube_api and operator_sim

def _dynamic(kube_api: KubeApi) -> DynamicClient:
    return DynamicClient(k8s_config.new_client_from_config(config_file=str(kube_api.kubeconfig)))


CRD = crd("kvtest.example.com", "Widget", "widgets", spec_schema={"type": "object", "properties": {"size": {"type": "integer"}}})


def _apply_crd(kube_api: KubeApi, crd: dict[str, Any]) -> None:
    dyn = _dynamic(kube_api)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    # Other tests on the shared apiserver may own this CRD already (kvinstall installs KubeVirt).
    dyn.server_side_apply(crds, body=crd, field_manager="kvtest", force_conflicts=True)
    name = crd["metadata"]["name"]

    def established() -> bool:
        obj = crds.get(name=name).to_dict()
        return any(c["type"] == "Established" and c["status"] == "True"
                   for c in obj.get("status", {}).get("conditions", []))

    wait_until(established, 30, f"CRD {name} Established")


def test_kube_api_server_side_apply_configmap(kube_api: KubeApi, kube_namespace: str) -> None:
    dyn = _dynamic(kube_api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa", "namespace": kube_namespace}, "data": {"a": "1"}}
    mark = kube_api.audit_mark()
    dyn.server_side_apply(cms, body=body, field_manager="kvtest")
    got = cms.get(name="ssa", namespace=kube_namespace)
    assert got.data.a == "1"
    managers = [m.manager for m in got.metadata.managedFields]
    assert "kvtest" in managers
    writes = kube_api.writes_since(mark)
    assert [(w.verb, w.resource, w.name) for w in writes] == [("patch", "configmaps", "ssa")]
    # reads alone are not writes: the audit proof of "nothing written" the apply engine needs
    mark = kube_api.audit_mark()
    cms.get(name="ssa", namespace=kube_namespace)
    assert kube_api.write_count(mark) == 0


def test_kube_api_crd_and_custom_resource(kube_api: KubeApi, kube_namespace: str) -> None:
    _apply_crd(kube_api, CRD)
    dyn = _dynamic(kube_api)
    widgets = dyn.resources.get(api_version="kvtest.example.com/v1", kind="Widget")
    body = {"apiVersion": "kvtest.example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": kube_namespace}, "spec": {"size": 3}}
    dyn.server_side_apply(widgets, body=body, field_manager="kvtest")
    assert widgets.get(name="w1", namespace=kube_namespace).spec.size == 3


def test_kube_api_token_identity_and_rbac(kube_api: KubeApi) -> None:
    with requests.Session() as s:
        s.trust_env = False
        s.verify = str(kube_api.ca)
        ok = s.get(f"{kube_api.server}/api/v1/namespaces",
                   headers={"Authorization": f"Bearer {kube_api.token}"}, timeout=10)
        anon = s.get(f"{kube_api.server}/api/v1/namespaces", timeout=10)
    assert ok.status_code == 200
    assert anon.status_code in (401, 403)


def test_kube_api_version_and_kubectl(kube_api: KubeApi) -> None:
    assert kube_api.request("GET", "/version").json()["gitVersion"] == "v1.34.4"
    out = subprocess.run([str(kube_api.kubectl()), "--kubeconfig", str(kube_api.kubeconfig),
                          "get", "namespace", "default", "-o", "name"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "namespace/default"


def test_kube_api_restart_keeps_data(kube_api: KubeApi, kube_namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "survives"}}
    kube_api.request("POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", json=body).raise_for_status()
    kube_api.stop_apiserver()
    with pytest.raises(requests.exceptions.ConnectionError):
        kube_api.request("GET", "/readyz", timeout=2)
    kube_api.start_apiserver()
    got = kube_api.request("GET", f"/api/v1/namespaces/{kube_namespace}/configmaps/survives")
    assert got.status_code == 200
    kube_api.restart()
    assert kube_api.request("GET", "/readyz").status_code == 200


def test_operator_sim_marks_kubevirt_deployed(kube_api: KubeApi, operator_sim: OperatorSim) -> None:
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = "kubevirts.kubevirt.io"
    crd["spec"]["group"] = "kubevirt.io"
    crd["spec"]["names"] = {"plural": "kubevirts", "singular": "kubevirt", "kind": "KubeVirt",
                            "listKind": "KubeVirtList"}
    _apply_crd(kube_api, crd)
    kube_api.request("POST", "/api/v1/namespaces",
                     json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubevirt"}})
    path = operator_sim.kubevirt_path()
    # the operator acts in the background once the CR exists, as a real one would
    operator_sim.when_exists(path, timeout=30)
    kube_api.request("POST", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts", json={
        "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"}, "spec": {},
    }).raise_for_status()
    assert operator_sim.wait(30) == [path]
    assert operator_sim.errors == []
    status = kube_api.request("GET", path).json()["status"]
    assert status["phase"] == "Deployed"
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"Available": "True", "Progressing": "False", "Degraded": "False"}


def test_operator_sim_marks_deployment_available(kube_api: KubeApi, kube_namespace: str,
                                                 operator_sim: OperatorSim) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1"}]}}}}
    kube_api.request("POST", f"/apis/apps/v1/namespaces/{kube_namespace}/deployments",
                     json=dep).raise_for_status()
    obj = operator_sim.deployment_available(kube_namespace, "web")
    assert obj["status"]["readyReplicas"] == 2
    assert {"type": "Available", "status": "True"}.items() <= obj["status"]["conditions"][0].items()


# ---------------------------------------------------------------- host_lab

def _lab_specs() -> list[HostSpec]:
    return [
        HostSpec("bastion", bastion=True),
        HostSpec("cp1", os_release=DEBIAN_12),
        HostSpec("w1", os_release=UBUNTU_2404, kvm=False, cpus=1, sudo="password"),
        HostSpec("hidden1", behind_bastion=True, authorized_key_types=("ed25519", "rsa", "ecdsa")),
    ]


def test_host_lab_paramiko_on_every_host(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(_lab_specs())
    for host in lab.hosts.values():
        code, out, err = lab.exec(host, "hostname; id -u")
        assert code == 0, err
        assert out.split() == [host.name, "0"]
    # the host key the client verified is the one the test was given
    client = lab.ssh("cp1")
    transport = client.get_transport()
    assert transport is not None
    key = transport.get_remote_server_key()
    assert f"{key.get_name()} {key.get_base64()}" == lab["cp1"].host_key_line


def test_host_lab_bastion_is_on_the_path(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(_lab_specs())
    hidden = lab["hidden1"]
    with pytest.raises(OSError):  # not routable from the client's namespace
        lab.connect(hidden.ip, 22, timeout=3)
    code, out, _ = lab.exec(hidden, "echo $SSH_CONNECTION")
    assert code == 0
    # the hidden host sees the bastion's inner address as the peer
    assert out.split()[0] == lab["bastion"].inner_ip
    lab["bastion"].stop_sshd()
    with pytest.raises(OSError):
        lab.exec(hidden, "true")


def test_host_lab_sudo_users(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(_lab_specs())
    code, out, err = lab.exec("cp1", "id -un; sudo -n true", user=SUDO_USER)
    assert (code, out.strip()) == (0, SUDO_USER), err
    w1 = lab["w1"]
    code, _, err = lab.exec(w1, "sudo -n true", user=SUDO_USER)
    assert code != 0 and "password is required" in err
    assert w1.sudo_password is not None
    code, out, err = lab.exec(w1, "sudo -S -p '' id -u", user=SUDO_USER,
                              stdin=(w1.sudo_password + "\n").encode())
    assert (code, out.strip()) == (0, "0"), err


def test_host_lab_host_differences(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(_lab_specs())
    _, cp1, _ = lab.exec("cp1", ". /etc/os-release; echo $ID $VERSION_ID; test -e /dev/kvm && echo kvm")
    _, w1, _ = lab.exec("w1", ". /etc/os-release; echo $ID $VERSION_ID; nproc; "
                              "test -e /dev/kvm || echo nokvm")
    assert cp1.split() == ["debian", "12", "kvm"]
    assert w1.split() == ["ubuntu", "24.04", "1", "nokvm"]


def test_host_lab_client_key_types(host_lab: Callable[..., Lab], ssh_client_keys: ClientKeys) -> None:
    lab = host_lab(_lab_specs())
    for kind in ("ed25519", "rsa", "ecdsa"):
        client = lab.ssh("hidden1", key=ssh_client_keys.path(kind))
        _, out, _ = client.exec_command("echo ok")
        assert out.read() == b"ok\n"
    with pytest.raises(paramiko.AuthenticationException):
        lab.ssh("cp1", key=ssh_client_keys.rsa)  # cp1 authorises ed25519 only


def test_host_lab_faults(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(2)
    h1 = lab["h1"]
    h1.stop_sshd()
    with pytest.raises(ConnectionRefusedError):
        lab.connect(h1.ip, 22, timeout=3)
    h1.start_sshd()
    client = lab.ssh(h1)
    h1.kill_sessions()
    with pytest.raises((paramiko.SSHException, OSError, EOFError)):
        client.exec_command("true", timeout=5)[1].read()
    h1.link_down()
    with pytest.raises(OSError):
        lab.connect(h1.ip, 22, timeout=1)
    h1.link_up()
    assert lab.exec(h1, "true")[0] == 0
    assert lab.exec("h2", "true")[0] == 0


def test_host_lab_openssh_client_in_lab_namespace(host_lab: Callable[..., Lab],
                                                  ssh_client_keys: ClientKeys) -> None:
    lab = host_lab(1)
    h1 = lab["h1"]
    cp = lab.run_in_lab(["ssh", "-i", str(ssh_client_keys.ed25519),
                         "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                         "-o", "BatchMode=yes", f"root@{h1.ip}", "hostname"], text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "h1"


def test_lab_addresses_are_blackholed_in_root_namespace(host_lab: Callable[..., Lab]) -> None:
    lab = host_lab(1)
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect((lab["h1"].ip, 22))


def test_host_lab_teardown_removes_everything(tmp_path: Path, ssh_client_keys: ClientKeys) -> None:
    """What the host_lab fixture does at teardown, driven by hand: a host that fails to start included."""
    with ExitStack() as stack:
        lab = Lab(tmp_path, ssh_client_keys, stack)
        lab.build_network()
        host = lab.add_host(HostSpec("h1"), 1)
        broken = HostSpec("broken", extra_sshd_config="NoSuchSshdOption yes")
        with pytest.raises(RuntimeError, match="exited early"):
            lab.add_host(broken, 2)
        pid, netns_names, x = host.proc.pid if host.proc else 0, [lab.netns, host.netns], lab.x
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(n in listed for n in netns_names)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert f"10.77.{x}.0/24" not in routes and f"10.78.{x}.0/24" not in routes


def test_kube_api_factory_gives_a_private_cluster(kube_api: KubeApi,
                                                  kube_api_factory: Callable[[], KubeApi]) -> None:
    private = kube_api_factory()
    assert private.server != kube_api.server
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-here"}}
    private.request("POST", "/api/v1/namespaces/default/configmaps", json=body).raise_for_status()
    assert kube_api.request("GET", "/api/v1/namespaces/default/configmaps/only-here").status_code == 404
    mark = private.audit_mark()
    private.request("DELETE", "/api/v1/namespaces/default/configmaps/only-here").raise_for_status()
    assert [(w.verb, w.name) for w in private.writes_since(mark)] == [("delete", "only-here")]
