"""MetalLB, Longhorn, cert-manager and Multus end to end, on their real charts and manifests: a config with
all four installs from nothing (with the rest of the platform), a second run sends no write, one run
repairs a drift in each, Longhorn is not removed while it holds volumes, and switched off each is
pruned cleanly (Longhorn through its own uninstaller), after which a run again sends no write.

World: sshd host lab + real kube-apiserver + real helm + the real upstream artifacts (platform_world.py);
KubeOne is a stand-in, and a fake controller loop plays the controllers on the real CRDs, including
cert-manager, MetalLB's controller and speakers, longhorn-manager and its driver deployer
(platform_controllers.py), and answers the webhooks the charts register through the apiserver's
cluster network (substrate/webhooks.py). The tests of this module share one converged platform and
run in order: each leaves it converged for the next, the last switches the four off.
"""

from __future__ import annotations

import base64
import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import LAB_SKIPS, World, apply_in_process, delete_gone, kvinstall_writes, lab_config
from kvinstall.kube.inventory import PART_OF_LABEL, ApplySetRef

pytestmark = pytest.mark.e2e

SKIPS = LAB_SKIPS | {"longhorn.iscsi"}  # the lab hosts (this machine) have no iSCSI initiator
OTHER = {"fieldManager": "another-manager"}
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
COMPONENTS = ("multus", "certmanager", "metallb", "longhorn")
POOL = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/lab"
ISSUER = "/apis/cert-manager.io/v1/clusterissuers/kvinstall"
RWX_CLASS = "/apis/storage.k8s.io/v1/storageclasses/longhorn-rwx"
MULTUS = "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-multus-ds"
NAD = "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions/lab-lan"


@dataclass
class Platform:
    world: World
    lab: Any
    state: Path
    config: dict[str, Any]
    first: Any  # the installing run's Result

    def apply(self, **opts: Any) -> Any:
        return apply_in_process(self.world, self.lab, self.config, self.state, skip_checks=SKIPS,
                                ready_timeout=120, **opts)  # fmt: skip

    def get(self, path: str) -> dict[str, Any] | None:
        resp = self.world.api.request("GET", path)
        assert resp.status_code in (200, 404), resp.text[:300]
        return resp.json() if resp.status_code == 200 else None


def ran_as_planned(result: Any) -> None:
    """The plan apply showed before it asked (the dry run of its own phases) is what it then did:
    per phase, the same objects created, updated and deleted."""
    planned = {p["name"]: Counter((a["action"], a["object"]) for a in p["actions"]
                                  if a["action"] in ("create", "update", "delete"))
               for p in result.outcome.plan.to_dict()["phases"]}  # fmt: skip
    done: dict[str, Counter[tuple[str, str]]] = {}
    for e in result.events.of("object"):
        done.setdefault(e["phase"], Counter())[(e["action"], e["object"])] += 1
    assert {name: objs for name, objs in planned.items() if objs} == done


def lab_network(lab: Any) -> ipaddress.IPv4Network:
    first = next(iter(lab.hosts.values())).ip
    return ipaddress.ip_network(f"{first}/24", strict=False)


@pytest.fixture(scope="module")
def platform(world: World, module_host_lab: Callable[[int], Any],
             tmp_path_factory: pytest.TempPathFactory) -> Platform:  # fmt: skip
    world_env = pytest.MonkeyPatch()
    for key, value in world.env.items():
        world_env.setenv(key, value)
    lab = module_host_lab(3)
    net = lab_network(lab)
    config = lab_config(world, lab)
    config.pop("storage")  # Longhorn brings the ReadWriteMany class live migration needs
    config["network"] = {"kubeProxyMode": "ipvs"}
    config["components"].update({
        "certManager": {"enabled": True},
        "multus": {"enabled": True},
        "metallb": {"enabled": True, "pools": [{"name": "lab", "addresses": [f"{net[200]}-{net[220]}"]}]},
        "longhorn": {"enabled": True},
    })  # fmt: skip
    config["workspaces"][0]["secondaryNetworks"] = [
        {"name": "lab-lan", "type": "bridge", "bridge": "br-vms", "vlan": 42},
        {"name": "overlay", "type": "kube-ovn", "cidr": "172.31.0.0/24"},
    ]
    state = tmp_path_factory.mktemp("platform") / "state"
    p = Platform(world, lab, state, config, None)
    p.first = p.apply()
    yield p
    world_env.undo()


