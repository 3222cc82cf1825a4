"""The SSH layer and preflight against real sshd hosts in network namespaces (the host_lab fixture)."""

from __future__ import annotations

import shlex
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest

from kvinstall.config.models import Config
from kvinstall.errors import SSHError
from kvinstall.hosts.facts import Peer, facts_script, parse_facts
from kvinstall.hosts.hostkeys import HostKeyPolicy, fingerprint_bytes, parse_public_key_line
from kvinstall.hosts.preflight import run_preflight
from kvinstall.hosts.ssh import HostTarget, SSHPool, resolve_targets
from substrate.host_lab import UBUNTU_2404, HostSpec, Lab

pytestmark = pytest.mark.integration

CENTOS_7 = 'NAME="CentOS Linux"\nVERSION_ID="7"\nID="centos"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n'
LabFactory = Callable[[int | Sequence[HostSpec]], Lab]


def make_config(lab: Lab, hosts: list[dict[str, Any]], **ssh: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "ssh": {
                "privateKeyFile": str(lab.client_keys.ed25519),
                "useAgent": False,
                "connectTimeout": 3,
                "commandTimeout": 30,
                **ssh,
            },
            "hosts": hosts,
        }
    )


def pool_for(lab: Lab, tmp_path: Path, *, accept_new: bool = False) -> SSHPool:
    policy = HostKeyPolicy(
        tmp_path / "own_known_hosts", user_known_hosts=[lab.known_hosts], accept_new=accept_new
    )
    return SSHPool(policy, parallelism=8, socket_factory=lab.connect)


def preflight(lab: Lab, config: Config, tmp_path: Path, **kw: Any) -> Any:
    kw.setdefault("accept_new_host_keys", False)
    kw.setdefault("skip", set())
    kw.setdefault("user_known_hosts", [lab.known_hosts])
    return run_preflight(
        config,
        known_hosts_path=tmp_path / "own_known_hosts",
        socket_factory=lab.connect,
        ssh_config_path=tmp_path / "no-ssh-config",
        **kw,
    )


