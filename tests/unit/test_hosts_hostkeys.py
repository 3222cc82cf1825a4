"""Host-key decisions and fingerprints (fingerprints compared with the real ssh-keygen)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from kvinstall.errors import SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy, KnownKey, decide, fingerprint, host_id


def keypair(tmp: Path, name: str, kind: str = "ed25519") -> paramiko.PKey:
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return paramiko.PKey.from_path(str(path))


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    for kind in ("ed25519", "ecdsa", "rsa"):
        key = keypair(tmp_path, f"k_{kind}", kind)
        out = subprocess.run(
            ["ssh-keygen", "-lf", str(tmp_path / f"k_{kind}.pub")], capture_output=True, text=True, check=True
        ).stdout
        assert out.split()[1] == fingerprint(key)


def test_host_id() -> None:
    assert host_id("10.0.0.1", 22) == "10.0.0.1"
    assert host_id("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def test_decide() -> None:
    a, b = KnownKey("ssh-ed25519", b"A"), KnownKey("ssh-ed25519", b"B")
    assert decide("ssh-ed25519", b"A", [a], accept_new=False).verdict == "trusted"
    assert decide("ssh-ed25519", b"B", [a], accept_new=True).verdict == "changed"  # never accepted
    assert decide("ssh-rsa", b"C", [a], accept_new=True).verdict == "other-type"  # refused too
    assert decide("ssh-ed25519", b"B", [], accept_new=False).verdict == "unknown"
    assert decide("ssh-ed25519", b"B", [], accept_new=True).verdict == "accepted-new"
    d = decide("ssh-ed25519", b"B", [a, b], accept_new=False)
    assert d.verdict == "trusted"


def test_policy_unknown_accept_new_changed(tmp_path: Path) -> None:
    k1 = keypair(tmp_path, "host1")
    k2 = keypair(tmp_path, "host2")
    own = tmp_path / "state" / "known_hosts"
    strict = HostKeyPolicy(own, user_known_hosts=[])
    with pytest.raises(SSHError) as e:
        strict.verify("10.0.0.1", 22, k1)
    assert fingerprint(k1) in str(e.value) and "unknown host key" in str(e.value)
    assert strict.untrusted == {"10.0.0.1": fingerprint(k1)}
    assert not own.exists()

    tofu = HostKeyPolicy(own, user_known_hosts=[], accept_new=True)
    assert tofu.verify("10.0.0.1", 2222, k1).verdict == "accepted-new"
    assert own.read_text().startswith("[10.0.0.1]:2222 ssh-ed25519 ")
    assert own.stat().st_mode & 0o777 == 0o600

    # A new policy reads the recorded key: trusted; a different key is refused with both fingerprints.
    again = HostKeyPolicy(own, user_known_hosts=[], accept_new=True)
    assert again.verify("10.0.0.1", 2222, k1).verdict == "trusted"
    with pytest.raises(SSHError) as e:
        again.verify("10.0.0.1", 2222, k2)
    msg = str(e.value)
    assert "CHANGED" in msg and fingerprint(k1) in msg and fingerprint(k2) in msg
    assert own.read_text().count("\n") == 1  # the changed key was not recorded


def test_user_known_hosts_and_pinned(tmp_path: Path) -> None:
    k1 = keypair(tmp_path, "host1")
    k2 = keypair(tmp_path, "host2")
    user = tmp_path / "user_known_hosts"
    user.write_text(f"10.0.0.5 {k1.get_name()} {k1.get_base64()}\n")
    pol = HostKeyPolicy(tmp_path / "own", user_known_hosts=[user])
    assert pol.verify("10.0.0.5", 22, k1).verdict == "trusted"
    pinned = f"{k2.get_name()} {k2.get_base64()}"
    assert pol.verify("10.0.0.9", 22, k2, pinned=pinned).verdict == "trusted"
    with pytest.raises(SSHError) as e:
        pol.verify("10.0.0.9", 22, k1, pinned=pinned)
    assert fingerprint(k1) in str(e.value) and fingerprint(k2) in str(e.value)