def test_installs_from_nothing(platform: Platform) -> None:
    first, get = platform.first, platform.get
    assert first.code == 0, first.error
    phases = [name for name, status in first.events.phases().items() if name.startswith("component/")]
    # In install order: Multus after Kube-OVN, cert-manager before Dex, MetalLB and Longhorn before
    # KubeVirt, Kyverno last among the controllers.
    assert phases == ["component/kubeovn", "component/multus", "component/certmanager", "component/metallb",
                      "component/longhorn", "component/kubevirt", "component/cdi", "component/dex",
                      "component/kyverno", "component/policies"], phases  # fmt: skip
    assert all(first.events.phases()[p] == "ok" for p in phases)
    ran_as_planned(first)

    # Preflight checked what Longhorn and MetalLB need on every host (iSCSI skipped: see SKIPS).
    results = [r for e in first.events.of("host") for r in e.get("results") or []]
    by_check = {(r["host"], r["check"]): r["status"] for r in results}
    hosts = {r["host"] for r in results}
    for host in hosts:
        assert by_check[(host, "metallb.l2-network")] == "pass"
    # Longhorn's checks run on the workers (the control plane keeps its taint and holds no replicas).
    workers = {h for h in hosts if (h, "longhorn.nfs") in by_check}
    assert len(workers) == 2
    for host in workers:
        assert by_check[(host, "longhorn.iscsi")] == "skipped"
        assert by_check[(host, "longhorn.multipath")] == "pass"

    # KubeOne was given kube-proxy in IPVS mode with strict ARP (MetalLB is on).
    manifest = yaml.safe_load((platform.state / "kubeone.yaml").read_text())
    assert manifest["clusterNetwork"]["kubeProxy"] == {"ipvs": {"strictARP": True}}

    # MetalLB: the pool and its layer 2 announcement, accepted by MetalLB's webhook (really called,
    # over TLS checked against the caBundle its controller injected), reported Valid.
    pool = get(POOL)
    assert pool is not None and pool["spec"]["addresses"] == platform.config["components"]["metallb"]["pools"][0]["addresses"]
    assert pool["status"]["availableIPv4"] == 21
    l2 = get("/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements/kvinstall-l2")
    assert l2 is not None and l2["spec"]["ipAddressPools"] == ["lab"]
    state = get("/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller")
    assert state is not None and state["status"]["result"] == "Valid"
    reviews = platform.world.sim.controllers.webhooks.reviews
    assert any(r["name"] == "metallb-webhook-service.metallb-system.svc" and "ipaddresspool" in r["path"]
               for r in reviews), reviews[:5]  # fmt: skip
    hook = get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration")
    assert hook is not None and all(w["clientConfig"].get("caBundle") for w in hook["webhooks"])

    # cert-manager: the self-signed CA issuer is ready, and Dex serves HTTPS with its certificate.
    issuer = get(ISSUER)
    assert issuer is not None and issuer["spec"] == {"ca": {"secretName": "kvinstall-ca"}}
    assert [c["status"] for c in issuer["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert any(r["name"] == "cert-manager-webhook.cert-manager.svc" for r in reviews)
    cert = get("/apis/cert-manager.io/v1/namespaces/dex/certificates/dex-tls")
    assert cert is not None and cert["spec"]["dnsNames"] == ["dex.e2e.example"]
    tls = get("/api/v1/namespaces/dex/secrets/dex-tls")
    assert tls is not None and b"BEGIN CERTIFICATE" in base64.b64decode(tls["data"]["tls.crt"])
    dex = get("/apis/apps/v1/namespaces/dex/deployments/dex")
    assert dex is not None
    assert [p["containerPort"] for p in dex["spec"]["template"]["spec"]["containers"][0]["ports"]] == [5554, 5558]

    # Longhorn: its classes (the default made by longhorn-manager from the chart's settings, and the
    # ReadWriteMany one), the CSI driver, replicas from the number of workers.
    default_class = get("/apis/storage.k8s.io/v1/storageclasses/longhorn")
    assert default_class is not None
    assert default_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert default_class["parameters"]["numberOfReplicas"] == "2"
    rwx = get(RWX_CLASS)
    assert rwx is not None and rwx["parameters"]["migratable"] == "true"
    assert get("/apis/storage.k8s.io/v1/csidrivers/driver.longhorn.io") is not None
    replicas = get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/settings/default-replica-count")
    assert replicas is not None and replicas["value"] == "2"

    # Multus: the release's own thick image, and the workspace's attachments.
    ds = get(MULTUS)
    assert ds is not None
    assert {c["image"] for c in ds["spec"]["template"]["spec"]["containers"]} == {
        "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.3-thick"}
    nad = get(NAD)
    assert nad is not None and '"vlan":42' in nad["spec"]["config"]
    subnet = get("/apis/kubeovn.io/v1/subnets/ws-team-a-overlay")
    assert subnet is not None and subnet["spec"]["provider"] == "overlay.team-a.ovn"


def test_a_second_run_sends_no_write(platform: Platform) -> None:
    mark = platform.world.api.audit_mark()
    again = platform.apply()
    assert again.code == 0, again.error
    assert again.events.objects() == []
    writes = kvinstall_writes(platform.world, mark)
    assert writes == [], "\n".join(writes)


def test_one_run_repairs_a_drift_in_each(platform: Platform) -> None:
    api, world = platform.world.api, platform.world
    tampered = "registry.other.example/multus:tampered"
    assert api.request("PATCH", POOL, params=OTHER, headers=MERGE,
                       json={"spec": {"addresses": ["192.0.2.10-192.0.2.20"]}}).status_code == 200  # fmt: skip
    delete_gone(world, ISSUER)
    delete_gone(world, RWX_CLASS)
    assert api.request("PATCH", MULTUS, params=OTHER, headers=STRATEGIC, json={"spec": {"template": {"spec": {
        "containers": [{"name": "kube-multus", "image": tampered}]}}}}).status_code == 200  # fmt: skip
    delete_gone(world, NAD)

    repair = platform.apply()
    assert repair.code == 0, repair.error
    ran_as_planned(repair)
    assert set(repair.events.objects()) == {
        ("update", "IPAddressPool.metallb.io/metallb-system/lab"),
        ("create", "ClusterIssuer.cert-manager.io/kvinstall"),
        ("create", "StorageClass.storage.k8s.io/longhorn-rwx"),
        ("update", "DaemonSet.apps/kube-system/kube-multus-ds"),
        ("create", "NetworkAttachmentDefinition.k8s.cni.cncf.io/team-a/lab-lan"),
    }, repair.events.objects()
    phase_of = {e["object"]: e["phase"] for e in repair.events.of("object")}
    assert phase_of["IPAddressPool.metallb.io/metallb-system/lab"] == "component/metallb"
    assert phase_of["ClusterIssuer.cert-manager.io/kvinstall"] == "component/certmanager"
    assert phase_of["StorageClass.storage.k8s.io/longhorn-rwx"] == "component/longhorn"
    assert phase_of["DaemonSet.apps/kube-system/kube-multus-ds"] == "component/multus"
    pool = platform.get(POOL)
    assert pool is not None and pool["spec"]["addresses"] == platform.config["components"]["metallb"]["pools"][0]["addresses"]
    ds = platform.get(MULTUS)
    assert ds is not None and ds["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v4.2.3-thick")
    assert platform.get(RWX_CLASS) is not None and platform.get(NAD) is not None

    mark = api.audit_mark()
    quiet = platform.apply()
    assert quiet.code == 0, quiet.error
    assert quiet.events.objects() == []
    assert kvinstall_writes(world, mark) == []


def test_longhorn_is_not_removed_while_it_holds_volumes(platform: Platform) -> None:
    api = platform.world.api
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-vm-disk"},
          "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"], "volumeMode": "Block",
                   "storageClassName": "longhorn-rwx",
                   "csi": {"driver": "driver.longhorn.io", "volumeHandle": "pvc-vm-disk"}}}  # fmt: skip
    assert api.request("POST", "/api/v1/persistentvolumes", json=pv).status_code == 201
    off = {**platform.config, "components": {**platform.config["components"], "longhorn": {"enabled": False}}}
    refused = apply_in_process(platform.world, platform.lab, off, platform.state, skip_checks=SKIPS,
                               ready_timeout=120)  # fmt: skip
    assert refused.code != 0 and refused.error is not None
    assert "1 Longhorn volume(s) still exist: pvc-vm-disk" in refused.error.message
    assert platform.get("/apis/apps/v1/namespaces/longhorn-system/daemonsets/longhorn-manager") is not None
    assert platform.get("/apis/batch/v1/namespaces/longhorn-system/jobs/longhorn-uninstall") is None
    # The apiserver gave the PV the finalizer kubernetes.io/pv-protection; kube-controller-manager (not run
    # here) drops it from a PV no pod uses: done as it would, so the deletion completes.
    patched = api.request("PATCH", "/api/v1/persistentvolumes/pvc-vm-disk", headers=MERGE,
                          json={"metadata": {"finalizers": None}})  # fmt: skip
    assert patched.status_code == 200, patched.text[:300]
    delete_gone(platform.world, "/api/v1/persistentvolumes/pvc-vm-disk")


