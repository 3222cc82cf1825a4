"""Preflight checks are pure functions over facts + config: exercised here with built facts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kvinstall.config.models import Config
from kvinstall.hosts.checks import CHECKS, CHECKS_BY_ID, ClusterContext, HostContext, evaluate, required_ports
from kvinstall.hosts.facts import HostFacts, PCIDevice

GiB = 1024**3

GOOD = HostFacts(
    hostname="node",
    os_id="ubuntu",
    os_version="24.04",
    os_pretty="Ubuntu 24.04 LTS",
    kernel="6.8.0-45-generic",
    cpus=8,
    mem_bytes=32 * GiB,
    cpu_virt="vmx",
    devices=frozenset({"/dev/kvm", "/dev/vhost-net", "/dev/net/tun"}),
    modules={
        "openvswitch": "loadable",
        "geneve": "loadable",
        "vxlan": "loadable",
        "ip_tables": "loaded",
        "iptable_nat": "loaded",
        "vfio_pci": "loadable",
    },
    time_synced=True,
    var_free_bytes=200 * GiB,
    iommu_groups=12,
    gpus=(PCIDevice("0000:3b:00.0", "0x030200", "10de", "1eb8"),),
)


def config(hosts: list[dict[str, Any]], **extra: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "t"},
            "hosts": hosts,
            **extra,
        }
    )


def run(cfg: Config, facts: list[HostFacts], skip: set[str] | None = None) -> dict[tuple[str, str], Any]:
    ctxs = [
        HostContext(h.address, h, h.user or cfg.ssh.user, replace(f, hostname=f.hostname or h.address))
        for h, f in zip(cfg.hosts, facts, strict=True)
    ]
    return {(r.host, r.check): r for r in evaluate(ClusterContext(cfg, ctxs), skip=skip or set())}


def two_hosts() -> Config:
    return config(
        [
            {"address": "10.0.0.1", "role": "controlPlane"},
            {"address": "10.0.0.2", "role": "worker"},
        ]
    )


def test_good_hosts_pass_every_check() -> None:
    res = run(two_hosts(), [replace(GOOD, hostname="a"), replace(GOOD, hostname="b")])
    bad = {k: r.message for k, r in res.items() if r.status != "pass" and k[1] != "network.reachability"}
    assert bad == {}
    # reachability was not tested (no data) -> warn, never a silent pass
    assert res[("10.0.0.1", "network.reachability")].status == "warn"


def test_unsupported_os_and_no_kvm_fail_with_remedies() -> None:
    other = replace(
        GOOD,
        hostname="b",
        os_id="alpine",
        os_version="3.20",
        os_pretty="Alpine Linux v3.20",
        cpu_virt=None,
        devices=frozenset({"/dev/net/tun"}),
    )
    res = run(two_hosts(), [replace(GOOD, hostname="a"), other])
    assert res[("10.0.0.2", "os.supported")].status == "fail"
    assert "Alpine" in res[("10.0.0.2", "os.supported")].message
    assert res[("10.0.0.2", "dev.kvm")].status == "fail"
    assert "useEmulation" in res[("10.0.0.2", "dev.kvm")].remedy
    assert res[("10.0.0.2", "cpu.virtualization")].status == "fail"
    assert "components.kubevirt.useEmulation" in res[("10.0.0.2", "cpu.virtualization")].remedy
    assert res[("10.0.0.2", "dev.vhost-net")].status == "warn"
    assert res[("10.0.0.1", "os.supported")].status == "pass"


def test_use_emulation_turns_off_the_kvm_checks() -> None:
    cfg = config(
        [{"address": "10.0.0.1", "role": "controlPlane"}], components={"kubevirt": {"useEmulation": True}}
    )
    res = run(cfg, [replace(GOOD, cpu_virt=None, devices=frozenset())])
    assert ("10.0.0.1", "dev.kvm") not in res
    assert ("10.0.0.1", "cpu.virtualization") not in res


def test_os_versions() -> None:
    cfg = config([{"address": "10.0.0.1", "role": "controlPlane"}])
    for os_id, ver, ok in [
        ("ubuntu", "22.04", True),
        ("ubuntu", "22.10", False),
        ("debian", "13", True),
        ("debian", "11", False),
        ("rocky", "9.4", True),
        ("rhel", "8.9", False),
        ("flatcar", "4081.2.0", True),
        ("centos", "7", False),
    ]:
        status = run(cfg, [replace(GOOD, os_id=os_id, os_version=ver)])[("10.0.0.1", "os.supported")].status
        assert status == ("pass" if ok else "fail"), (os_id, ver)


def test_kernel_minimum() -> None:
    cfg = config([{"address": "10.0.0.1", "role": "controlPlane"}])
    assert run(cfg, [replace(GOOD, kernel="4.18.0-553.el8")])[("10.0.0.1", "kernel.version")].status == "fail"
    assert run(cfg, [replace(GOOD, kernel="4.19.0")])[("10.0.0.1", "kernel.version")].status == "pass"


def test_sizes_control_plane_error_worker_warning() -> None:
    small = replace(GOOD, cpus=1, mem_bytes=2 * GiB, var_free_bytes=10 * GiB)
    res = run(two_hosts(), [replace(small, hostname="a"), replace(small, hostname="b")])
    assert res[("10.0.0.1", "cpu.controlplane")].status == "fail"
    assert res[("10.0.0.1", "memory.controlplane")].status == "fail"
    assert res[("10.0.0.2", "cpu.worker")].status == "warn"
    assert res[("10.0.0.2", "memory.worker")].status == "warn"
    assert res[("10.0.0.2", "disk.var")].status == "warn"
    assert ("10.0.0.1", "cpu.worker") not in res


def test_swap_hostnames_ports() -> None:
    a = replace(
        GOOD,
        hostname="same",
        swap_devices=("/swapfile",),
        listening=frozenset({("tcp", 6443), ("udp", 6081)}),
    )
    b = replace(GOOD, hostname="same")
    res = run(two_hosts(), [a, b])
    assert res[("10.0.0.1", "swap.off")].status == "fail"
    assert res[("10.0.0.1", "hostname.unique")].status == "fail"
    assert "10.0.0.2" in res[("10.0.0.1", "hostname.unique")].message
    assert res[("10.0.0.1", "ports.free")].status == "fail"
    assert "6443/tcp" in res[("10.0.0.1", "ports.free")].message
    assert "6081/udp" in res[("10.0.0.1", "ports.free")].message
    assert res[("10.0.0.2", "swap.off")].status == "pass"


def test_ports_of_an_installed_node_are_its_own() -> None:
    # A re-run: the node KubeOne joined holds the cluster ports itself; that is no conflict.
    busy = frozenset({("tcp", 6443), ("tcp", 10250), ("tcp", 2379)})
    member = replace(GOOD, listening=busy, cluster_member=True)
    stranger = replace(GOOD, listening=busy)
    res = run(two_hosts(), [member, stranger])
    assert res[("10.0.0.1", "ports.free")].status == "pass"
    assert res[("10.0.0.2", "ports.free")].status == "fail"


def test_required_ports_per_role_and_tunnel() -> None:
    cfg = config(
        [{"address": "10.0.0.1", "role": "controlPlane"}, {"address": "10.0.0.2", "role": "worker"}],
        network={"tunnelType": "vxlan"},
    )
    cp = required_ports(cfg.hosts[0], cfg)
    assert {("tcp", 6443), ("tcp", 2379), ("tcp", 2380), ("tcp", 6641), ("tcp", 6644), ("udp", 4789)} <= set(
        cp
    )
    assert required_ports(cfg.hosts[1], cfg) == [("tcp", 10250), ("udp", 4789)]


def test_modules_missing_and_unknown() -> None:
    cfg = config([{"address": "10.0.0.1", "role": "controlPlane"}])
    res = run(cfg, [replace(GOOD, modules={"openvswitch": "missing", "geneve": "unknown"})])
    assert res[("10.0.0.1", "modules.openvswitch")].status == "fail"
    assert res[("10.0.0.1", "modules.tunnel")].status == "warn"  # could not tell: warn, not pass


def test_pci_passthrough_hosts_need_iommu_and_vfio() -> None:
    cfg = config(
        [
            {"address": "10.0.0.1", "role": "controlPlane"},
            {"address": "10.0.0.2", "role": "worker", "pciPassthrough": True},
        ],
        components={
            "kubevirt": {
                "permittedHostDevices": {
                    "pciHostDevices": [{"pciVendorSelector": "10DE:2236", "resourceName": "nvidia.com/A10"}]
                }
            }
        },
    )
    no_iommu = replace(
        GOOD,
        hostname="b",
        iommu_groups=0,
        kernel_cmdline="ro quiet",
        modules={**GOOD.modules, "vfio_pci": "missing"},
    )
    res = run(cfg, [replace(GOOD, hostname="a", iommu_groups=0), no_iommu])
    assert ("10.0.0.1", "iommu.enabled") not in res  # not a passthrough host
    assert res[("10.0.0.2", "iommu.enabled")].status == "fail"
    assert "intel_iommu=on" in res[("10.0.0.2", "iommu.enabled")].remedy
    assert res[("10.0.0.2", "vfio.available")].status == "fail"
    assert res[("10.0.0.2", "gpu.present")].status == "warn"  # 10DE:1EB8 present, 10DE:2236 wanted
    assert "10DE:1EB8" in res[("10.0.0.2", "gpu.present")].message


def test_non_root_sudo_check() -> None:
    cfg = config([{"address": "10.0.0.1", "role": "controlPlane", "user": "ops"}])
    assert run(cfg, [replace(GOOD, sudo_ok=False)])[("10.0.0.1", "sudo.passwordless")].status == "fail"
    root = config([{"address": "10.0.0.1", "role": "controlPlane"}])
    assert ("10.0.0.1", "sudo.passwordless") not in run(root, [GOOD])


def test_reachability() -> None:
    res = run(
        two_hosts(),
        [
            replace(GOOD, hostname="a", reach={"10.0.0.2:22": False}),
            replace(GOOD, hostname="b", reach={"10.0.0.1:22": True}),
        ],
    )
    assert res[("10.0.0.1", "network.reachability")].status == "fail"
    assert "10.0.0.2:22" in res[("10.0.0.1", "network.reachability")].message
    assert res[("10.0.0.2", "network.reachability")].status == "pass"


def test_skip_is_visible() -> None:
    res = run(
        two_hosts(),
        [replace(GOOD, hostname="a", swap_devices=("/dev/sda2",)), replace(GOOD, hostname="b")],
        skip={"swap.off"},
    )
    assert res[("10.0.0.1", "swap.off")].status == "skipped"


def test_check_table_is_well_formed() -> None:
    assert len(CHECKS_BY_ID) == len(CHECKS)
    for c in CHECKS:
        assert c.id and c.what and c.remedy
        assert c.severity in ("error", "warning")


def test_longhorn_and_metallb_checks_with_remedies() -> None:
    """Longhorn's checks run on the hosts that hold replicas (the workers here), MetalLB's layer 2 check
    on every host: a pool on no host's network is an error, on another host's only a warning."""
    import ipaddress

    cfg = config(
        [
            {"address": "10.0.0.1", "role": "controlPlane"},
            {"address": "10.0.0.2", "role": "worker"},
            {"address": "10.0.1.3", "role": "worker"},
        ],
        components={
            "longhorn": {"enabled": True},
            "metallb": {"enabled": True, "pools": [{"name": "a", "addresses": ["10.0.0.200-10.0.0.220"]},
                                                   {"name": "b", "addresses": ["10.9.0.0/28"]}]},
        },
    )  # fmt: skip

    def on(address: str, **kw: Any) -> HostFacts:
        return replace(GOOD, hostname=address, interfaces=(("eth0", ipaddress.ip_interface(address + "/24")),), **kw)

    ready = {"storage_tools": frozenset({"iscsiadm", "initiatorname", "nfs"}), "data_path_free_bytes": 100 * GiB,
             "data_path_dir": "/var/lib"}  # fmt: skip
    bare = {"storage_tools": frozenset({"multipathd"}), "data_path_free_bytes": 10 * GiB, "data_path_dir": "/"}
    res = run(cfg, [on("10.0.0.1"), on("10.0.0.2", **ready), on("10.0.1.3", **bare)])
    longhorn = ("longhorn.iscsi", "longhorn.nfs", "longhorn.data-path", "longhorn.multipath")
    assert not any(("10.0.0.1", c) in res for c in longhorn)  # the control plane holds no replica
    assert {c: res[("10.0.0.2", c)].status for c in longhorn} == dict.fromkeys(longhorn, "pass")
    got = {c: res[("10.0.1.3", c)] for c in longhorn}
    assert {c: r.status for c, r in got.items()} == {
        "longhorn.iscsi": "fail", "longhorn.nfs": "warn", "longhorn.data-path": "warn", "longhorn.multipath": "fail",
    }  # fmt: skip
    assert "open-iscsi" in got["longhorn.iscsi"].remedy and "iscsiadm not found" in got["longhorn.iscsi"].message
    assert "nfs-common" in got["longhorn.nfs"].remedy
    assert "10.0 GiB free for /var/lib/longhorn/ (on the filesystem of /)" in got["longhorn.data-path"].message
    assert "blacklist" in got["longhorn.multipath"].remedy
    # With multipath.conf blacklisting sd devices, a running multipathd is fine.
    fixed = replace(on("10.0.1.3", **bare), storage_tools=frozenset({"multipathd", "blacklist-sd"}))
    assert run(cfg, [on("10.0.0.1"), on("10.0.0.2", **ready), fixed])[("10.0.1.3", "longhorn.multipath")].status == "pass"

    l2 = {h: res[(h, "metallb.l2-network")] for h in ("10.0.0.1", "10.0.0.2", "10.0.1.3")}
    assert all(r.status == "fail" and "10.9.0.0/28 (b)" in r.message for r in l2.values())
    assert "bgpPeers" in l2["10.0.0.1"].remedy
    only_a = cfg.model_copy(deep=True)
    only_a.components.metallb.pools.pop()
    res = run(only_a, [on("10.0.0.1"), on("10.0.0.2", **ready), on("10.0.1.3", **ready)])
    assert res[("10.0.0.1", "metallb.l2-network")].status == "pass"
    assert "10.0.0.200-10.0.0.220 (a) on eth0 (10.0.0.0/24)" in res[("10.0.0.1", "metallb.l2-network")].message
    assert res[("10.0.1.3", "metallb.l2-network")].status == "warn"  # only the other hosts are on that network
