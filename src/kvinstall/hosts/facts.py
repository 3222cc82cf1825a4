"""Host facts: one batched remote script per host, parsed by pure functions.

The script forks as little as possible (one `grep -HZ` reads most files of /proc, /sys and /etc at
once; shell built-ins test devices and modules), so gathering costs one round trip and a few
processes per host. Values from the config (peer addresses) enter the script only through
`shlex.quote`.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

# Kernel modules whose state is reported: Kube-OVN (openvswitch, geneve/vxlan, iptables), KubeVirt
# (kvm*, vhost_net), PCI passthrough (vfio_pci), Longhorn (iscsi_tcp).
MODULES = (
    "openvswitch",
    "geneve",
    "vxlan",
    "ip_tables",
    "iptable_nat",
    "vfio_pci",
    "kvm",
    "kvm_intel",
    "kvm_amd",
    "vhost_net",
    "iscsi_tcp",
)
DEVICES = ("/dev/kvm", "/dev/vhost-net", "/dev/net/tun")
_GREP_FILES = (
    "/etc/os-release /usr/lib/os-release /proc/sys/kernel/osrelease /proc/sys/kernel/hostname /proc/meminfo "
    "/proc/cmdline /proc/swaps /proc/modules /proc/self/status /proc/net/tcp /proc/net/tcp6 /proc/net/udp "
    "/proc/net/udp6 /sys/block/*/size /sys/bus/pci/devices/*/class /sys/bus/pci/devices/*/vendor "
    "/sys/bus/pci/devices/*/device"
)
REACH_TIMEOUT_S = 3.0  # per attempt; preflight passes the config's ssh.connectTimeout
REACH_ATTEMPTS = 2  # a busy host may miss one attempt (process start counts against the timeout)


@dataclass(frozen=True)
class Peer:
    """Another host to test reachability to (a TCP connect to its SSH port, private address)."""

    address: str
    port: int = 22


def facts_script(
    peers: Sequence[Peer] = (),
    *,
    check_sudo: bool = False,
    reach_timeout: float = REACH_TIMEOUT_S,
    site: Sequence[Peer] = (),
    data_path: str | None = None,
) -> str:
    """The POSIX sh script that prints every fact, in sections `@@name`. `site`: the offline site's
    registry and package repository endpoints, probed like the peers. `data_path`: a directory whose
    filesystem's free space is reported (the nearest existing parent, before the directory exists)."""
    lines = [
        "exec 2>/dev/null",
        "PATH=$PATH:/usr/sbin:/sbin; export PATH; LC_ALL=C; export LC_ALL",
        "echo @@files",
        f"grep -sHZ '' {_GREP_FILES}",
        "echo; echo @@cpuflags",
        "grep -m1 -E '^(flags|Features)' /proc/cpuinfo",
        "echo @@devices",
        "for d in " + " ".join(DEVICES) + '; do [ -e "$d" ] && echo "$d"; done',
        "echo @@iommu_groups",
        'set -- /sys/kernel/iommu_groups/*; if [ -e "$1" ]; then echo $#; else echo 0; fi',
        "echo @@vfio_bound",
        'for d in /sys/bus/pci/drivers/vfio-pci/0000:*; do [ -e "$d" ] && echo "${d##*/}"; done',
        "echo @@modules",
        "for m in " + " ".join(MODULES) + "; do "
        'if [ -d "/sys/module/$m" ]; then echo "$m loaded"; '
        'elif modprobe -n -q "$m"; then echo "$m loadable"; else echo "$m missing $?"; fi; done',
        "echo @@timesync",
        "if [ -e /run/systemd/timesync/synchronized ]; then echo yes; "
        "elif command -v timedatectl >/dev/null; then timedatectl show -p NTPSynchronized --value; "
        "elif command -v chronyc >/dev/null; then chronyc -n tracking | grep -i '^leap status'; fi",
        "echo @@df",
        "df -Pk /var",
        # A host KubeOne already joined (the marker KubeOne itself uses): its own ports are in use.
        "echo @@node",
        "[ -e /etc/kubernetes/kubelet.conf ] && echo member",
        # Addresses of the host's interfaces (MetalLB announces on the networks they are on).
        "echo @@addrs",
        "ip -o addr show scope global",
        # What Longhorn needs: the iSCSI initiator (tool and initiator name), the NFS client, and no
        # multipathd claiming its devices (unless multipath.conf blacklists them).
        "echo @@storage",
        "command -v iscsiadm >/dev/null && echo iscsiadm",
        "[ -s /etc/iscsi/initiatorname.iscsi ] && echo initiatorname",
        "{ command -v mount.nfs || [ -x /sbin/mount.nfs ] || [ -x /usr/sbin/mount.nfs ]; } >/dev/null && echo nfs",
        "{ [ -e /run/multipathd.pid ] || [ -S /run/multipathd.socket ] || pidof multipathd; } >/dev/null && echo multipathd",
        "grep -qsE '^[^#]*devnode[[:space:]]+\"?\\^?sd' /etc/multipath.conf && echo blacklist-sd",
    ]
    if data_path is not None:
        lines += [
            "echo @@datapath",
            f"p={shlex.quote(data_path)}; "
            'while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; echo "$p"; df -Pk "$p"',
        ]
    if check_sudo:
        lines += ["echo @@sudo", "if sudo -n true; then echo ok; else echo fail; fi"]
    if peers or site:
        t = f"{max(1, round(reach_timeout))}"
        # bash started with the SSH session's stdin and SSH_CLIENT set takes itself for a shell run by
        # sshd and sources ~/.bashrc (seconds on some hosts, eaten from the timeout): --norc, no stdin.
        probe = (
            "if command -v bash >/dev/null; then "
            f'timeout {t} bash --norc --noprofile -c \'exec 3<>"/dev/tcp/$0/$1"\' "$1" "$2" </dev/null; '
            f'elif command -v nc >/dev/null; then timeout {t} nc -z "$1" "$2"; '
            "else exit 127; fi"
        )
        # Attempts until one connects (or the probe cannot run at all: 127); the last status counts.
        attempts = f"n=0; while :; do ( {probe} ); rc=$?; n=$((n+1)); "
        attempts += f'[ "$rc" -eq 0 ] || [ "$rc" -eq 127 ] || [ "$n" -ge {REACH_ATTEMPTS} ] && break; done'
        lines.append(f'probe() {{ {attempts}; echo "$1 $2 $rc"; }}')
    for section, targets in (("reach", peers), ("site", site)):
        if not targets:
            continue
        lines.append(f"echo @@{section}")
        for p in targets:
            lines.append(f"probe {shlex.quote(p.address)} {int(p.port)} &")
        lines.append("wait")
    lines.append("echo @@end")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PCIDevice:
    address: str
    pci_class: str  # e.g. 0x030000
    vendor: str  # 4 hex digits, lower case
    device: str

    @property
    def selector(self) -> str:
        """vendor:device as KubeVirt's pciVendorSelector writes it (upper case)."""
        return f"{self.vendor}:{self.device}".upper()


