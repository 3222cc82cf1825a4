"""What the real KubeVirt, CDI and Longhorn operators deploy (and the images cert-manager's controller
starts pods with), as data: the workloads (with their images) that
virt-operator and cdi-operator create for a CR, taken from their source at the release tags. The
suite's fake controller loop (tests/e2e/platform_world.ClusterSim) creates exactly these, and the
air-gap tests check every image in them is mirrored. No operator runs here (no kubelet, no
containers): this is the one place that says what they would do.

virt-operator v1.7/v1.8 (pkg/virt-operator: util/config.go, resource/generate/components/
{deployments,daemonsets,virttemplate}.go, resource/apply/reconcile.go):
- every operand image is the operator's own reference with the name swapped: the operator image is
  parsed with `^(.*)/(.*)virt-operator([@:].*)?$` into registry, name prefix and tag;
- always: Deployments virt-api, virt-controller (which hands virt-launcher, virt-exportserver and
  sidecar-shim images to the pods it creates), DaemonSet virt-handler (virt-launcher init container);
- gate VMExport: Deployment virt-exportproxy (its export pods use virt-exportserver);
- gate DecentralizedLiveMigration: Deployment virt-synchronization-controller;
- gate PersistentReservation: a pr-helper container in virt-handler;
- gate Sidecar: VMs' hook sidecars run sidecar-shim;
- gate Template (v1.8): Deployments virt-template-apiserver and virt-template-controller, whose
  images come from the bundle virt-operator embeds (own version v0.1.8), moved to its registry.

cdi-operator (v1.64/v1.65): Deployments cdi-deployment, cdi-apiserver, cdi-uploadproxy from its env
CONTROLLER_IMAGE, APISERVER_IMAGE, UPLOAD_PROXY_IMAGE; importer, cloner and upload-server pods
from IMPORTER_IMAGE, CLONER_IMAGE, UPLOAD_SERVER_IMAGE (OVIRT_POPULATOR_IMAGE too).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

OPERATOR_IMAGE = re.compile(r"^(.*)/(.*)virt-operator([@:].*)?$")
VIRT_TEMPLATE_VERSION = {"v1.8": "v0.1.8"}  # the embedded virt-template bundle per KubeVirt minor
OPERAND_LABEL = "kvtest.io/operand-of"  # marks what the fake operators created

KubeObject = dict[str, Any]


def _env(deployment: KubeObject) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") or "" for e in container.get("env") or []}


def _workload(kind: str, name: str, namespace: str, owner: str, containers: list[tuple[str, str]],
              init: tuple[tuple[str, str], ...] = (), env: dict[str, str] | None = None) -> KubeObject:
    labels = {"app": name, OPERAND_LABEL: owner}
    pod: dict[str, Any] = {"containers": [{"name": n, "image": i} for n, i in containers]}
    if env:
        pod["containers"][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if init:
        pod["initContainers"] = [{"name": n, "image": i} for n, i in init]
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": labels}, "spec": pod}}
    if kind == "Deployment":
        spec["replicas"] = 2
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def kubevirt_version(operator_deployment: KubeObject) -> str:
    return _env(operator_deployment).get("KUBEVIRT_VERSION", "")


def virt_operator_operands(operator_deployment: KubeObject, gates: Iterable[str]) -> list[KubeObject]:
    """The workloads virt-operator creates for a KubeVirt CR with `gates` on."""
    env = _env(operator_deployment)
    image = env.get("VIRT_OPERATOR_IMAGE") or operator_deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    match = OPERATOR_IMAGE.match(image)
    if match is None:
        raise ValueError(f"virt-operator cannot parse its own image {image!r}")
    registry, prefix, version = match.group(1), match.group(2), match.group(3) or ""
    tag = version[1:] if version.startswith(":") else env.get("KUBEVIRT_VERSION", "latest")
    ns = operator_deployment["metadata"]["namespace"]
    on = set(gates)

    def img(name: str, own_tag: str = tag) -> str:
        return f"{registry}/{prefix}{name}:{own_tag}"

    handler = [("virt-handler", img("virt-handler"))]
    if "PersistentReservation" in on:
        handler.append(("pr-helper", img("pr-helper")))
    # virt-controller names the images of the pods it starts (VMs, exports, hook sidecars).
    controller_env = {"VIRT_LAUNCHER_IMAGE": img("virt-launcher"), "VIRT_EXPORTSERVER_IMAGE": img("virt-exportserver"),
                      "SIDECAR_SHIM_IMAGE": img("sidecar-shim")}  # fmt: skip
    out = [
        _workload("Deployment", "virt-api", ns, "kubevirt", [("virt-api", img("virt-api"))]),
        _workload("Deployment", "virt-controller", ns, "kubevirt", [("virt-controller", img("virt-controller"))],
                  env=controller_env),
        _workload("DaemonSet", "virt-handler", ns, "kubevirt", handler, init=(("virt-launcher", img("virt-launcher")),)),
    ]  # fmt: skip
    if "VMExport" in on:
        out.append(_workload("Deployment", "virt-exportproxy", ns, "kubevirt",
                             [("exportproxy", img("virt-exportproxy"))]))  # fmt: skip
    if "DecentralizedLiveMigration" in on:
        out.append(_workload("Deployment", "virt-synchronization-controller", ns, "kubevirt",
                             [("virt-synchronization-controller", img("virt-synchronization-controller"))]))  # fmt: skip
    template_version = VIRT_TEMPLATE_VERSION.get(".".join(tag.split(".")[:2]))
    if "Template" in on and template_version:
        for name in ("virt-template-apiserver", "virt-template-controller"):
            out.append(_workload("Deployment", name, ns, "kubevirt", [(name, img(name, template_version))]))
    return out


# Images an operand hands (in its env) to the pods it starts, and the gate without which it starts none.
POD_IMAGE_ENV: dict[str, str | None] = {
    "VIRT_LAUNCHER_IMAGE": None,
    "VIRT_EXPORTSERVER_IMAGE": "VMExport",
    "SIDECAR_SHIM_IMAGE": "Sidecar",
    "IMPORTER_IMAGE": None,
    "CLONER_IMAGE": None,
    "UPLOAD_SERVER_IMAGE": None,
    "OVIRT_POPULATOR_IMAGE": None,
}


def pulled_images(operands: list[KubeObject], gates: Iterable[str] = ()) -> set[str]:
    """The images nodes pull for these operands: their containers', and those of the pods they
    start (only where the gate that lets them start such pods is on)."""
    on = set(gates)
    images: set[str] = set()
    for obj in operands:
        pod = obj["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            images.add(c["image"])
            for e in c.get("env", []):
                gate = POD_IMAGE_ENV.get(e["name"], "never")
                if gate is None or gate in on:
                    images.add(e["value"])
    return images


def cdi_operator_operands(operator_deployment: KubeObject) -> list[KubeObject]:
    """The workloads cdi-operator creates for the CDI CR (its pods' images come from the same env)."""
    env = _env(operator_deployment)
    ns = operator_deployment["metadata"]["namespace"]
    pods_env = {k: env[k] for k in ("IMPORTER_IMAGE", "CLONER_IMAGE", "UPLOAD_SERVER_IMAGE", "OVIRT_POPULATOR_IMAGE")}
    return [
        _workload("Deployment", "cdi-deployment", ns, "cdi", [("cdi-controller", env["CONTROLLER_IMAGE"])],
                  env=pods_env),
        _workload("Deployment", "cdi-apiserver", ns, "cdi", [("cdi-apiserver", env["APISERVER_IMAGE"])]),
        _workload("Deployment", "cdi-uploadproxy", ns, "cdi", [("cdi-uploadproxy", env["UPLOAD_PROXY_IMAGE"])]),
    ]  # fmt: skip


# --- Longhorn -------------------------------------------------------------------------------------
# longhorn-manager v1.9 (the chart's longhorn-manager DaemonSet) is told the images it deploys as
# flags: the engine image (a DaemonSet engine-image-ei-<checksum>), instance managers, share managers,
# backing image managers and support bundles (pods per node / volume). The driver deployer
# (Deployment longhorn-driver-deployer, `longhorn-manager deploy-driver`) creates the CSI driver
# object driver.longhorn.io, Deployments csi-attacher, csi-provisioner, csi-resizer, csi-snapshotter
# and DaemonSet longhorn-csi-plugin from the *_IMAGE env it is given (datastore/deploy-driver at the tag).
LONGHORN_MANAGER_IMAGE_FLAGS = ("--engine-image", "--instance-manager-image", "--share-manager-image",
                                "--backing-image-manager-image", "--support-bundle-manager-image")  # fmt: skip
LONGHORN_CSI_DEPLOYMENTS = {"csi-attacher": "CSI_ATTACHER_IMAGE", "csi-provisioner": "CSI_PROVISIONER_IMAGE",
                            "csi-resizer": "CSI_RESIZER_IMAGE", "csi-snapshotter": "CSI_SNAPSHOTTER_IMAGE"}  # fmt: skip


def flag_values(container: KubeObject, flags: Iterable[str]) -> dict[str, str]:
    """`--flag VALUE` and `--flag=VALUE` of a container's command and args."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    wanted, out = set(flags), {}
    for i, word in enumerate(words):
        flag, eq, value = str(word).partition("=")
        if eq and flag in wanted:
            out[flag] = value
        elif word in wanted and i + 1 < len(words):
            out[str(word)] = str(words[i + 1])
    return out


def longhorn_manager_operands(manager: KubeObject) -> list[KubeObject]:
    """What longhorn-manager deploys from its flags: the engine image DaemonSet (its other images run in
    pods per node and volume: listed in pulled_longhorn_images)."""
    flags = flag_values(manager["spec"]["template"]["spec"]["containers"][0], LONGHORN_MANAGER_IMAGE_FLAGS)
    engine = flags["--engine-image"]
    name = "engine-image-ei-" + hashlib.sha256(engine.encode()).hexdigest()[:8]
    ns = manager["metadata"]["namespace"]
    return [_workload("DaemonSet", name, ns, "longhorn", [("engine-image", engine)])]


def pulled_longhorn_images(manager: KubeObject) -> set[str]:
    """Every image longhorn-manager starts pods with (instance managers, share managers, ...)."""
    return set(flag_values(manager["spec"]["template"]["spec"]["containers"][0], LONGHORN_MANAGER_IMAGE_FLAGS).values())


def longhorn_driver_operands(deployer: KubeObject) -> list[KubeObject]:
    """The CSI workloads the driver deployer creates, with the images its env names."""
    env = _env(deployer)
    manager_image = deployer["spec"]["template"]["spec"]["containers"][0]["image"]
    ns = deployer["metadata"]["namespace"]
    out = [_workload("Deployment", name, ns, "longhorn", [(name, env[var])])
           for name, var in LONGHORN_CSI_DEPLOYMENTS.items()]  # fmt: skip
    out.append(_workload("DaemonSet", "longhorn-csi-plugin", ns, "longhorn", [
        ("node-driver-registrar", env["CSI_NODE_DRIVER_REGISTRAR_IMAGE"]),
        ("longhorn-liveness-probe", env["CSI_LIVENESS_PROBE_IMAGE"]),
        ("longhorn-csi-plugin", manager_image)]))  # fmt: skip
    return out


# --- cert-manager ---------------------------------------------------------------------------------
# The controller starts HTTP-01 solver pods (ACME issuers) with the image of its
# --acme-http01-solver-image flag (cmd/controller/app/options at the tag).


def cert_manager_solver_image(controller: KubeObject) -> str:
    container = controller["spec"]["template"]["spec"]["containers"][0]
    return flag_values(container, ("--acme-http01-solver-image",))["--acme-http01-solver-image"]
