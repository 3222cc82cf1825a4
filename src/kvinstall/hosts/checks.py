"""Preflight checks as data, evaluated as pure functions over host facts and the config.

Each check has an id (used by `--skip`), what it checks, a severity (an `error` blocks the install,
a `warning` is reported), a remedy, and the hosts it applies to. `evaluate()` never does I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kvinstall.hosts.facts import HostFacts, parse_kernel_version

if TYPE_CHECKING:
    from kvinstall.config.models import Config, Host

Severity = Literal["error", "warning"]
AppliesTo = Literal[
    "all",
    "controlPlane",
    "worker",
    "pciPassthrough",
    "hardwareVirtualization",
    "nonRoot",
    "offline",
    "offlinePackages",
    "longhorn",
    "metallbL2",
]
Status = Literal["pass", "fail", "warn", "skipped"]

GiB = 1024**3
SUPPORTED_OS: Mapping[str, tuple[str, ...]] = {
    "ubuntu": ("22.04", "24.04"),
    "debian": ("12", "13"),
    "rhel": ("9",),
    "rocky": ("9",),
    "flatcar": (),  # every release: Flatcar is a rolling distribution
}
MIN_KERNEL = (4, 19)
MIN_CPUS = {"controlPlane": 2, "worker": 4}
MIN_MEM_GIB = {"controlPlane": 4, "worker": 8}
MIN_VAR_FREE_GIB = 50
MIN_LONGHORN_FREE_GIB = 50


@dataclass(frozen=True)
class HostContext:
    """One host as the checks see it."""

    name: str  # the host's label in reports (address or address:port)
    host: Host
    user: str
    facts: HostFacts


@dataclass(frozen=True)
class ClusterContext:
    config: Config
    hosts: Sequence[HostContext]  # every host whose facts were gathered


# (passed, message). passed=None: could not be determined (reported as a warning).
Outcome = tuple[bool | None, str]
Evaluate = Callable[[HostContext, ClusterContext], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    what: str
    severity: Severity
    remedy: str
    applies_to: AppliesTo
    evaluate: Evaluate


@dataclass(frozen=True)
class CheckResult:
    host: str
    check: str
    status: Status
    severity: Severity
    message: str
    remedy: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "host": self.host,
            "check": self.check,
            "status": self.status,
            "severity": self.severity,
            "message": self.message,
            "remedy": self.remedy,
        }


# --- the individual checks -----------------------------------------------------------------------


def _os(h: HostContext, _: ClusterContext) -> Outcome:
    f = h.facts
    if not f.os_id:
        return None, "/etc/os-release could not be read"
    versions = SUPPORTED_OS.get(f.os_id)
    if versions is None:
        return False, f"{f.os_pretty or f.os_name} is not supported"
    # RHEL/Rocky "9.4" counts as 9; Ubuntu needs the exact LTS release.
    if versions and f.os_version not in versions and f.os_version.split(".")[0] not in versions:
        return False, f"{f.os_pretty or f.os_name} is not a supported release ({', '.join(versions)})"
    return True, f.os_pretty or f.os_name


def _kernel(h: HostContext, _: ClusterContext) -> Outcome:
    v = parse_kernel_version(h.facts.kernel)
    if v is None:
        return None, f"kernel release {h.facts.kernel!r} not understood"
    if v < MIN_KERNEL:
        return False, f"kernel {h.facts.kernel} is older than {MIN_KERNEL[0]}.{MIN_KERNEL[1]}"
    return True, f"kernel {h.facts.kernel}"


def _sudo(h: HostContext, _: ClusterContext) -> Outcome:
    if h.facts.sudo_ok is None:
        return None, "sudo was not tested"
    return h.facts.sudo_ok, f"passwordless sudo for {h.user!r}" + (
        "" if h.facts.sudo_ok else " does not work"
    )


def _virt_flags(h: HostContext, _: ClusterContext) -> Outcome:
    if h.facts.cpu_virt:
        return True, f"CPU flag {h.facts.cpu_virt} present"
    return False, "the CPU shows neither vmx (Intel VT-x) nor svm (AMD-V)"


def _dev(path: str) -> Evaluate:
    def ev(h: HostContext, _: ClusterContext) -> Outcome:
        return (path in h.facts.devices), f"{path} {'present' if path in h.facts.devices else 'missing'}"

    return ev


def _cpus(h: HostContext, _: ClusterContext) -> Outcome:
    need = MIN_CPUS[h.host.role]
    if h.facts.cpus is None:
        return None, "CPU count unknown"
    return h.facts.cpus >= need, f"{h.facts.cpus} CPUs (minimum {need} for a {h.host.role} host)"


def _memory(h: HostContext, _: ClusterContext) -> Outcome:
    need = MIN_MEM_GIB[h.host.role]
    if h.facts.mem_bytes is None:
        return None, "memory size unknown"
    have = h.facts.mem_bytes / GiB
    # MemTotal is a little below the installed size (kernel reservations): allow 5 %.
    return have >= need * 0.95, f"{have:.1f} GiB memory (minimum {need} GiB for a {h.host.role} host)"


def _var(h: HostContext, _: ClusterContext) -> Outcome:
    free = h.facts.var_free_bytes
    if free is None:
        return None, "free space on /var unknown"
    return (
        free >= MIN_VAR_FREE_GIB * GiB,
        f"{free / GiB:.1f} GiB free on /var (minimum {MIN_VAR_FREE_GIB} GiB)",
    )


def _swap(h: HostContext, _: ClusterContext) -> Outcome:
    if h.facts.swap_devices:
        return False, f"swap is on ({', '.join(h.facts.swap_devices)})"
    return True, "swap is off"


def _time(h: HostContext, _: ClusterContext) -> Outcome:
    if h.facts.time_synced is None:
        return None, "no time synchronisation service found (systemd-timesyncd, chrony)"
    return h.facts.time_synced, "clock synchronised" if h.facts.time_synced else "clock not synchronised"


def _unique_hostname(h: HostContext, c: ClusterContext) -> Outcome:
    def name_of(x: HostContext) -> str:
        return x.host.hostname or x.facts.hostname

    mine = name_of(h)
    if not mine:
        return None, "hostname unknown"
    counts = Counter(name_of(x) for x in c.hosts)
    if counts[mine] > 1:
        others = [x.name for x in c.hosts if name_of(x) == mine and x.name != h.name]
        return False, f"hostname {mine!r} is also used by {', '.join(others)}"
    return True, f"hostname {mine!r} is unique"


def required_ports(h: Host, config: Config) -> list[tuple[str, int]]:
    """Ports the cluster will listen on, on this host."""
    ports = [("tcp", 10250)]  # kubelet
    if h.role == "controlPlane":
        ports += [
            ("tcp", p) for p in (config.endpoint().port, 2379, 2380, 10257, 10259, 6641, 6642, 6643, 6644)
        ]
    ports.append(("udp", 6081) if config.network.tunnel_type == "geneve" else ("udp", 4789))
    return ports


def _ports(h: HostContext, c: ClusterContext) -> Outcome:
    if h.facts.cluster_member:
        # A re-run on an installed cluster: kubelet, etcd and the API server hold these ports.
        return True, "already a cluster node: its own components hold the cluster ports"
    busy = [
        f"{p}/{proto}" for proto, p in required_ports(h.host, c.config) if (proto, p) in h.facts.listening
    ]
    if busy:
        return False, f"already in use: {', '.join(busy)}"
    return True, "required ports are free"


def _modules(names: Sequence[str]) -> Evaluate:
    def ev(h: HostContext, _: ClusterContext) -> Outcome:
        states = {n: h.facts.modules.get(n, "unknown") for n in names}
        missing = [n for n, s in states.items() if s == "missing"]
        unknown = [n for n, s in states.items() if s == "unknown"]
        if missing:
            return False, f"module(s) not available: {', '.join(missing)}"
        if unknown:
            return None, f"cannot tell whether {', '.join(unknown)} can be loaded (modprobe not found)"
        return True, ", ".join(f"{n} {s}" for n, s in states.items())

    return ev


def _tunnel_module(h: HostContext, c: ClusterContext) -> Outcome:
    return _modules([c.config.network.tunnel_type])(h, c)


def _iommu(h: HostContext, _: ClusterContext) -> Outcome:
    f = h.facts
    if f.iommu_groups > 0:
        return True, f"IOMMU on ({f.iommu_groups} groups)"
    if f.iommu_on_cmdline:
        return (
            False,
            "IOMMU requested on the kernel command line but no IOMMU groups exist (disabled in firmware?)",
        )
    return False, "IOMMU is off (no IOMMU groups)"


def _gpus(h: HostContext, c: ClusterContext) -> Outcome:
    selectors = {
        d.pci_vendor_selector.upper()
        for d in c.config.components.kubevirt.permitted_host_devices.pci_host_devices
    }
    found = {g.selector for g in h.facts.gpus}
    if not found:
        return False, "no PCI display device found"
    if selectors and not (selectors & found):
        return False, f"GPUs {', '.join(sorted(found))} match none of {', '.join(sorted(selectors))}"
    return True, "GPUs: " + ", ".join(sorted(found))


def _reach(h: HostContext, c: ClusterContext) -> Outcome:
    if not h.facts.reach:
        return (True, "single host") if len(c.hosts) <= 1 else (None, "reachability not tested")
    bad = [k for k, ok in h.facts.reach.items() if ok is False]
    unknown = [k for k, ok in h.facts.reach.items() if ok is None]
    if bad:
        return False, f"cannot reach {', '.join(sorted(bad))} (TCP, {REACH_NOTE})"
    if unknown:
        return None, "neither bash nor nc on the host: reachability not tested"
    return True, f"reaches {len(h.facts.reach)} other host(s)"


REACH_NOTE = "private address, SSH port"


def site_endpoints(config: Config) -> list[tuple[str, str, int]]:
    """(what, host, port) of the offline site the hosts must reach: the registry (containerd pulls
    from it) and the package repository (apt installs from it). Pure."""
    from urllib.parse import urlsplit

    off = config.offline
    out: list[tuple[str, str, int]] = []
    if not off.enabled:
        return out
    if off.registry:
        parts = urlsplit(f"//{off.registry}")
        out.append(("registry", parts.hostname or off.registry, parts.port or (80 if off.insecure else 443)))
    if off.package_repository is not None:
        parts = urlsplit(off.package_repository.url)
        default = 443 if parts.scheme == "https" else 80
        out.append(("package repository", parts.hostname or "", parts.port or default))
    return out


def _site(h: HostContext, c: ClusterContext) -> Outcome:
    results = h.facts.site_reach
    named = {f"{host}:{port}": what for what, host, port in site_endpoints(c.config)}
    if not results:
        return None, "the site was not probed"
    bad = [f"{named.get(k, 'endpoint')} {k}" for k, ok in results.items() if ok is False]
    unknown = [k for k, ok in results.items() if ok is None]
    if bad:
        return False, f"cannot reach the site's {', '.join(sorted(bad))} (TCP)"
    if unknown:
        return None, "neither bash nor nc on the host: the site's reachability was not tested"
    return True, "reaches the site's " + ", ".join(f"{named.get(k, 'endpoint')} {k}" for k in results)


def os_release_name(facts: HostFacts) -> str:
    """ID-VERSION_ID as the package catalog names OS releases (RHEL-like: the major version)."""
    version = facts.os_version
    if facts.os_id in ("rhel", "rocky", "centos", "almalinux"):
        version = version.split(".")[0]
    return f"{facts.os_id}-{version}"


def _distribution(h: HostContext, c: ClusterContext) -> Outcome:
    if not h.facts.os_id:
        return None, "/etc/os-release could not be read"
    name = os_release_name(h.facts)
    listed = c.config.offline.host_packages.distributions
    if name in listed:
        return True, f"{name}: packages served for it"
    return False, f"{name} is not among the served OS releases ({', '.join(listed) or 'none'})"


def _iscsi(h: HostContext, _: ClusterContext) -> Outcome:
    tools, module = h.facts.storage_tools, h.facts.modules.get("iscsi_tcp", "unknown")
    if "iscsiadm" not in tools:
        return False, "iscsiadm not found: no iSCSI initiator"
    if "initiatorname" not in tools:
        return False, "/etc/iscsi/initiatorname.iscsi is missing or empty"
    if module == "missing":
        return False, "kernel module iscsi_tcp is not available"
    return True, "iSCSI initiator present" + ("" if module == "unknown" else f", iscsi_tcp {module}")


def _nfs(h: HostContext, _: ClusterContext) -> Outcome:
    return ("nfs" in h.facts.storage_tools), (
        "NFS client present" if "nfs" in h.facts.storage_tools else "mount.nfs not found: no NFS client"
    )


def _data_path(h: HostContext, c: ClusterContext) -> Outcome:
    path = c.config.components.longhorn.data_path
    free, where = h.facts.data_path_free_bytes, h.facts.data_path_dir
    if free is None:
        return None, f"free space under {path} unknown"
    on = "" if where is None or where.rstrip("/") == path.rstrip("/") else f" (on the filesystem of {where})"
    return (
        free >= MIN_LONGHORN_FREE_GIB * GiB,
        f"{free / GiB:.1f} GiB free for {path}{on} (minimum {MIN_LONGHORN_FREE_GIB} GiB)",
    )


def _multipath(h: HostContext, _: ClusterContext) -> Outcome:
    tools = h.facts.storage_tools
    if "multipathd" not in tools:
        return True, "multipathd is not running"
    if "blacklist-sd" in tools:
        return True, "multipathd runs, with /etc/multipath.conf blacklisting sd devices"
    return False, "multipathd runs and may claim the devices of Longhorn volumes (they then fail to mount)"


def _pool_ranges(
    config: Config,
) -> list[
    tuple[
        str, str, ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address
    ]
]:
    from kvinstall.config.models import address_range

    out = []
    for pool in config.components.metallb.pools:
        for text in pool.addresses:
            first, last = address_range(text)
            out.append((pool.name, text, first, last))
    return out


def _on_network(
    facts: HostFacts,
    first: ipaddress.IPv4Address | ipaddress.IPv6Address,
    last: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> str | None:
    for device, iface in facts.interfaces:
        if iface.version == first.version and first in iface.network and last in iface.network:
            return f"{device} ({iface.network})"
    return None


def _l2_network(h: HostContext, c: ClusterContext) -> Outcome:
    """Layer 2 announcements reach the hosts' own segment only: each pool range must lie in a network
    of this host's interfaces (on another host's only: a warning; on no host's: an error)."""
    if not h.facts.interfaces:
        return None, "the host's interface addresses are unknown"
    here, elsewhere, nowhere = [], [], []
    for pool, text, first, last in _pool_ranges(c.config):
        found = _on_network(h.facts, first, last)
        if found is not None:
            here.append(f"{text} ({pool}) on {found}")
        elif any(_on_network(o.facts, first, last) for o in c.hosts if o is not h):
            elsewhere.append(f"{text} ({pool})")
        else:
            nowhere.append(f"{text} ({pool})")
    if nowhere:
        return False, f"no host has an interface on the network of {', '.join(nowhere)}"
    if elsewhere:
        return None, f"this host has no interface on the network of {', '.join(elsewhere)} (other hosts do)"
    return True, "; ".join(here) or "no pools"