def test_commands_directly_and_through_the_bastion(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(
        [
            HostSpec("jump", bastion=True),
            HostSpec("h1", authorized_key_types=("ed25519", "ecdsa", "rsa")),
            HostSpec("h2", behind_bastion=True),
        ]
    )
    jump = lab["jump"]
    config = make_config(
        lab,
        [
            {"address": lab["h1"].ip, "role": "controlPlane"},
            {"address": lab["h2"].ip, "role": "worker", "bastion": {"address": jump.ip}},
        ],
    )
    targets = resolve_targets(config, None)
    assert targets[1].bastion is not None and targets[0].bastion is None
    with pool_for(lab, tmp_path) as pool:
        out = pool.run_all(targets, lambda c: c.run(["hostname"]).check().stdout.strip())
        assert out == {lab["h1"].ip: "h1", lab["h2"].ip: "h2"}
        # one connection per host, reused for later commands
        conn = pool.connect(targets[1])
        assert pool.connect(targets[1]) is conn
        assert conn.run(["sh", "-c", "echo $SSH_CONNECTION"]).stdout.split()[0] == jump.inner_ip
        # ecdsa and rsa key files work as well as ed25519
        for kind in ("ecdsa", "rsa"):
            t = HostTarget(
                name=f"h1-{kind}",
                address=lab["h1"].ip,
                key_files=(str(lab.client_keys.path(kind)),),
                use_agent=False,
                connect_timeout=3,
            )
            assert pool.connect(t).run(["whoami"]).stdout.strip() == "root"


def test_non_root_user_with_sudo(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab([HostSpec("ok", sudo="nopasswd"), HostSpec("pw", sudo="password")])
    config = make_config(
        lab,
        [{"address": lab["ok"].ip, "role": "controlPlane"}, {"address": lab["pw"].ip, "role": "worker"}],
        user="kvadmin",
    )
    ok, pw = resolve_targets(config, None)
    with pool_for(lab, tmp_path) as pool:
        assert pool.connect(ok).run(["id", "-u"]).stdout.strip() == "0"  # through sudo -n
        assert pool.connect(ok).run(["id", "-un"], sudo=False).stdout.strip() == "kvadmin"
        with pytest.raises(SSHError) as e:
            pool.connect(pw).run(["id", "-u"])
        assert "password" in str(e.value) and "NOPASSWD" in str(e.value) and lab["pw"].ip in str(e.value)
    report = preflight(lab, config, tmp_path)
    assert report.result(lab["ok"].ip, "sudo.passwordless").status == "pass"
    bad = report.result(lab["pw"].ip, "sudo.passwordless")
    assert bad.status == "fail" and "NOPASSWD" in bad.remedy


def test_other_os_without_kvm_fails_the_right_checks(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(
        [
            HostSpec("good", os_release=UBUNTU_2404, kvm=True, user=None),
            HostSpec("old", os_release=CENTOS_7, kvm=False, cpus=1, user=None),
        ]
    )
    good, old = lab["good"].ip, lab["old"].ip
    config = make_config(lab, [{"address": good, "role": "controlPlane"}, {"address": old, "role": "worker"}])
    report = preflight(lab, config, tmp_path, skip={"time.sync"})
    assert not report.host_errors
    assert report.facts[good].os_id == "ubuntu" and report.facts[old].os_id == "centos"
    assert report.facts[old].cpus == 1 and report.facts[old].hostname == "old"

    r = report.result(old, "os.supported")
    assert r.status == "fail" and "CentOS Linux 7" in r.message
    r = report.result(old, "dev.kvm")
    assert r.status == "fail" and "components.kubevirt.useEmulation" in r.remedy
    assert report.result(old, "cpu.worker").status == "warn"
    assert report.result(good, "os.supported").status == "pass"
    assert report.result(good, "dev.kvm").status == "pass"
    # the two hosts reach each other's SSH port, hostnames differ, the skipped check is visible
    assert report.result(good, "network.reachability").status == "pass"
    assert report.result(old, "hostname.unique").status == "pass"
    assert report.result(old, "time.sync").status == "skipped"
    assert "time.sync" in report.warnings[0]
    assert not report.ok
    # with emulation on, the virtualization checks are gone
    emu = make_config(lab, [{"address": old, "role": "worker"}])
    emu = emu.model_copy(
        update={
            "components": emu.components.model_copy(
                update={"kubevirt": emu.components.kubevirt.model_copy(update={"use_emulation": True})}
            )
        }
    )
    report = preflight(lab, emu, tmp_path)
    assert report.result(old, "dev.kvm") is None


def test_down_unreachable_and_dropped_hosts_fail_alone(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(4)
    config = make_config(lab, [{"address": lab[f"h{i}"].ip, "role": "worker"} for i in range(1, 5)])
    lab["h2"].stop_sshd()  # refused
    lab["h3"].link_down()  # packets vanish: the connect times out (connectTimeout 3 s)
    report = preflight(lab, config, tmp_path)
    assert set(report.host_errors) == {lab["h2"].ip, lab["h3"].ip}
    assert "cannot connect" in str(report.host_errors[lab["h2"].ip])
    assert "within 3s" in str(report.host_errors[lab["h3"].ip])
    assert all(str(e).startswith(ip) for ip, e in report.host_errors.items())  # each names its host
    assert report.result(lab["h1"].ip, "os.supported") is not None
    # the healthy hosts see the broken ones as unreachable
    assert report.result(lab["h1"].ip, "network.reachability").status == "fail"
    with pytest.raises(SSHError):
        report.raise_for_failures()

    # a connection dropped while a command runs
    targets = [t for t in resolve_targets(config, None) if t.address in (lab["h1"].ip, lab["h4"].ip)]
    victim = lab["h4"]
    with pool_for(lab, tmp_path) as pool:
        for t in targets:
            pool.connect(t)
        killer = threading.Timer(1.0, victim.kill_sessions)
        killer.start()
        try:
            res = pool.run_all(
                targets,
                lambda c: (
                    c.run(["sleep", "20"] if c.target.address == victim.ip else ["hostname"])
                    .check()
                    .stdout.strip()
                ),
            )
        finally:
            killer.cancel()
        assert res[lab["h1"].ip] == "h1"
        err = res[victim.ip]
        assert isinstance(err, SSHError) and victim.ip in str(err) and "dropped" in str(err), err
        # the command timeout bounds a command that hangs
        with pytest.raises(SSHError) as e:
            pool.connect(targets[0]).run(["sleep", "20"], timeout=1)
        assert "timed out after 1s" in str(e.value)


def test_changed_and_unknown_host_keys(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(2)
    h1, h2 = lab["h1"], lab["h2"]
    config = make_config(lab, [{"address": h1.ip, "role": "controlPlane"}])
    real_fp = fingerprint_bytes(parse_public_key_line(h1.host_key_line)[1])
    # known_hosts claims h1 has h2's key: h1's real key is a CHANGED key
    forged = tmp_path / "forged_known_hosts"
    forged.write_text(f"{h1.ip} {h2.host_key_line}\n")
    other_fp = fingerprint_bytes(parse_public_key_line(h2.host_key_line)[1])
    for accept in (False, True):
        report = preflight(lab, config, tmp_path, user_known_hosts=[forged], accept_new_host_keys=accept)
        msg = str(report.host_errors[h1.ip])
        assert "CHANGED" in msg and real_fp in msg and other_fp in msg
    assert not (tmp_path / "own_known_hosts").exists()

    # unknown: refused strictly (fingerprint listed for the plan), recorded with --accept-new-host-keys
    report = preflight(lab, config, tmp_path, user_known_hosts=[])
    assert "unknown host key" in str(report.host_errors[h1.ip])
    assert report.untrusted_host_keys == {h1.ip: real_fp}
    report = preflight(lab, config, tmp_path, user_known_hosts=[], accept_new_host_keys=True)
    assert not report.host_errors and report.accepted_host_keys == {h1.ip: real_fp}
    report = preflight(lab, config, tmp_path, user_known_hosts=[])  # now trusted from our own file
    assert not report.host_errors and not report.accepted_host_keys

    # a pinned key wins over known_hosts
    pinned = make_config(lab, [{"address": h1.ip, "role": "controlPlane", "hostPublicKey": h2.host_key_line}])
    report = preflight(lab, pinned, tmp_path)
    assert "pinned" in str(report.host_errors[h1.ip]) and real_fp in str(report.host_errors[h1.ip])


def test_command_injection_through_values_does_nothing(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(2)
    h1, h2 = lab["h1"], lab["h2"]
    marker = f"/tmp/kvtest-pwned-{uuid.uuid4().hex}"
    evil = [
        f"eth0;touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"x' ; touch {marker} ; '",
        f"x\ntouch {marker}",
    ]
    # model validation already rejects such host names and addresses
    for field, value in (("hostname", evil[0]), ("address", evil[1])):
        host = {"address": h1.ip, "role": "controlPlane", field: value}
        with pytest.raises(pydantic.ValidationError):
            make_config(lab, [host])
    # free-text values (an interface name) pass validation: the quoting layer is what protects
    config = make_config(lab, [{"address": h1.ip, "role": "controlPlane", "tunnelInterface": evil[0]}])
    (t,) = resolve_targets(config, None)
    with pool_for(lab, tmp_path) as pool:
        conn = pool.connect(t)
        out = conn.run(["printf", "%s\\0", config.hosts[0].tunnel_interface or "", *evil]).check().stdout
        assert out.split("\0")[:-1] == [evil[0], *evil]
        # and through the facts script (peer addresses)
        facts = parse_facts(conn.run_script(facts_script([Peer(v) for v in evil] + [Peer(h2.ip)], reach_timeout=30)).stdout)
        assert facts.reach[f"{h2.ip}:22"] is True
        # sudo path too
        conn.run(["echo", *evil], sudo=True).check()
        for h in (h1, h2):
            assert h.run(["test", "-e", marker]).returncode != 0, f"{marker} created on {h.name}"
    assert shlex.split(shlex.join(evil)) == evil


def test_more_hosts_than_parallel_slots(host_lab: LabFactory, tmp_path: Path) -> None:
    lab = host_lab(6)
    config = make_config(
        lab, [{"address": h.ip, "role": "worker"} for h in lab.hosts.values()], parallelism=2
    )
    report = preflight(lab, config, tmp_path)
    assert not report.host_errors and len(report.facts) == 6
    assert {f.hostname for f in report.facts.values()} == {f"h{i}" for i in range(1, 7)}
    assert all(report.result(ip, "hostname.unique").status == "pass" for ip in report.hosts)
    reach = {ip: report.result(ip, "network.reachability") for ip in report.hosts}
    assert all(r.status == "pass" for r in reach.values()), {ip: r.message for ip, r in reach.items()}
    assert report.to_dict()["hosts"] == list(report.hosts)
