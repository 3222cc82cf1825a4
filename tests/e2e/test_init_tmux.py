"""`kvinstall init` in a real terminal (tmux): keys typed as a person types them, the screen read back.

No host-key check here (answered "no"): the wizard contacts no address in these tests.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvinstall.config.loader import load_file
from kvinstall.config.models import Config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

KVINSTALL = str(Path(sys.executable).parent / "kvinstall")


class Terminal:
    """One tmux session running one command; `rc_file` receives the command's exit code."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.rc_file = workdir / "rc"

    def start(self, argv: list[str]) -> None:
        # The pane lives on after the command so that its last screen can still be read.
        script = f"{shlex.join(argv)}; echo $? > {shlex.quote(str(self.rc_file))}; sleep 600"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", "-c", str(self.workdir),
             "env", "NO_COLOR=1", "sh", "-c", script],
            check=True, timeout=30,
        )  # fmt: skip

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], check=True, capture_output=True,
                              text=True, timeout=30).stdout  # fmt: skip

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear on the screen:\n{screen}")
            time.sleep(0.1)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True, timeout=30)

    def key(self, *names: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *names], check=True, timeout=30)

    def answer(self, question: str, text: str | None = None) -> str:
        """Wait for the question, clear the field's default, type and press Enter (None: keep the default)."""
        screen = self.wait_for(question)
        if text is not None:
            self.key("C-u")
            self.type(text)
        self.key("Enter")
        return screen

    def exit_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self.rc_file.exists() or not self.rc_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the command did not end:\n{self.screen()}")
            time.sleep(0.1)
        return int(self.rc_file.read_text())

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, timeout=30)


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Terminal]:
    t = Terminal(f"kvinit-{os.getpid()}-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_person_writes_a_config_in_a_terminal(term: Terminal, tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    term.start([KVINSTALL, "init", "-o", str(out)])
    term.answer("Cluster name", "Lab_1")  # refused: upper case and '_'
    term.wait_for("is not a valid name")
    term.answer("Cluster name", "lab-1")
    term.answer("Kubernetes version")
    term.answer("Add a host")
    term.answer("Host address", "192.0.2.10")
    term.answer("Role")
    term.answer("SSH user", "ubuntu")
    term.answer("SSH private key file")
    term.answer("SSH port")
    term.wait_for("through a bastion")
    term.type("n")
    term.wait_for("host key now?")
    term.type("n")
    term.wait_for("Done with hosts")
    term.type("add")  # the list filters as one types
    term.key("Enter")
    term.answer("Host address", "192.0.2.11")
    term.answer("Role")
    term.answer("SSH user")  # the previous host's user is the default
    term.answer("SSH private key file")
    term.answer("SSH port")
    term.wait_for("through a bastion")
    term.type("n")
    term.wait_for("host key now?")
    term.type("n")
    term.answer("Done with hosts")
    term.answer("Kubernetes API address")
    term.answer("Kubernetes API port")
    term.answer("Pod network", "10.96.0.0/16")  # refused: overlaps the service network
    term.wait_for("overlaps")
    term.answer("Pod network", "10.32.0.0/16")
    term.answer("Service network")
    term.answer("join network")
    screen = term.wait_for("Pod network gateway")
    assert "10.32.0.1" in screen  # the default follows the pod network just typed
    term.answer("Pod network gateway")
    term.answer("Cluster DNS service address")
    term.answer("Tunnel interface")
    term.answer("StorageClass for VM disks")
    term.answer("ReadWriteMany StorageClass", "cephfs")
    term.answer("live migration")
    term.answer("snapshots")
    term.answer("GPUs for VMs")
    term.answer("/dev/kvm")
    term.answer("How do users log in?")
    term.answer("Install Kyverno")
    term.answer("Policy mode")
    term.answer("Install MetalLB")
    term.answer("Install Longhorn")
    term.answer("Install cert-manager")
    term.answer("Install Multus")
    term.answer("Done with workspaces")
    term.answer("Air-gapped install")
    screen = term.wait_for("Write the file")
    for line in ("Cluster: lab-1, Kubernetes v1.34.4", "Hosts: 1 control plane, 1 worker(s): 192.0.2.10, 192.0.2.11",
                 "Storage: VM disks (cluster default), ReadWriteMany cephfs"):
        assert line in screen
    # Edit one section from the review screen: only that step runs again.
    term.type("Edit Storage")
    term.key("Enter")
    term.answer("StorageClass for VM disks", "ceph-rbd")
    term.answer("ReadWriteMany StorageClass")
    screen = term.wait_for("VM disks ceph-rbd")
    term.answer("Write the file")
    assert term.exit_code() == 0
    assert f"wrote {out}" in term.wait_for("wrote")

    expected = Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster",
        "metadata": {"name": "lab-1"}, "ssh": {"user": "ubuntu"},
        "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}, {"address": "192.0.2.11", "role": "worker"}],
        "network": {"podCIDR": "10.32.0.0/16"},
        "storage": {"defaultClass": "ceph-rbd", "rwxClass": "cephfs"},
    })  # fmt: skip
    assert load_file(out).config == expected
    validate = subprocess.run([KVINSTALL, "validate", "-f", str(out)], capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr
    assert "valid" in validate.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml", "rc"]  # no temp file left


def test_ctrl_c_leaves_no_file(term: Terminal, tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    term.start([KVINSTALL, "init", "-o", str(out)])
    term.answer("Cluster name", "lab")
    term.answer("Kubernetes version")
    term.wait_for("Add a host")
    term.key("C-c")
    assert term.exit_code() == 130
    assert "interrupted; nothing written" in term.wait_for("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rc"]