_EMULATION = "or set components.kubevirt.useEmulation: true to run VMs without hardware virtualization (slow)"

CHECKS: tuple[Check, ...] = (
    Check(
        "os.supported",
        "Supported OS: Ubuntu 22.04/24.04, Debian 12/13, RHEL/Rocky 9, Flatcar",
        "error",
        "install a supported distribution (KubeOne rejects unknown /etc/os-release IDs)",
        "all",
        _os,
    ),
    Check(
        "kernel.version",
        "Linux kernel 4.19 or newer",
        "error",
        "upgrade the kernel (Kubernetes >= 1.32 needs >= 4.19)",
        "all",
        _kernel,
    ),
    Check(
        "sudo.passwordless",
        "Non-root SSH user has passwordless sudo",
        "error",
        "add '<user> ALL=(ALL) NOPASSWD: ALL' under /etc/sudoers.d/, or log in as root",
        "nonRoot",
        _sudo,
    ),
    Check(
        "cpu.virtualization",
        "CPU virtualization extensions (vmx or svm)",
        "error",
        "enable VT-x/AMD-V in the firmware (BIOS/UEFI), " + _EMULATION,
        "hardwareVirtualization",
        _virt_flags,
    ),
    Check(
        "dev.kvm",
        "/dev/kvm exists",
        "error",
        "load kvm_intel or kvm_amd (modprobe) after enabling virtualization in the firmware, " + _EMULATION,
        "hardwareVirtualization",
        _dev("/dev/kvm"),
    ),
    Check(
        "dev.vhost-net",
        "/dev/vhost-net exists (fast virtio networking)",
        "warning",
        "modprobe vhost_net (and add it to /etc/modules-load.d/)",
        "all",
        _dev("/dev/vhost-net"),
    ),
    Check("dev.tun", "/dev/net/tun exists", "error", "modprobe tun", "all", _dev("/dev/net/tun")),
    Check(
        "cpu.controlplane",
        "At least 2 CPUs on a control-plane host",
        "error",
        "give the host more CPUs (kubeadm needs 2)",
        "controlPlane",
        _cpus,
    ),
    Check(
        "cpu.worker",
        "At least 4 CPUs on a worker (VMs need room)",
        "warning",
        "give the host more CPUs",
        "worker",
        _cpus,
    ),
    Check(
        "memory.controlplane",
        "At least 4 GiB memory on a control-plane host",
        "error",
        "give the host more memory",
        "controlPlane",
        _memory,
    ),
    Check(
        "memory.worker",
        "At least 8 GiB memory on a worker",
        "warning",
        "give the host more memory",
        "worker",
        _memory,
    ),
    Check(
        "disk.var",
        "At least 50 GiB free on /var (images, etcd, VM disks)",
        "warning",
        "free space or grow the filesystem holding /var",
        "all",
        _var,
    ),
    Check(
        "swap.off",
        "Swap is off",
        "error",
        "run 'swapoff -a' and remove swap entries from /etc/fstab (kubelet refuses swap by default)",
        "all",
        _swap,
    ),
    Check(
        "time.sync",
        "The clock is synchronised (NTP)",
        "warning",
        "enable systemd-timesyncd or chrony (certificates and etcd need agreeing clocks)",
        "all",
        _time,
    ),
    Check(
        "hostname.unique",
        "Hostnames are unique across hosts",
        "error",
        "give each host its own hostname (hostnamectl set-hostname) or set hosts[].hostname",
        "all",
        _unique_hostname,
    ),
    Check(
        "ports.free",
        "Ports the cluster needs are free (6443, 2379-2380, 10250, 10257, 10259, 6641-6644, "
        "6081/udp or 4789/udp)",
        "error",
        "stop the service listening on the port",
        "all",
        _ports,
    ),
    Check(
        "modules.openvswitch",
        "Kernel module openvswitch is loadable (Kube-OVN)",
        "error",
        "install the kernel's extra modules package (e.g. linux-modules-extra-$(uname -r))",
        "all",
        _modules(["openvswitch"]),
    ),
    Check(
        "modules.tunnel",
        "Kernel module for the overlay (geneve or vxlan) is loadable",
        "error",
        "install the kernel's extra modules package, or set network.tunnelType",
        "all",
        _tunnel_module,
    ),
    Check(
        "modules.iptables",
        "Kernel modules ip_tables and iptable_nat are loadable",
        "warning",
        "install the kernel modules for iptables",
        "all",
        _modules(["ip_tables", "iptable_nat"]),
    ),
    Check(
        "iommu.enabled",
        "IOMMU is on (PCI passthrough)",
        "error",
        "enable VT-d/AMD-Vi in the firmware and add intel_iommu=on (or amd_iommu=on) iommu=pt to the kernel "
        "command line, then reboot",
        "pciPassthrough",
        _iommu,
    ),
    Check(
        "vfio.available",
        "Kernel module vfio-pci is loadable (PCI passthrough)",
        "error",
        "install the vfio modules and add vfio-pci to /etc/modules-load.d/",
        "pciPassthrough",
        _modules(["vfio_pci"]),
    ),
    Check(
        "gpu.present",
        "The host has the GPUs listed in permittedHostDevices",
        "warning",
        "check the pciVendorSelector values (lspci -nn) or the host's pciPassthrough flag",
        "pciPassthrough",
        _gpus,
    ),
    Check(
        "offline.site",
        "Offline: the host reaches the site registry and package repository",
        "error",
        "open TCP from the hosts to the jump host's registry and package repository ports (firewall, "
        "routes), or check `kvinstall mirror serve --status` there",
        "offline",
        _site,
    ),
    Check(
        "offline.distribution",
        "Offline: the host's OS release is one the site package repository serves",
        "error",
        "add it to offline.hostPackages.distributions and make the bundle again (mirror create)",
        "offlinePackages",
        _distribution,
    ),
    Check(
        "network.reachability",
        "Every other host's private address is reachable from this host",
        "error",
        "open TCP between the hosts' private addresses (firewall, routes, VLANs)",
        "all",
        _reach,
    ),
    Check(
        "longhorn.iscsi",
        "iSCSI initiator for Longhorn volumes (iscsiadm, an initiator name, module iscsi_tcp)",
        "error",
        "install open-iscsi (Debian/Ubuntu) or iscsi-initiator-utils (RHEL/Rocky), enable iscsid, and load "
        "iscsi_tcp (add it to /etc/modules-load.d/)",
        "longhorn",
        _iscsi,
    ),
    Check(
        "longhorn.nfs",
        "NFS client for Longhorn's ReadWriteMany filesystem volumes and NFS backups",
        "warning",
        "install nfs-common (Debian/Ubuntu) or nfs-utils (RHEL/Rocky)",
        "longhorn",
        _nfs,
    ),
    Check(
        "longhorn.data-path",
        f"At least {MIN_LONGHORN_FREE_GIB} GiB free for Longhorn's data path (components.longhorn.dataPath)",
        "warning",
        "free space, mount a data disk at the data path, or set components.longhorn.dataPath to a larger disk",
        "longhorn",
        _data_path,
    ),
    Check(
        "longhorn.multipath",
        "multipathd does not claim the devices of Longhorn volumes",
        "error",
        'add blacklist { devnode "^sd[a-z0-9]+" } to /etc/multipath.conf and restart multipathd, or stop '
        "and disable multipathd if the host has no multipath storage",
        "longhorn",
        _multipath,
    ),
    Check(
        "metallb.l2-network",
        "MetalLB's layer 2 pools lie on a network of the hosts' interfaces",
        "error",
        "choose pool addresses from the hosts' own network (components.metallb.pools), or announce them "
        "over BGP (components.metallb.bgpPeers, l2: false)",
        "metallbL2",
        _l2_network,
    ),
)
CHECKS_BY_ID: Mapping[str, Check] = {c.id: c for c in CHECKS}


