"""Hostile configs and known_hosts files through the real CLI.

- `validate` on alias bombs (at the top, inside connector config, in a KubeV file): exit 3 with the
  reason, in a process limited to 1 GiB of address space (the bomb would need far more).
- `preflight` against real sshd hosts (tests/substrate/host_lab.py, run inside the lab's network
  namespace) with a user known_hosts holding `@revoked` and `@cert-authority` lines, and with only
  the host's RSA key on record while the host also offers ed25519.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from substrate.host_lab import HostSpec

pytestmark = pytest.mark.integration

HEAD = "apiVersion: kvinstall.io/v1alpha1\nkind: VirtualizationCluster\nmetadata: {name: lab}\n"
HOSTS = "hosts: [{address: 192.0.2.10, role: controlPlane}]\n"


def laughs(levels: int, indent: str) -> str:
    out = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    out += [f"{indent}l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels + 1)]
    return "\n".join(out) + "\n"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(path.parent), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "kvinstall", "validate", "-f", str(path)], env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        HEAD + HOSTS + "x-bomb:\n" + laughs(9, "  "),
        HEAD
        + HOSTS
        + "auth:\n  mode: oidc\n  issuer: https://dex.example.test/dex\n  oidc:\n    connectors:\n"
        "      - type: ldap\n        id: corp\n        name: Corp\n        config:\n"
        + laughs(9, "          "),
        "apiVersion: virtualization.k8c.io/v1alpha1\nkind: KubeVCluster\nmetadata: {name: lab}\n"
        "spec:\n" + laughs(9, "  "),
    ],
    ids=["top", "connector-config", "kubev"],
)
def test_alias_bombs_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert path.stat().st_size < 1200
    proc = validate(path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "expands to more than 200000 values once its aliases" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


# --- known_hosts markers against real sshd ------------------------------------------------------


def write_config(lab: Any, path: Path) -> None:
    hosts = [
        {"address": h.ip, "role": "controlPlane", "hostname": f"node-{i}"}
        for i, h in enumerate(lab.hosts.values())
    ]
    path.write_text(yaml.safe_dump({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "kh"},
        "ssh": {"privateKeyFile": str(lab.client_keys.ed25519), "useAgent": False, "connectTimeout": 5},
        "hosts": hosts, "storage": {"rwxClass": "nfs"},
    }))  # fmt: skip


def preflight(lab: Any, home: Path, cfg: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "kvinstall", "preflight", "-f", str(cfg), "--state-dir", str(cfg.parent / "st"),
            "--output", "json"]  # fmt: skip
    proc = lab.run_in_lab(argv, capture_output=True, text=True, env=env, timeout=180)
    return proc, json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}


def user_known_hosts(home: Path, text: str) -> None:
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text(text)


def test_known_hosts_markers_and_key_types(host_lab: Any, tmp_path: Path) -> None:
    rsa_key = tmp_path / "ssh_host_rsa_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa_key)], check=True)
    lab = host_lab([HostSpec("kh", extra_sshd_config=f"HostKey {rsa_key}")])
    host = lab["kh"]
    rsa_line = " ".join(Path(f"{rsa_key}.pub").read_text().split()[:2])
    home = tmp_path / "home"
    cfg = tmp_path / "kh.yaml"
    write_config(lab, cfg)

    # Only the host's RSA key is on record, the host offers ed25519 too: it is asked for RSA first,
    # as OpenSSH would, and trusted (no false "changed key" alarm). A @cert-authority line is noted.
    user_known_hosts(home, f"@cert-authority *.lab.test {host.host_key_line}\n{host.ip} {rsa_line}\n")
    proc, report = preflight(lab, home, cfg)
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr  # reached; checks may fail on a lab host
    assert report["hostErrors"] == {} and report["results"]
    assert any(
        "@cert-authority (host certificates) is not supported; line skipped" in w for w in report["warnings"]
    )

    # The same key, also listed @revoked: refused, exit 6, naming the file and line.
    user_known_hosts(home, f"{host.ip} {rsa_line}\n@revoked {host.ip} {rsa_line}\n")
    proc, report = preflight(lab, home, cfg)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "is revoked (@revoked in" in proc.stderr and "known_hosts:2" in proc.stderr
    assert "Traceback" not in proc.stderr

    # Only ed25519 revoked while RSA is also on record: the RSA key is asked for first and trusted.
    user_known_hosts(home, f"@revoked {host.ip} {host.host_key_line}\n{host.ip} {rsa_line}\n")
    proc, report = preflight(lab, home, cfg)
    assert proc.returncode in (0, 5) and report["hostErrors"] == {}, proc.stdout + proc.stderr