@dataclass(frozen=True)
class HostFacts:
    hostname: str = ""
    os_id: str = ""
    os_version: str = ""
    os_like: tuple[str, ...] = ()
    os_pretty: str = ""
    kernel: str = ""
    cpus: int | None = None
    mem_bytes: int | None = None
    swap_devices: tuple[str, ...] = ()
    cpu_virt: str | None = None  # "vmx", "svm" or None
    devices: frozenset[str] = frozenset()
    kernel_cmdline: str = ""
    iommu_groups: int = 0
    gpus: tuple[PCIDevice, ...] = ()
    vfio_bound: tuple[str, ...] = ()
    loaded_modules: frozenset[str] = frozenset()
    modules: dict[str, str] = field(default_factory=dict)  # name -> loaded | loadable | missing | unknown
    time_synced: bool | None = None
    var_free_bytes: int | None = None
    disks: dict[str, int] = field(default_factory=dict)  # block device -> bytes
    listening: frozenset[tuple[str, int]] = frozenset()  # ("tcp"|"udp", port)
    sudo_ok: bool | None = None
    cluster_member: bool = False  # /etc/kubernetes/kubelet.conf exists: already a node of the cluster
    # Global addresses of the host's interfaces, with their networks (e.g. 10.0.0.5/24 on eth0).
    interfaces: tuple[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface], ...] = ()
    storage_tools: frozenset[str] = frozenset()  # iscsiadm, initiatorname, nfs, multipathd, blacklist-sd
    data_path_dir: str | None = None  # the existing directory of the data path whose space was measured
    data_path_free_bytes: int | None = None
    reach: dict[str, bool | None] = field(default_factory=dict)  # "addr:port" -> reachable
    site_reach: dict[str, bool | None] = field(default_factory=dict)  # offline site endpoints, the same way

    @property
    def iommu_on_cmdline(self) -> bool:
        words = self.kernel_cmdline.split()
        return any(w in words for w in ("intel_iommu=on", "amd_iommu=on", "iommu=on")) or "iommu=pt" in words

    @property
    def os_name(self) -> str:
        return f"{self.os_id} {self.os_version}".strip()


