"""The wizard's host-key check against a real sshd that this test starts on 127.0.0.1 (a free port).

Only the key exchange runs (no login); the fingerprint must be OpenSSH's own (`ssh-keygen -lf`).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvinstall.errors import SSHError
from kvinstall.hosts.hostkeys import fetch_host_key
from substrate.procs import free_port, wait_until

from .test_wizard import (
    AUTH_NONE,
    ENDPOINT_DEFAULT,
    ENTER,
    KUBEVIRT_DEFAULT,
    KYVERNO_DEFAULT,
    NETWORK_DEFAULT,
    OFFLINE_NO,
    SERVICES_NONE,
    STORAGE_DEFAULT,
    WORKSPACES_NONE,
    WRITE,
    T,
    drive,
    write_and_load,
)

pytestmark = pytest.mark.timeout(90)

SSHD = "/usr/sbin/sshd"


@dataclass
class LocalSSHD:
    port: int
    public_key: str  # "ssh-ed25519 AAAA..."
    fingerprint: str  # as ssh-keygen prints it


def _accepting(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@pytest.fixture
def local_sshd(tmp_path: Path) -> Iterator[LocalSSHD]:
    key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    conf = tmp_path / "sshd_config"
    conf.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {key}",
                f"PidFile {tmp_path / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "UseDNS no",
                "StrictModes no",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: proc.poll() is None and _accepting(port), 15, "sshd on 127.0.0.1")
        pub = (tmp_path / "ssh_host_ed25519_key.pub").read_text().split()
        listed = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], check=True, capture_output=True,
                                text=True, timeout=30).stdout.split()
        yield LocalSSHD(port=port, public_key=f"{pub[0]} {pub[1]}", fingerprint=listed[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fetch_host_key_matches_ssh_keygen(local_sshd: LocalSSHD) -> None:
    key = fetch_host_key("127.0.0.1", local_sshd.port, timeout=5)
    assert key.line == local_sshd.public_key
    assert key.fingerprint == local_sshd.fingerprint


def test_fetch_host_key_refused_port_is_an_ssh_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SSHError) as exc:
        fetch_host_key("127.0.0.1", port, timeout=2)
    assert exc.value.where == f"127.0.0.1:{port}"


def _keys_for(port: int, check: str, pin: str) -> str:
    return (
        T("keylab") + ENTER
        + ENTER + T("127.0.0.1") + ENTER + ENTER + ENTER + T(str(port)) + "n" + check + pin
        + ENTER  # Done
        + ENDPOINT_DEFAULT + NETWORK_DEFAULT + STORAGE_DEFAULT + KUBEVIRT_DEFAULT + AUTH_NONE + KYVERNO_DEFAULT
        + SERVICES_NONE + WORKSPACES_NONE + OFFLINE_NO + WRITE
    )  # fmt: skip


def test_wizard_pins_the_accepted_key(local_sshd: LocalSSHD, tmp_path: Path) -> None:
    config, ui = drive(_keys_for(local_sshd.port, "y", "y"))
    assert config.hosts[0].host_public_key == local_sshd.public_key
    assert config.ssh.port == local_sshd.port
    assert any(local_sshd.fingerprint in line for line in ui.transcript)
    assert write_and_load(config, tmp_path).hosts[0].host_public_key == local_sshd.public_key


def test_wizard_declined_key_is_not_pinned(local_sshd: LocalSSHD) -> None:
    config, ui = drive(_keys_for(local_sshd.port, "y", "n"))
    assert config.hosts[0].host_public_key is None
    assert any(local_sshd.fingerprint in line for line in ui.transcript)


def test_wizard_unreachable_host_is_kept_without_key() -> None:
    port = free_port()
    config, ui = drive(_keys_for(port, "y", ""))
    assert config.hosts[0].address == "127.0.0.1" and config.hosts[0].host_public_key is None
    assert any("not reachable" in line for line in ui.transcript)
