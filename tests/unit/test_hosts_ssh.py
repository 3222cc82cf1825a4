"""Pure parts of the SSH layer: command quoting, ~/.ssh/config resolution, sudo error detection."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import paramiko

from kvinstall.config.models import Config
from kvinstall.hosts.ssh import build_command, is_sudo_password_error, parse_proxy_jump, resolve_targets

EVIL = [
    "x;touch /tmp/pwned",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    'a\' b "c" \\ d',
    "eth0 && rm -rf /",
    "new\nline",
    "*",
    "",
]


def test_build_command_round_trips_every_argument() -> None:
    argv = ["printf", "%s\\n", *EVIL]
    cmd = build_command(argv, sudo=False)
    assert shlex.split(cmd) == argv
    assert build_command(["id"], sudo=True) == "sudo -n -- id"


def test_quoted_command_run_by_a_real_shell_does_nothing_else(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = [v.replace("/tmp/pwned", str(marker)) for v in EVIL]
    cmd = build_command(["printf", "%s\\0", *values], sudo=False)
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, check=True, cwd=tmp_path).stdout
    assert out.split(b"\0")[:-1] == [v.encode() for v in values]
    assert not marker.exists()


def test_sudo_password_detection() -> None:
    assert is_sudo_password_error(1, "sudo: a password is required\n")
    assert is_sudo_password_error(1, "sudo: a terminal is required to read the password")
    assert not is_sudo_password_error(0, "sudo: a password is required")
    assert not is_sudo_password_error(1, "ls: cannot access")


def test_parse_proxy_jump() -> None:
    assert parse_proxy_jump("jump") == (None, "jump", None)
    assert parse_proxy_jump("ops@jump:2200,other") == ("ops", "jump", 2200)
    assert parse_proxy_jump("[fd00::1]:22") == (None, "fd00::1", 22)


def cfg(**extra: Any) -> Config:
    base: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "t"},
    }
    base.update(extra)
    return Config.model_validate(base)


def test_resolve_targets_precedence(tmp_path: Path) -> None:
    ssh_config = paramiko.SSHConfig.from_text(
        "Host 10.0.0.*\n  User fromconfig\n  Port 2200\n"
        "  IdentityFile ~/.ssh/lab_key\n  ProxyJump ops@jump:2022\n"
    )
    c = cfg(
        hosts=[
            {"address": "10.0.0.1", "role": "controlPlane"},
            {
                "address": "10.0.0.2",
                "role": "worker",
                "user": "alice",
                "port": 22,
                "privateKeyFile": "/k/host",
            },
            {"address": "10.9.0.3", "role": "worker"},
        ]
    )
    a, b, other = resolve_targets(c, ssh_config)
    assert (a.user, a.port, a.name) == ("fromconfig", 2200, "10.0.0.1:2200")
    assert a.key_files[0].endswith("/.ssh/lab_key") and not a.key_files[0].startswith("~")
    assert a.bastion is not None and (a.bastion.address, a.bastion.port, a.bastion.user) == (
        "jump",
        2022,
        "ops",
    )
    assert (b.user, b.port, b.key_files[0]) == ("alice", 22, "/k/host")
    assert (other.user, other.port, other.bastion) == ("root", 22, None)


def test_explicit_ssh_section_beats_ssh_config() -> None:
    ssh_config = paramiko.SSHConfig.from_text("Host *\n  User fromconfig\n  Port 2200\n")
    c = cfg(
        ssh={"user": "root", "port": 22, "bastion": {"address": "192.0.2.1", "user": "jump"}},
        hosts=[{"address": "10.0.0.1", "role": "controlPlane"}],
    )
    (t,) = resolve_targets(c, ssh_config)
    assert (t.user, t.port) == ("root", 22)
    assert t.bastion is not None and (t.bastion.address, t.bastion.user) == ("192.0.2.1", "jump")