# --- parsing (pure) ------------------------------------------------------------------------------


def split_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("@@") and " " not in line:
            current = sections.setdefault(line[2:], [])
        elif current is not None:
            current.append(line)
    return sections


def parse_grep_files(lines: Sequence[str]) -> dict[str, list[str]]:
    """`grep -HZ ''` output (path NUL line) -> {path: [lines]}."""
    files: dict[str, list[str]] = {}
    for line in lines:
        path, sep, rest = line.partition("\0")
        if sep:
            files.setdefault(path, []).append(rest)
    return files


def parse_os_release(lines: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key:
            try:
                parts = shlex.split(value)
            except ValueError:
                parts = [value]
            out[key] = parts[0] if parts else ""
    return out


def parse_meminfo(lines: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        m = re.match(r"^(\w+):\s+(\d+)(?:\s+kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if "kB" in line else 1)
    return out


def parse_cpu_list(text: str) -> int | None:
    """'0-3,6,8-9' -> 7."""
    total = 0
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        try:
            total += (int(b) - int(a) + 1) if b else (int(a) >= 0)
        except ValueError:
            return None
    return total or None


def parse_proc_net(lines: Sequence[str], proto: str) -> set[tuple[str, int]]:
    """/proc/net/{tcp,udp}[6] -> listening ports. TCP state 0A = LISTEN; UDP 07 = bound."""
    want = "0A" if proto == "tcp" else "07"
    out: set[tuple[str, int]] = set()
    for line in lines:
        parts = line.split()
        if len(parts) < 4 or parts[0] == "sl" or ":" not in parts[1]:
            continue
        if parts[3].upper() == want:
            try:
                out.add((proto, int(parts[1].rsplit(":", 1)[1], 16)))
            except ValueError:
                continue
    return out


def parse_df(lines: Sequence[str]) -> int | None:
    rows = [ln.split() for ln in lines if ln.strip() and not ln.startswith("Filesystem")]
    if not rows:
        return None
    row = rows[-1]
    try:
        return int(row[3]) * 1024
    except (IndexError, ValueError):
        return None


def parse_addrs(
    lines: Sequence[str],
) -> tuple[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface], ...]:
    """`ip -o addr show` -> ((device, address/prefix), ...)."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("inet", "inet6"):
            try:
                out.append((parts[1].rstrip(":"), ipaddress.ip_interface(parts[3])))
            except ValueError:
                continue
    return tuple(out)


def parse_facts(text: str) -> HostFacts:
    """Parse the output of `facts_script()`. Missing sections leave their fields unknown."""
    sec = split_sections(text)
    files = parse_grep_files(sec.get("files", []))
    osr = parse_os_release(files.get("/etc/os-release") or files.get("/usr/lib/os-release") or [])
    mem = parse_meminfo(files.get("/proc/meminfo", []))
    cpus = None
    for line in files.get("/proc/self/status", []):
        if line.startswith("Cpus_allowed_list:"):
            cpus = parse_cpu_list(line.split(":", 1)[1])
    swaps = tuple(ln.split()[0] for ln in files.get("/proc/swaps", [])[1:] if ln.strip())
    flags = " ".join(sec.get("cpuflags", [])).split()
    virt = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
    listening: set[tuple[str, int]] = set()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        listening |= parse_proc_net(files.get(f"/proc/net/{name}", []), name[:3])
    disks: dict[str, int] = {}
    pci: dict[str, dict[str, str]] = {}
    for path, content in files.items():
        m = re.match(r"^/sys/block/([^/]+)/size$", path)
        if m and content and content[0].strip().isdigit() and int(content[0].strip()) > 0:
            disks[m.group(1)] = int(content[0].strip()) * 512
        m = re.match(r"^/sys/bus/pci/devices/([^/]+)/(class|vendor|device)$", path)
        if m and content:
            pci.setdefault(m.group(1), {})[m.group(2)] = content[0].strip().lower()
    gpus = tuple(
        PCIDevice(
            addr,
            d.get("class", ""),
            d.get("vendor", "").removeprefix("0x"),
            d.get("device", "").removeprefix("0x"),
        )
        for addr, d in sorted(pci.items())
        if d.get("class", "").startswith("0x03")  # display controllers
    )
    modules: dict[str, str] = {}
    for line in sec.get("modules", []):
        parts = line.split()
        if len(parts) >= 2:
            # exit 127: modprobe itself is missing, so nothing is known.
            modules[parts[0]] = "unknown" if parts[1] == "missing" and parts[2:] == ["127"] else parts[1]
    ts = [ln.strip().lower() for ln in sec.get("timesync", []) if ln.strip()]
    time_synced: bool | None = None
    if ts:
        time_synced = ts[0] in ("yes", "true") or ("leap status" in ts[0] and "normal" in ts[0])
    sudo_lines = [ln.strip() for ln in sec.get("sudo", []) if ln.strip()]
    reach = _probes(sec.get("reach", []))
    groups = [ln.strip() for ln in sec.get("iommu_groups", []) if ln.strip()]
    datapath = [ln for ln in sec.get("datapath", []) if ln.strip()]
    return HostFacts(
        hostname=(files.get("/proc/sys/kernel/hostname") or [""])[0].strip(),
        os_id=osr.get("ID", ""),
        os_version=osr.get("VERSION_ID", ""),
        os_like=tuple(osr.get("ID_LIKE", "").split()),
        os_pretty=osr.get("PRETTY_NAME", ""),
        kernel=(files.get("/proc/sys/kernel/osrelease") or [""])[0].strip(),
        cpus=cpus,
        mem_bytes=mem.get("MemTotal"),
        swap_devices=swaps,
        cpu_virt=virt,
        devices=frozenset(ln.strip() for ln in sec.get("devices", []) if ln.strip()),
        kernel_cmdline=" ".join(files.get("/proc/cmdline", [])).strip(),
        iommu_groups=int(groups[0]) if groups and groups[0].isdigit() else 0,
        gpus=gpus,
        vfio_bound=tuple(ln.strip() for ln in sec.get("vfio_bound", []) if ln.strip()),
        loaded_modules=frozenset(ln.split()[0] for ln in files.get("/proc/modules", []) if ln.strip()),
        modules=modules,
        time_synced=time_synced,
        var_free_bytes=parse_df(sec.get("df", [])),
        cluster_member=any(ln.strip() == "member" for ln in sec.get("node", [])),
        interfaces=parse_addrs(sec.get("addrs", [])),
        storage_tools=frozenset(ln.strip() for ln in sec.get("storage", []) if ln.strip()),
        data_path_dir=datapath[0].strip() if datapath else None,
        data_path_free_bytes=parse_df(datapath[1:]) if datapath else None,
        disks=disks,
        listening=frozenset(listening),
        sudo_ok=(sudo_lines[0] == "ok") if sudo_lines else None,
        reach=reach,
        site_reach=_probes(sec.get("site", [])),
    )


def _probes(lines: Sequence[str]) -> dict[str, bool | None]:
    """'ADDR PORT EXIT' lines -> {"addr:port": reachable} (None: no tool on the host to test with)."""
    out: dict[str, bool | None] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            out[f"{parts[0]}:{parts[1]}"] = None if parts[2] == "127" else parts[2] == "0"
    return out


def parse_kernel_version(release: str) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None
