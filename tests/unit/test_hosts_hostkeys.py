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


def test_the_key_kubeone_is_shown_is_chosen_by_its_clients_preference(tmp_path: Path) -> None:
    from kvinstall.hosts.hostkeys import kubeone_choice, kubeone_decide

    keys = {kind: keypair(tmp_path, f"c_{kind}", kind) for kind in ("ed25519", "ecdsa", "rsa")}
    known = {kind: KnownKey(k.get_name(), k.asbytes()) for kind, k in keys.items()}
    assert kubeone_choice(list(known.values())) == known["ecdsa"]
    assert kubeone_choice([known["ed25519"], known["rsa"]]) == known["rsa"]
    assert kubeone_choice([known["ed25519"]]) == known["ed25519"]
    assert kubeone_choice([]) is None
    ecdsa = keys["ecdsa"]
    # recorded: trusted; another key of its type on record: changed; only other types: unknown (no
    # mismatch: the host was verified with those)
    assert kubeone_decide(ecdsa.get_name(), ecdsa.asbytes(), list(known.values())) == "trusted"
    other = keypair(tmp_path, "other_ecdsa", "ecdsa")
    assert kubeone_decide(other.get_name(), other.asbytes(), [known["ecdsa"]]) == "changed"
    assert kubeone_decide(ecdsa.get_name(), ecdsa.asbytes(), [known["ed25519"]]) == "unknown"


def test_keys_on_record_for_a_pinned_host_and_recording_another_type(tmp_path: Path) -> None:
    ed, ec, rsa = (keypair(tmp_path, f"p_{k}", k) for k in ("ed25519", "ecdsa", "rsa"))
    user = tmp_path / "user_known_hosts"
    user.write_text(f"10.0.0.9 {rsa.get_name()} {rsa.get_base64()}\n")
    policy = HostKeyPolicy(tmp_path / "own", user_known_hosts=[user])
    pinned = f"{ed.get_name()} {ed.get_base64()}"
    # pinned: the pin and kvinstall's own records only (the user's known_hosts does not count)
    assert [k.key_type for k in policy.on_record("10.0.0.9", 22, pinned=pinned)] == ["ssh-ed25519"]
    policy.record("10.0.0.9", 22, ec)
    policy.record("10.0.0.9", 22, ec)  # once
    assert (tmp_path / "own").read_text().count("ecdsa") == 1
    assert [k.key_type for k in policy.on_record("10.0.0.9", 22, pinned=pinned)] == [
        "ssh-ed25519", "ecdsa-sha2-nistp256"
    ]  # fmt: skip
    assert {k.key_type for k in policy.on_record("10.0.0.9", 22)} == {"ecdsa-sha2-nistp256", "ssh-rsa"}
