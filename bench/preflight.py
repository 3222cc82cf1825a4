#!/usr/bin/env python3
"""Benchmark: preflight facts gathering over SSH, kvinstall vs ansible ad-hoc, 1 / 10 / 50 hosts.

Starts N real sshd processes on 127.0.0.2..(N+1), port 2222 (the whole 127/8 is local; no traffic
leaves the machine), with one generated ed25519 host key and one client key. Then, in the same run:

- kvinstall: `SSHPool.run_all` with the facts script (what `kvinstall preflight` does per host,
  without the host-to-host reachability probes, which would measure N^2 local TCP connects instead
  of SSH), fresh connections each repetition;
- ansible ad-hoc (`ansible all -m shell -a SCRIPT` and `-m raw`), default settings (forks 5, ssh
  connection plugin with ControlPersist), same script, same hosts. ansible-core is installed into a
  temporary venv when no `ansible` is on PATH.

Prints wall times (median of the repetitions) and the ratios the targets are about:
    50 hosts <= 2x the wall time of 1 host;  kvinstall >= 3x faster than ansible.
Usage: python bench/preflight.py [--sizes 1,10,50] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvinstall.config.models import Config
from kvinstall.hosts.facts import facts_script, parse_facts
from kvinstall.hosts.hostkeys import HostKeyPolicy
from kvinstall.hosts.ssh import SSHPool, resolve_targets

PORT = 2222
SSHD = "/usr/sbin/sshd"


def addr(i: int) -> str:
    return f"127.0.0.{i + 2}"


def start_sshds(work: Path, n: int) -> list[subprocess.Popen[bytes]]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "hostkey")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client")], check=True)
    shutil.copy(work / "client.pub", work / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)
    passwd = Path("/etc/passwd").read_text().splitlines()
    (work / "passwd").write_text(
        "\n".join(
            ":".join([*ln.split(":")[:6], "/bin/sh"]) if ln.startswith("root:") else ln for ln in passwd
        )
        + "\n"
    )
    procs = []
    for i in range(n):
        conf = work / f"sshd_{i}.conf"
        conf.write_text(
            f"Port {PORT}\nListenAddress {addr(i)}\nHostKey {work / 'hostkey'}\nPidFile {work / f'sshd_{i}.pid'}\n"
            f"AuthorizedKeysFile {work / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\n"
            "MaxStartups 100:30:200\nMaxSessions 50\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
        )
        # Private mount namespace with a passwd whose root shell is /bin/sh: root's ~/.bashrc on a
        # developer machine (pyenv & co.) would otherwise dominate every session of both tools.
        cmd = f"mount --bind {work / 'passwd'} /etc/passwd && exec {SSHD} -D -e -f {conf}"
        procs.append(
            subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd], stderr=subprocess.DEVNULL
            )
        )
    deadline = time.monotonic() + 20
    for i in range(n):
        while True:
            try:
                socket.create_connection((addr(i), PORT), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"sshd on {addr(i)}:{PORT} did not start") from None
                time.sleep(0.05)
    pub = (work / "hostkey.pub").read_text().split()
    (work / "known_hosts").write_text("".join(f"[{addr(i)}]:{PORT} {pub[0]} {pub[1]}\n" for i in range(n)))
    return procs


def config_for(work: Path, n: int) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "bench"},
            "ssh": {"user": "root", "port": PORT, "privateKeyFile": str(work / "client"), "useAgent": False},
            "hosts": [{"address": addr(i), "role": "worker"} for i in range(n)],
        }
    )


def kvinstall_run(work: Path, n: int) -> float:
    config = config_for(work, n)
    targets = resolve_targets(config, None)
    script = facts_script()
    t0 = time.perf_counter()
    with SSHPool(
        HostKeyPolicy(work / "known_hosts", user_known_hosts=[]), parallelism=config.ssh.parallelism
    ) as pool:
        res = pool.run_all(targets, lambda c: parse_facts(c.run_script(script, timeout=60).check().stdout))
    dt = time.perf_counter() - t0
    bad = {k: v for k, v in res.items() if isinstance(v, Exception) or not v.kernel}
    if bad:
        raise SystemExit(f"kvinstall: failed hosts: {bad}")
    return dt


def find_ansible(work: Path) -> str | None:
    exe = shutil.which("ansible")
    if exe:
        return exe
    venv = Path(tempfile.gettempdir()) / "kvinstall-bench-ansible"
    exe_path = venv / "bin" / "ansible"
    if exe_path.exists():
        return str(exe_path)
    print("ansible not on PATH: installing ansible-core into", venv, flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "ansible-core"], check=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"could not install ansible-core: {exc}", flush=True)
        return None
    return str(exe_path) if exe_path.exists() else None


def ansible_run(ansible: str, work: Path, n: int, module: str) -> float:
    inv = work / f"inventory_{n}.ini"
    inv.write_text(
        "[all]\n"
        + "".join(f"h{i} ansible_host={addr(i)} ansible_port={PORT}\n" for i in range(n))
        + "[all:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={work / 'client'}\n"
        # Only points ssh at the bench's known_hosts (keeps ~/.ssh untouched); checking stays on.
        f"ansible_ssh_common_args=-o UserKnownHostsFile={work / 'known_hosts'}\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
    )
    # A fresh ControlPath directory per run: every run starts cold, as kvinstall's does.
    cp = Path(tempfile.mkdtemp(dir=work, prefix="cp-"))
    env = dict(
        os.environ,
        ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
        ANSIBLE_HOME=str(work / "ansible-home"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp),
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [ansible, "all", "-i", str(inv), "-m", module, "-a", facts_script()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    dt = time.perf_counter() - t0
    if out.returncode != 0 or out.stdout.count("@@end") < n:
        raise SystemExit(f"ansible failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    # Ask each ControlPersist master ansible left behind to exit (they would linger for 60 s).
    for sock in cp.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=10
        )
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-ansible", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="kvbench-") as tmp:
        work = Path(tmp)
        procs = start_sshds(work, max(sizes))
        try:
            ansible = None if args.no_ansible else find_ansible(work)
            rows = []
            for n in sizes:
                kv = statistics.median(kvinstall_run(work, n) for _ in range(args.reps))
                an = an_raw = None
                if ansible:
                    an = statistics.median(ansible_run(ansible, work, n, "shell") for _ in range(args.reps))
                    an_raw = statistics.median(ansible_run(ansible, work, n, "raw") for _ in range(args.reps))
                rows.append((n, kv, an, an_raw))
                print(
                    f"{n:>3} hosts: kvinstall {kv:.3f}s"
                    + (
                        f"  ansible -m shell {an:.3f}s  ansible -m raw {an_raw:.3f}s" if an and an_raw else ""
                    ),
                    flush=True,
                )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)
    base = rows[0][1]
    print(f"\nresults (median of {args.reps}):")
    for n, kv, an, an_raw in rows:
        line = f"{n:>3} hosts: kvinstall {kv:.3f}s = {kv / base:.2f}x the {rows[0][0]}-host time"
        if an and an_raw:
            line += f"; ansible shell {an:.3f}s ({an / kv:.1f}x slower), raw {an_raw:.3f}s ({an_raw / kv:.1f}x slower)"
        print(line)
    if not ansible and not args.no_ansible:
        print("ansible could not be installed: no comparison")


if __name__ == "__main__":
    main()