def applies(check: Check, h: HostContext, config: Config) -> bool:
    return applies_to_host(check, h.host, h.user, config)


def applies_to_host(check: Check, host: Host, user: str, config: Config) -> bool:
    """Whether a check runs on a host; needs no facts, so the plan can list checks per host."""
    a = check.applies_to
    if a == "all":
        return True
    if a in ("controlPlane", "worker"):
        return host.role == a
    if a == "pciPassthrough":
        return host.pci_passthrough
    if a == "hardwareVirtualization":
        return not config.components.kubevirt.use_emulation
    if a == "offline":
        return config.offline.enabled
    if a == "offlinePackages":
        return config.offline.enabled and config.offline.package_repository is not None
    if a == "longhorn":
        # Where volumes attach and replicas live: the workers (control planes too when there are no
        # workers, or when they take workloads: taints: []).
        return config.components.longhorn.enabled and (
            host.role == "worker" or not config.workers or host.taints == []
        )
    if a == "metallbL2":
        lb = config.components.metallb
        return lb.enabled and lb.l2
    return user != "root"  # nonRoot


def unknown_check_ids(ids: set[str]) -> list[str]:
    return sorted(i for i in ids if i not in CHECKS_BY_ID)


def evaluate(
    cluster: ClusterContext, *, skip: AbstractSet[str] = frozenset(), checks: Sequence[Check] = CHECKS
) -> list[CheckResult]:
    """Every applicable check on every host. Pure."""
    results: list[CheckResult] = []
    for h in cluster.hosts:
        for check in checks:
            if not applies(check, h, cluster.config):
                continue
            if check.id in skip:
                results.append(CheckResult(h.name, check.id, "skipped", check.severity, "skipped by request"))
                continue
            passed, message = check.evaluate(h, cluster)
            if passed:
                status: Status = "pass"
            elif passed is None or check.severity == "warning":
                status = "warn"
            else:
                status = "fail"
            results.append(
                CheckResult(h.name, check.id, status, check.severity, message, "" if passed else check.remedy)
            )
    return results
