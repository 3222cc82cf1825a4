"""Exercises every substrate fixture against the real servers it starts."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import oras.client
import pytest
import requests
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

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


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.kvtest.example.com"},
    "spec": {
        "group": "kvtest.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}


def _apply_crd(kube_api: KubeApi, crd: dict[str, Any]) -> None:
    dyn = _dynamic(kube_api)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    dyn.server_side_apply(crds, body=crd, field_manager="kvtest")
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
