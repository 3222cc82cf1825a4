"""The facts script and its pure parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kvinstall.hosts.facts import Peer, facts_script, parse_cpu_list, parse_facts, parse_proc_net

SAMPLE = "\n".join(
    [
        "@@files",
        '/etc/os-release\0NAME="Rocky Linux"',
        '/etc/os-release\0ID="rocky"',
        '/etc/os-release\0ID_LIKE="rhel centos fedora"',
        '/etc/os-release\0VERSION_ID="9.4"',
        '/etc/os-release\0PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"',
        "/proc/sys/kernel/osrelease\x005.14.0-427.el9.x86_64",
        "/proc/sys/kernel/hostname\0gpu-1",
        "/proc/meminfo\0MemTotal:       65843020 kB",
        "/proc/meminfo\0SwapTotal:       8388604 kB",
        "/proc/cmdline\0BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt",
        "/proc/swaps\0Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority",
        "/proc/swaps\0/dev/dm-1                               partition\t8388604\t\t0\t\t-2",
        "/proc/modules\0kvm_intel 409600 0 - Live 0x0000000000000000",
        "/proc/modules\0kvm 1363968 1 kvm_intel, Live 0x0000000000000000",
        "/proc/self/status\0Cpus_allowed_list:\t0-15,32-47",
        "/proc/net/tcp\0  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid",
        "/proc/net/tcp\0   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
        "/proc/net/tcp\0   1: 0100007F:1A0B 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0",
        "/proc/net/udp6\0   0: " + "0" * 32 + ":17C1 " + "0" * 32 + ":0000 07 0",
        "/sys/block/nvme0n1/size\x001875385008",
        "/sys/block/loop0/size\x000",
        "/sys/bus/pci/devices/0000:3b:00.0/class\x000x030200",
        "/sys/bus/pci/devices/0000:3b:00.0/vendor\x000x10de",
        "/sys/bus/pci/devices/0000:3b:00.0/device\x000x1eb8",
        "/sys/bus/pci/devices/0000:00:1f.2/class\x000x010601",
        "/sys/bus/pci/devices/0000:00:1f.2/vendor\x000x8086",
        "/sys/bus/pci/devices/0000:00:1f.2/device\x000xa352",
        "",
        "@@cpuflags",
        "flags\t\t: fpu vme de pse tsc msr pae mce vmx smx est",
        "@@devices",
        "/dev/kvm",
        "/dev/net/tun",
        "@@iommu_groups",
        "87",
        "@@vfio_bound",
        "0000:3b:00.0",
        "@@modules",
        "openvswitch loadable",
        "geneve missing 1",
        "vfio_pci loaded",
        "kvm_amd missing 127",
        "@@timesync",
        "yes",
        "@@df",
        "Filesystem     1024-blocks      Used Available Capacity Mounted on",
        "/dev/mapper/rl-var 104806400 10485760  94320640      11% /var",
        "@@node",
        "member",
        "@@sudo",
        "ok",
        "@@reach",
        "10.0.0.2 22 0",
        "10.0.0.3 22 124",
        "10.0.0.4 22 127",
        "@@end",
    ]
)


def test_parse_sample() -> None:
    f = parse_facts(SAMPLE)
    assert (f.os_id, f.os_version, f.os_like) == ("rocky", "9.4", ("rhel", "centos", "fedora"))
    assert f.kernel == "5.14.0-427.el9.x86_64"
    assert f.hostname == "gpu-1"
    assert f.cpus == 32
    assert f.mem_bytes == 65843020 * 1024
    assert f.swap_devices == ("/dev/dm-1",)
    assert f.cpu_virt == "vmx"
    assert f.devices == {"/dev/kvm", "/dev/net/tun"}
    assert f.iommu_groups == 87 and f.iommu_on_cmdline
    assert [g.selector for g in f.gpus] == ["10DE:1EB8"]
    assert f.vfio_bound == ("0000:3b:00.0",)
    assert f.loaded_modules == {"kvm", "kvm_intel"}
    assert f.modules == {
        "openvswitch": "loadable",
        "geneve": "missing",
        "vfio_pci": "loaded",
        "kvm_amd": "unknown",
    }
    assert f.time_synced is True
    assert f.var_free_bytes == 94320640 * 1024
    assert f.disks == {"nvme0n1": 1875385008 * 512}
    assert f.listening == {("tcp", 22), ("udp", 6081)}
    assert f.sudo_ok is True
    assert f.cluster_member is True
    assert f.reach == {"10.0.0.2:22": True, "10.0.0.3:22": False, "10.0.0.4:22": None}


def test_parse_empty_output_leaves_everything_unknown() -> None:
    f = parse_facts("")
    assert f.os_id == "" and f.cpus is None and f.mem_bytes is None and f.time_synced is None


def test_small_parsers() -> None:
    assert parse_cpu_list("0") == 1
    assert parse_cpu_list("0-3,6,8-9") == 7
    assert parse_cpu_list("garbage") is None
    assert parse_proc_net(["   0: 0100007F:0CEA 00000000:0000 0A 0"], "tcp") == {("tcp", 3306)}
    assert parse_proc_net(["   0: 0100007F:0CEA 00000000:0000 01 0"], "tcp") == set()


def test_script_runs_under_posix_sh_and_parses(tmp_path: Path) -> None:
    # The real script through dash (the /bin/sh of Debian): syntax and the parser agree.
    out = subprocess.run(["sh", "-s"], input=facts_script(), capture_output=True, text=True, timeout=60)
    f = parse_facts(out.stdout)
    assert out.stdout.rstrip().endswith("@@end")
    assert f.kernel and f.hostname and f.cpus and f.mem_bytes and f.os_id


def test_peer_addresses_cannot_inject_commands(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = [
        Peer(f"x;touch {marker}"),
        Peer(f"$(touch {marker})"),
        Peer(f"`touch {marker}`"),
        Peer(f"a' ; touch {marker}; '"),
    ]
    script = facts_script(evil)
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert not marker.exists()
    # the script ran to its end: every probe was attempted with the text as a (bad) host name
    assert out.stdout.rstrip().endswith("@@end")
    assert "@@reach" in out.stdout


def test_reachability_probe_ignores_the_shells_rc_files(tmp_path: Path) -> None:
    """The probe's bash must not read ~/.bashrc (bash run with a session's stdin and SSH_CLIENT set
    sources it, which ate the whole connect timeout on a host with a slow rc file)."""
    import socket

    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "rc-was-read"
    (home / ".bashrc").write_text(f"touch {marker}\n")
    (home / ".bash_profile").write_text(f"touch {marker}\n")
    with socket.socket() as listener, socket.socket() as closed:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        peers = [Peer("127.0.0.1", listener.getsockname()[1]), Peer("127.0.0.1", closed.getsockname()[1])]
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SSH_CLIENT": "10.0.0.1 1 22", "SHLVL": "0"}
        ours, theirs = socket.socketpair()  # stdin a socket, as in an SSH session
        with ours, theirs:
            ours.sendall(facts_script(peers, reach_timeout=30).encode())
            ours.shutdown(socket.SHUT_WR)
            out = subprocess.run(["sh", "-s"], stdin=theirs, capture_output=True, text=True, timeout=120, env=env)
    facts = parse_facts(out.stdout)
    assert facts.reach == {f"127.0.0.1:{peers[0].port}": True, f"127.0.0.1:{peers[1].port}": False}
    assert not marker.exists()
