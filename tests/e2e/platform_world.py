"""The world an end-to-end `apply` runs in: real sshd hosts (host_lab), the real kube-apiserver, real
helm, a local HTTPS "upstream" serving the REAL upstream charts and manifests (tests/upstream_pack.py:
chart repositories with their index, manifests at their release URLs), and two fakes at process
boundaries that cannot exist here, each said so where it is defined:

- `kubeone` (STAND-IN): a script on the config's kubeone.binary path. KubeOne would provision real
  machines; the stand-in records each call, registers a Ready Node per host (at the manifest's
  Kubernetes version, with the manifest's labels) in the test apiserver and prints its kubeconfig.
- `ClusterSim` (FAKE CONTROLLER LOOP): no kubelet or operators run here, so a bounded background loop
  plays them on the real CRDs, as the real controllers act: workloads become ready; virt-operator and
  cdi-operator put their finalizer on their CR, create their operands (tests/substrate/operators.py:
  the workloads and images their source creates for the gates on), report status (KubeVirt through
  its status subresource; CDI, whose CRD has none, through the object itself, as cdi-operator does)
  with their version as the real ones report it (a new operator version is named as the target at
  once, Progressing; the observed version follows once the operands run the new images, which are
  replaced as the operators roll them out), virt-operator also installs the VirtualMachineInstance
  CRD, and on deletion they remove their operands, then their finalizer; Kube-OVN's controller creates
  its default Vpc and Subnets; Kyverno reports each ValidatingPolicy ready; cert-manager, MetalLB and
  Longhorn act as platform_controllers.py describes, and the webhooks their charts register are
  answered (substrate/webhooks.py) through the apiserver's cluster network. It only writes when
  something is not as the controller wants it, so a converged cluster sees no writes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from platform_controllers import PlatformControllers

from substrate.crds import crd
from substrate.operators import OPERAND_LABEL, cdi_operator_operands, kubevirt_version, virt_operator_operands
from substrate.webhooks import WebhookServer
from upstream_pack import pinned_catalog_data, site_files

MERGE = {"Content-Type": "application/merge-patch+json"}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CONDITIONS_OK = [
    {"type": "Available", "status": "True", "reason": "AllComponentsReady", "message": "ready"},
    {"type": "Progressing", "status": "False", "reason": "AllComponentsReady", "message": "ready"},
    {"type": "Degraded", "status": "False", "reason": "AllComponentsReady", "message": "ready"},
]

KUBEONE_STANDIN = r'''#!{python}
# STAND-IN for the kubeone binary (no real machines here): see tests/e2e/platform.py.
import json, os, ssl, sys, urllib.request
import yaml

log = os.environ["KVTEST_KUBEONE_LOG"]
kubeconfig = os.environ["KVTEST_KUBECONFIG"]
args = sys.argv[1:]
with open(log, "a") as fh:
    fh.write(json.dumps(args) + "\n")
manifest = yaml.safe_load(open(args[args.index("-m") + 1]))
cfg = yaml.safe_load(open(os.environ["KVTEST_ADMIN_KUBECONFIG"]))  # its own calls: the admin identity
cluster = cfg["clusters"][0]["cluster"]
user = cfg["users"][0]["user"]
ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
ctx.load_cert_chain(user["client-certificate"], user["client-key"])

def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(cluster["server"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={{"Content-Type": ctype}})
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code

def hosts():
    for section in ("controlPlane", "staticWorkers"):
        for h in (manifest.get(section) or {{}}).get("hosts", []):
            yield h

version = "v" + manifest["versions"]["kubernetes"]
if args[0] == "apply":
    print("INFO[0000] Determine hostname...")
    for h in hosts():
        name = h.get("hostname") or h["publicAddress"]
        print(f"INFO[0001] Installing kubeadm on {{name}}")
        node = {{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": name, "labels": h.get("labels") or {{}}}}}}
        call("POST", "/api/v1/nodes", node)
        status = {{"status": {{"conditions": [{{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                              "message": "kubelet is posting ready status"}}],
                              "nodeInfo": {{"kubeletVersion": version}}}}}}
        call("PATCH", f"/api/v1/nodes/{{name}}/status", status, "application/merge-patch+json")
    print("INFO[0002] Cluster provisioned")
    sys.exit(int(os.environ.get("KVTEST_KUBEONE_EXIT", "0")))
elif args[0] == "kubeconfig":
    sys.stdout.write(open(kubeconfig).read())
elif args[0] == "reset":
    for h in hosts():
        call("DELETE", "/api/v1/nodes/" + (h.get("hostname") or h["publicAddress"]))
    print("INFO[0000] Cluster reset")
'''


def write_kubeone_standin(directory: Path) -> Path:
    path = directory / "kubeone"
    path.write_text(KUBEONE_STANDIN.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- upstream artifacts ---------------------------------------------------------------------------


# KubeOne and helm binaries are not part of the upstream pack: the catalog's binary artifacts point
# at placeholder files (STAND-INS: only `mirror create` copies them; nothing runs them).
BINARY_STANDINS = {
    "/kubeone/kubeone.zip": b"PK stand-in kubeone archive\n",
    "/helm/helm.tar.gz": b"stand-in helm archive\n",
}


def upstream_files() -> dict[str, bytes]:
    """Every upstream artifact of the catalog, as the local HTTPS upstream serves them."""
    return {**site_files(), **BINARY_STANDINS}


def catalog_file(base_url: str, files: dict[str, bytes], out: Path) -> Path:
    """The shipped catalog with every component artifact pointed at the local upstream and pinned to
    the real file's sha256 (how a site pins its own mirror: KVINSTALL_CATALOG)."""
    data = pinned_catalog_data(base_url)

    def pin(artifact: dict[str, Any], path: str) -> None:
        artifact["source"] = base_url + path
        artifact["sha256"] = hashlib.sha256(files[path]).hexdigest()

    pin(data["kubeone"]["versions"]["v1.13.7"]["artifacts"][0], "/kubeone/kubeone.zip")
    pin(data["helm"]["versions"]["v3.19.5"]["artifacts"][0], "/helm/helm.tar.gz")
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# --- the fake controller loop -----------------------------------------------------------------------


