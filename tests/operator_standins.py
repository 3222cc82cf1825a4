"""Stand-ins for the upstream KubeVirt and CDI operator manifests (the real release assets cannot be
fetched here). Each has the upstream structure kvinstall relies on: the Namespace, the CRD of the
operator's CR (real schema with a status subresource, so the apiserver accepts the CR and
operator_sim can patch its status), RBAC, and the operator Deployment with its image and the env
vars the upstream operator reads (VIRT_OPERATOR_IMAGE / KUBEVIRT_VERSION; CDI's *_IMAGE list).

`catalog_with(...)` gives a release catalog whose artifact for a component points at a test URL with
the stand-in's pinned sha256, the way the shipped catalog pins upstream files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import yaml

from kvinstall.catalog import Catalog, load_catalog
from kvinstall.components.base import Artifact
from substrate.crds import crd

KV_VERSION = "v1.8.4"
CDI_VERSION = "v1.65.0"


def _rbac(name: str, namespace: str, group: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [group], "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _deployment(
    name: str, namespace: str, image: str, env: list[dict[str, str]], replicas: int
) -> dict[str, Any]:
    labels = {"name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [
                        {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "env": env}
                    ],
                },
            },
        },
    }


def kubevirt_operator_objects(version: str = KV_VERSION) -> list[dict[str, Any]]:
    image = f"quay.io/kubevirt/virt-operator:{version}"
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "kubevirt", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}},
        },
        crd("kubevirt.io", "KubeVirt", "kubevirts", scope="Namespaced", version="v1"),
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "kubevirt-cluster-critical"},
            "value": 1000000000,
            "globalDefault": False,
        },
        *_rbac("kubevirt-operator", "kubevirt", "kubevirt.io"),
        _deployment(
            "virt-operator",
            "kubevirt",
            image,
            [
                {"name": "VIRT_OPERATOR_IMAGE", "value": image},
                {"name": "WATCH_NAMESPACE", "value": ""},
                {"name": "KUBEVIRT_VERSION", "value": version},
            ],
            replicas=2,
        ),
    ]


def cdi_operator_objects(version: str = CDI_VERSION) -> list[dict[str, Any]]:
    def img(name: str) -> str:
        return f"quay.io/kubevirt/{name}:{version}"

    env = [
        {"name": "DEPLOY_CLUSTER_RESOURCES", "value": "true"},
        {"name": "OPERATOR_VERSION", "value": version},
        {"name": "CONTROLLER_IMAGE", "value": img("cdi-controller")},
        {"name": "IMPORTER_IMAGE", "value": img("cdi-importer")},
        {"name": "CLONER_IMAGE", "value": img("cdi-cloner")},
        {"name": "OVIRT_POPULATOR_IMAGE", "value": img("cdi-importer")},
        {"name": "APISERVER_IMAGE", "value": img("cdi-apiserver")},
        {"name": "UPLOAD_SERVER_IMAGE", "value": img("cdi-uploadserver")},
        {"name": "UPLOAD_PROXY_IMAGE", "value": img("cdi-uploadproxy")},
        {"name": "VERBOSITY", "value": "1"},
        {"name": "PULL_POLICY", "value": "IfNotPresent"},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "cdi", "labels": {"cdi.kubevirt.io": ""}},
        },
        crd("cdi.kubevirt.io", "CDI", "cdis", scope="Cluster", version="v1beta1"),
        *_rbac("cdi-operator", "cdi", "cdi.kubevirt.io"),
        _deployment("cdi-operator", "cdi", img("cdi-operator"), env, replicas=1),
    ]


def manifest_bytes(objects: list[dict[str, Any]]) -> bytes:
    return yaml.safe_dump_all(objects, sort_keys=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalog_with(component: str, version: str, url: str, data: bytes, base: Catalog | None = None) -> Catalog:
    """A catalog whose `component` `version` artifact is `url`, pinned to sha256(data)."""
    catalog = base or load_catalog()
    product = catalog.components[component]
    release = product.releases[version]
    artifacts = tuple(
        dataclasses.replace(a, source=url, sha256=sha256(data)) if a.kind == "url" else a
        for a in release.artifacts
    )
    releases = {**product.releases, version: dataclasses.replace(release, artifacts=artifacts)}
    components = {**catalog.components, component: dataclasses.replace(product, releases=releases)}
    return dataclasses.replace(catalog, components=components)


class MemorySource:
    """An ArtifactSource over bytes held in memory, checking the pinned digest like the real cache
    does (the unit tests' stand-in for the network; integration tests use the real ArtifactCache)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files  # by artifact name
        self.requested: list[str] = []

    def get(self, artifact: Artifact) -> bytes | None:
        from kvinstall.errors import IntegrityError

        self.requested.append(artifact.name)
        data = self.files.get(artifact.name)
        if data is not None and artifact.sha256 and sha256(data) != artifact.sha256:
            raise IntegrityError("digest mismatch", where=f"artifact {artifact.name}")
        return data


@contextlib.contextmanager
def serve_https(files: dict[str, bytes], ca: Any) -> Iterator[str]:
    """Serve `files` (path -> bytes) over HTTPS on 127.0.0.1 with a certificate from the test CA;
    yields the base URL. Stands in for the upstream release download server."""
    pair = ca.issue("artifact-server", common_name="127.0.0.1", ips=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pair.cert), str(pair.key))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
