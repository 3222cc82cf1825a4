"""`kvinstall preflight` as a person runs it, against real sshd hosts: the command runs inside the lab's
network namespace (the only place the lab hosts can be reached from), with a real known_hosts flow."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from substrate.host_lab import HostSpec

pytestmark = pytest.mark.e2e

CENTOS_7 = 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nVERSION_ID="7"\n'
DEBIAN_12 = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
)


def write_config(lab: Any, path: Path, pin: bool) -> None:
    hosts = []
    for i, host in enumerate(lab.hosts.values()):
        h = {"address": host.ip, "role": "controlPlane" if i == 0 else "worker", "hostname": f"node-{i}"}
        if pin:
            h["hostPublicKey"] = host.host_key_line
        hosts.append(h)
    path.write_text(yaml.safe_dump({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "pf"},
        "ssh": {"privateKeyFile": str(lab.client_keys.ed25519), "useAgent": False, "connectTimeout": 5},
        "hosts": hosts, "storage": {"rwxClass": "nfs"},
    }))  # fmt: skip


def preflight(lab: Any, cfg: Path, *args: str) -> Any:
    env = {**os.environ, "HOME": str(cfg.parent)}  # no user known_hosts: only kvinstall's own
    argv = [sys.executable, "-m", "kvinstall", "preflight", "-f", str(cfg), "--state-dir", str(cfg.parent / "st"),
            *args]  # fmt: skip
    return lab.run_in_lab(argv, capture_output=True, text=True, env=env, timeout=120)


def test_preflight_table_json_exit_codes_and_host_keys(host_lab: Any, tmp_path: Path) -> None:
    lab = host_lab([HostSpec("good", os_release=DEBIAN_12, kvm=True),
                    HostSpec("old", os_release=CENTOS_7, kvm=False)])  # fmt: skip
    cfg = tmp_path / "pf.yaml"
    write_config(lab, cfg, pin=False)

    # Unknown host keys: refused with the fingerprint, exit 6, nothing trusted.
    res = preflight(lab, cfg, "--output", "json")
    assert res.returncode == 6, res.stderr
    assert "unknown host key SHA256:" in res.stdout + res.stderr
    assert not (tmp_path / "st" / "known_hosts").exists() or not (tmp_path / "st" / "known_hosts").read_text()

    # --accept-new-host-keys records them; then the checks run: the CentOS host without /dev/kvm fails.
    res = preflight(lab, cfg, "--accept-new-host-keys", "--output", "json")
    assert res.returncode == 5, res.stderr
    report = json.loads(res.stdout)
    old = lab["old"].ip
    failed = {(r["host"].split(":")[0], r["check"]) for r in report["results"] if r["status"] == "fail"}
    assert (old, "os.supported") in failed
    assert (old, "cpu.virtualization") in failed or (old, "dev.kvm") in failed
    assert not {c for h, c in failed if h == lab["good"].ip} & {"os.supported", "dev.kvm"}
    remedies = {r["check"]: r.get("remedy", "") for r in report["results"] if r["host"].startswith(old)}
    assert "useEmulation" in remedies["dev.kvm"] or "useEmulation" in remedies["cpu.virtualization"]
    known = (tmp_path / "st" / "known_hosts").read_text()
    assert lab["good"].host_key_line.split()[1] in known

    # The table for people, with a skipped check shown as a warning.
    res = preflight(lab, cfg, "--skip-check", "os.supported")
    assert res.returncode == 5
    assert "Preflight" in res.stdout and "FAIL" in res.stdout
    assert "preflight check 'os.supported' skipped by request" in res.stderr
    assert "fix:" in res.stdout  # remedies printed under the failures

    # An unknown check id is a usage error.
    assert preflight(lab, cfg, "--skip-check", "no.such.check").returncode == 64