def _members(platform: Platform, name: str) -> list[str]:
    """Every object still labelled as a member of component `name`'s ApplySet (any kind it applied)."""
    label = f"{PART_OF_LABEL}={ApplySetRef(name).id}"
    found = []
    for plural in ("configmaps", "secrets", "services", "serviceaccounts"):
        for item in (platform.get(f"/api/v1/{plural}?labelSelector={label}") or {}).get("items", []):
            found.append(f"{plural}/{item['metadata']['name']}")
    for group, plurals in (("apps/v1", ("deployments", "daemonsets")),
                           ("rbac.authorization.k8s.io/v1", ("clusterroles", "clusterrolebindings", "roles", "rolebindings")),
                           ("admissionregistration.k8s.io/v1", ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")),
                           ("storage.k8s.io/v1", ("storageclasses",)), ("scheduling.k8s.io/v1", ("priorityclasses",))):  # fmt: skip
        for plural in plurals:
            for item in (platform.get(f"/apis/{group}/{plural}?labelSelector={label}") or {}).get("items", []):
                found.append(f"{plural}/{item['metadata']['name']}")
    return found


def test_switched_off_each_is_pruned_cleanly(platform: Platform) -> None:
    cfg = platform.config
    for name in ("certManager", "multus", "metallb", "longhorn"):
        cfg["components"][name] = {"enabled": False}
    cfg["workspaces"][0].pop("secondaryNetworks")
    cfg["storage"] = {"rwxClass": "nfs"}
    for name in COMPONENTS:
        assert _members(platform, name), f"{name} has members before the prune"

    off = platform.apply()
    assert off.code == 0, off.error
    ran_as_planned(off)
    deleted = [e for e in off.events.of("object") if e["action"] == "delete"]
    by_phase = {e["phase"] for e in deleted}
    assert by_phase == {"prune", "component/dex", "workspaces"}, by_phase
    # Dex went back to plain HTTP: its certificate (from the issuer being removed) was pruned first.
    assert ("delete", "Certificate.cert-manager.io/dex/dex-tls") in off.events.objects()
    for name in COMPONENTS:
        assert _members(platform, name) == [], name
    # Longhorn's uninstaller ran (and its Job is gone): Longhorn's own objects and the CSI driver too.
    assert platform.get("/apis/batch/v1/namespaces/longhorn-system/jobs/longhorn-uninstall") is None
    assert (platform.get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/nodes") or {}).get("items") == []
    assert platform.get("/apis/storage.k8s.io/v1/csidrivers/driver.longhorn.io") is None
    assert platform.get("/apis/storage.k8s.io/v1/storageclasses/longhorn") is None
    # cert-manager's and MetalLB's webhooks are gone with them (left behind they would refuse requests).
    for hook in ("metallb-webhook-configuration", "cert-manager-webhook"):
        assert platform.get(f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{hook}") is None
    # CRDs and Namespaces stay without --prune-all.
    assert platform.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipaddresspools.metallb.io")
    assert platform.get("/api/v1/namespaces/longhorn-system") is not None

    mark = platform.world.api.audit_mark()
    again = platform.apply()
    assert again.code == 0, again.error
    assert again.events.objects() == []
    assert kvinstall_writes(platform.world, mark) == []
