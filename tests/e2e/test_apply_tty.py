"""`kvinstall apply` on a terminal, as a person runs it (tmux): the plan, the question, a "no" that
changes nothing (exit 4), then a "yes" and the live view of the phases. The command runs in the root
network namespace, which cannot reach the lab hosts: hence `--skip preflight` (preflight is covered by
test_preflight_cli.py); the apiserver and the local upstream are on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_init_tmux import KVINSTALL, Terminal

from conftest import World, cli_env, kvinstall_writes, lab_config, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


class ApplyTerminal(Terminal):
    """A colour terminal (no NO_COLOR): the live view, not plain lines."""

    def start_env(self, argv: list[str], env: dict[str, str]) -> None:
        script = f"{shlex.join(argv)}; echo $? > {shlex.quote(str(self.rc_file))}; sleep 600"
        pairs = [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", "-c", str(self.workdir),
             "env", "-i", *pairs, "TERM=xterm-256color", "sh", "-c", script],
            check=True, timeout=30,
        )  # fmt: skip


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[ApplyTerminal]:
    t = ApplyTerminal(f"kvapply-{os.getpid()}-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_person_declines_then_applies_in_a_terminal(
    world_env: World, host_lab: Any, terminal: ApplyTerminal, tmp_path: Path
) -> None:
    world = world_env
    lab = host_lab(3)
    cfg = write_config(lab_config(world, lab), tmp_path / "cluster.yaml")
    argv = [KVINSTALL, "apply", "-f", str(cfg), "--skip", "preflight", "--state-dir", str(tmp_path / "state")]
    env = cli_env(world, tmp_path / "home")

    mark = world.api.audit_mark()
    terminal.start_env(argv, env)
    screen = terminal.wait_for("Apply this plan? [yes/no]:", timeout=120)
    assert re.search(r"Summary: \d+ to create", screen)  # the end of the plan; its start scrolled off
    terminal.type("no")
    terminal.key("Enter")
    assert terminal.exit_code() == 4
    assert "declined: nothing was changed" in terminal.screen()
    assert kvinstall_writes(world, mark) == []
    terminal.kill()
    terminal.rc_file.unlink()

    terminal.start_env(argv, env)
    terminal.wait_for("Apply this plan? [yes/no]:", timeout=120)
    terminal.type("yes")
    terminal.key("Enter")
    assert terminal.exit_code(timeout=240) == 0, terminal.screen()
    screen = terminal.screen()
    assert "ok: cluster e2e matches" in screen
    for title in ("Host preflight", "Kube-OVN v1.16.2", "KubeVirt v1.8.4", "Workspaces", "Verify and report"):
        assert title in screen, title
    assert "✓" in screen and "skipped by --skip" in screen