@dataclass
class ClusterSim:
    """FAKE CONTROLLER LOOP (see module doc). Bounded: stops after `max_seconds` or on close()."""

    api: Any  # tests/substrate KubeApi
    interval: float = 0.2
    # A safety bound only: the module's fixture closes the loop when the module ends. It must outlast
    # the slowest module on a loaded machine (a loop that had stopped left later tests waiting on
    # readiness no controller would ever report).
    max_seconds: float = 3 * 3600.0
    errors: list[str] = field(default_factory=list)
    paused: threading.Event = field(default_factory=threading.Event)
    ticks: int = 0  # complete passes without an error
    _stop: threading.Event = field(default_factory=threading.Event)
    _ticked: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    controllers: PlatformControllers | None = None

    def start(self) -> ClusterSim:
        self.controllers = PlatformControllers(self, WebhookServer())
        self.api.cluster_net.route = self.controllers.route
        self._thread = threading.Thread(target=self._loop, name="cluster-sim", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.controllers is not None:
            self.api.cluster_net.route = None
            self.controllers.webhooks.close()

    def _loop(self) -> None:
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            if not self.paused.is_set():
                try:
                    self.tick()
                except Exception as exc:  # the apiserver may be restarting: note it and go on
                    if len(self.errors) < 50:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    with self._ticked:
                        self.ticks += 1
                        self._ticked.notify_all()
            self._stop.wait(self.interval)

    def wait_working(self, timeout: float = 120.0) -> None:
        """Block until the loop completes a whole pass that starts after this call (so it is alive and
        reaches the apiserver); fail with its last errors otherwise. Tests call it after an outage."""
        with self._ticked:
            want = self.ticks + 2  # the pass in flight may have started before the call
            ok = self._ticked.wait_for(lambda: self.ticks >= want, timeout)
        alive = self._thread is not None and self._thread.is_alive()
        assert ok and alive, f"controller loop not working (alive={alive}); last errors: {self.errors[-3:]}"

    def _get(self, path: str) -> Any:
        r = self.api.request("GET", path, timeout=5)
        return r.json() if r.status_code == 200 else None

    def _status(self, path: str, status: dict[str, Any]) -> None:
        self.api.request("PATCH", f"{path}/status", json={"status": status}, headers=MERGE, timeout=5)

    def tick(self) -> None:
        self._workloads()
        self._kubevirt()
        self._cdi()
        self._kube_ovn()
        self._policies()
        if self.controllers is not None:
            self.controllers.tick()

    def _policies(self) -> None:
        """Kyverno compiles each ValidatingPolicy and reports it ready."""
        path = "/apis/policies.kyverno.io/v1/validatingpolicies"
        for obj in (self._get(path) or {}).get("items", []):
            if ((obj.get("status") or {}).get("conditionStatus") or {}).get("ready") is not True:
                self._status(f"{path}/{obj['metadata']['name']}", {"conditionStatus": {"ready": True}})

    def _workloads(self) -> None:
        for plural in ("deployments", "daemonsets", "statefulsets"):
            items = (self._get(f"/apis/apps/v1/{plural}") or {}).get("items", [])
            for obj in items:
                meta, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
                gen = meta.get("generation", 1)
                path = f"/apis/apps/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
                if plural == "daemonsets":
                    want = {"observedGeneration": gen, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                            "updatedNumberScheduled": 1, "numberReady": 1, "numberAvailable": 1,
                            "numberMisscheduled": 0}  # fmt: skip
                else:
                    n = spec.get("replicas", 1)
                    want = {"observedGeneration": gen, "replicas": n, "readyReplicas": n, "updatedReplicas": n,
                            "availableReplicas": n}  # fmt: skip
                    if plural == "statefulsets":
                        want["currentReplicas"] = n
                if n_differs(st, want):
                    if plural == "deployments":
                        want["conditions"] = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                               "message": "ready"}]  # fmt: skip
                    self._status(path, want)

    def _create(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        plural = obj["kind"].lower() + "s"
        self.api.request("POST", f"/apis/apps/v1/namespaces/{meta['namespace']}/{plural}", json=obj, timeout=5)

    def _delete(self, path: str) -> None:
        self.api.request("DELETE", path, timeout=5)

    def _operands(self, owner: str, namespace: str, want: list[dict[str, Any]]) -> bool:
        """Create the operands that are missing, delete those no longer wanted; True when all exist."""
        names = {(o["kind"], o["metadata"]["name"]): _images(o) for o in want}
        have: set[tuple[str, str]] = set()
        for kind, plural in (("Deployment", "deployments"), ("DaemonSet", "daemonsets")):
            path = f"/apis/apps/v1/namespaces/{namespace}/{plural}"
            for obj in (self._get(f"{path}?labelSelector={OPERAND_LABEL}%3D{owner}") or {}).get("items", []):
                key = (kind, obj["metadata"]["name"])
                if names.get(key) == _images(obj):
                    have.add(key)
                else:  # gone from the wanted set, or at another version: replaced
                    self._delete(f"{path}/{obj['metadata']['name']}")
        for obj in want:
            if (obj["kind"], obj["metadata"]["name"]) not in have:
                self._create(obj)
        return have == set(names)

    def _finalize(self, path: str, obj: dict[str, Any], finalizer: str, owner: str, namespace: str) -> bool:
        """The operator's finalizer: added to a live CR; on deletion, operands go, then the finalizer.
        True when the CR is being deleted (nothing else to do)."""
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            self._operands(owner, namespace, [])
            if finalizer in finalizers:
                rest = [f for f in finalizers if f != finalizer]
                self.api.request("PATCH", path, json={"metadata": {"finalizers": rest or None}}, headers=MERGE,
                                 timeout=5)  # fmt: skip
            return True
        if finalizer not in finalizers:
            self.api.request("PATCH", path, json={"metadata": {"finalizers": [*finalizers, finalizer]}},
                             headers=MERGE, timeout=5)  # fmt: skip
        return False

    def _ready(self, namespace: str, operands: list[dict[str, Any]]) -> bool:
        for obj in operands:
            plural = obj["kind"].lower() + "s"
            live = self._get(f"/apis/apps/v1/namespaces/{namespace}/{plural}/{obj['metadata']['name']}") or {}
            if not (live.get("status") or {}).get("observedGeneration"):
                return False
        return True

    def _kubevirt(self) -> None:
        """virt-operator: its operands for the gates of the CR, then phase Deployed (status subresource)."""
        path = "/apis/kubevirt.io/v1/kubevirts"
        for obj in (self._get(path) or {}).get("items", []):
            meta = obj["metadata"]
            ns = meta["namespace"]
            obj_path = f"/apis/kubevirt.io/v1/namespaces/{ns}/kubevirts/{meta['name']}"
            if self._finalize(obj_path, obj, "foregroundDeleteKubeVirt", "kubevirt", ns):
                continue
            operator = self._get(f"/apis/apps/v1/namespaces/{ns}/deployments/virt-operator")
            if operator is None:
                continue
            version = kubevirt_version(operator)
            st = obj.get("status") or {}
            self._rolling_out(obj_path, st, "targetKubeVirtVersion", version)
            dev = ((obj.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {}
            operands = virt_operator_operands(operator, dev.get("featureGates") or [])
            if not self._operands("kubevirt", ns, operands) or not self._ready(ns, operands):
                continue
            self._vmi_crd()
            want = {"phase": "Deployed", "observedGeneration": meta.get("generation"),
                    "observedKubeVirtVersion": version, "targetKubeVirtVersion": version}  # fmt: skip
            if n_differs(st, want) or not _conditions_ok(st):
                self._status(obj_path, {**want, "conditions": CONDITIONS_OK})

    def _cdi(self) -> None:
        """cdi-operator: its operands, then phase Deployed. The CDI CRD has no status subresource:
        cdi-operator writes status through the object itself, and so does this."""
        path = "/apis/cdi.kubevirt.io/v1beta1/cdis"
        for obj in (self._get(path) or {}).get("items", []):
            obj_path = f"{path}/{obj['metadata']['name']}"
            operator = self._get("/apis/apps/v1/namespaces/cdi/deployments/cdi-operator")
            if self._finalize(obj_path, obj, "operator.cdi.kubevirt.io", "cdi", "cdi") or operator is None:
                continue
            version = next(e["value"] for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
                           if e["name"] == "OPERATOR_VERSION")  # fmt: skip
            st = obj.get("status") or {}
            self._rolling_out(obj_path, st, "targetVersion", version, subresource=False)
            operands = cdi_operator_operands(operator)
            if not self._operands("cdi", "cdi", operands) or not self._ready("cdi", operands):
                continue
            want = {"phase": "Deployed", "observedVersion": version, "operatorVersion": version,
                    "targetVersion": version}  # fmt: skip
            if n_differs(st, want) or not _conditions_ok(st):
                self.api.request("PATCH", obj_path, json={"status": {**want, "conditions": CONDITIONS_OK}},
                                 headers=MERGE, timeout=5)  # fmt: skip

    def _rolling_out(self, path: str, st: dict[str, Any], target: str, version: str, *,
                     subresource: bool = True) -> None:  # fmt: skip
        """An operator that runs a new version names it as its target at once and reports Progressing,
        while the observed version stays the old one until its operands run the new one."""
        if not st.get(target) or st.get(target) == version:
            return
        progressing = [c if c["type"] != "Progressing" else {**c, "status": "True", "reason": "Upgrading"}
                       for c in CONDITIONS_OK]  # fmt: skip
        body = {"status": {target: version, "conditions": progressing}}
        self.api.request("PATCH", f"{path}/status" if subresource else path, json=body, headers=MERGE, timeout=5)
        st.update(body["status"])

    def _vmi_crd(self) -> None:
        """virt-operator installs the VirtualMachineInstance CRD (not in its manifest) when it deploys."""
        if self._get(f"{CRD_PATH}/virtualmachineinstances.kubevirt.io") is None:
            self.api.request("POST", CRD_PATH, json=crd("kubevirt.io", "VirtualMachineInstance",
                                                          "virtualmachineinstances"), timeout=5)  # fmt: skip

    def _kube_ovn(self) -> None:
        if self._get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/subnets.kubeovn.io") is None:
            return
        ovn = "/apis/kubeovn.io/v1"
        if self._get(f"{ovn}/vpcs/ovn-cluster") is None:
            self.api.request("POST", f"{ovn}/vpcs", json={"apiVersion": "kubeovn.io/v1", "kind": "Vpc",
                                                          "metadata": {"name": "ovn-cluster"}, "spec": {}},
                             timeout=5)  # fmt: skip
        for name, cidr in (("ovn-default", "10.16.0.0/16"), ("join", "100.64.0.0/16")):
            sub = self._get(f"{ovn}/subnets/{name}")
            if sub is None:
                self.api.request("POST", f"{ovn}/subnets", json={
                    "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
                    "spec": {"cidrBlock": cidr, "vpc": "ovn-cluster", "protocol": "IPv4"}}, timeout=5)  # fmt: skip
                continue
            conds = (sub.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                self._status(f"{ovn}/subnets/{name}", {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "ResourceReady", "message": "ready"}]})  # fmt: skip


def _images(obj: dict[str, Any]) -> list[str]:
    pod = obj["spec"]["template"]["spec"]
    return [c["image"] for c in [*(pod.get("initContainers") or []), *pod["containers"]]]


def n_differs(status: dict[str, Any], want: dict[str, Any]) -> bool:
    return any(status.get(k) != v for k, v in want.items())


def _conditions_ok(status: dict[str, Any]) -> bool:
    have = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return all(have.get(c["type"]) == c["status"] for c in CONDITIONS_OK)


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def env_for(catalog: Path, cache: Path, ca: Path, kubeconfig: Path, kubeone_log: Path) -> dict[str, str]:
    return {
        "KVINSTALL_CATALOG": str(catalog),
        "KVINSTALL_CACHE_DIR": str(cache),
        "REQUESTS_CA_BUNDLE": str(ca),  # the local upstream's CA, as a site with its own CA sets it
        "KVTEST_KUBECONFIG": str(kubeconfig),
        "KVTEST_KUBEONE_LOG": str(kubeone_log),
        "PATH": os.environ.get("PATH", ""),
    }
