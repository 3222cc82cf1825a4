"""The wizard's file replays unchanged: `kvinstall plan` on the written file gives exactly the plan of
the answers the wizard collected (the CLI runs in an empty network namespace: it must reach nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kvinstall import wizard
from kvinstall.catalog import load_catalog
from kvinstall.config.loader import Loaded
from kvinstall.config.models import Config
from kvinstall.config.writer import to_yaml
from kvinstall.edges import Edges
from kvinstall.fsutil import write_atomic
from kvinstall.phases.context import Options
from kvinstall.phases.manager import apply_phases, dry_run
from kvinstall.session import open_session
from unit.test_wizard import MINIMAL, WRITE, drive


def plan_of(config: Config, path: Path, state: Path) -> dict[str, object]:
    """The plan of the answers themselves (in this process, the config object as the wizard made it)."""
    session = open_session(path, state_override=state, loaded=Loaded(config), edges=Edges(artifact_cache=state / "cache"))
    ctx = session.context(Options())
    return dry_run(ctx, apply_phases(ctx)).to_dict()


def cli_plan(path: Path, state: Path) -> dict[str, object]:
    env = {**os.environ, "KVINSTALL_STATE_DIR": str(state), "KVINSTALL_CACHE_DIR": str(state / "cache")}
    res = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "kvinstall", "plan", "-f", str(path), "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(res.stdout)


def test_written_files_plan_exactly_like_the_answers(tmp_path: Path) -> None:
    answered, _ = drive(MINIMAL + WRITE)
    for name, config in (("answers", answered), ("starter", wizard.starter_config(load_catalog()))):
        path = tmp_path / f"{name}.yaml"
        write_atomic(path, to_yaml(config, header=wizard.STARTER_HEADER))
        state = tmp_path / f"state-{name}"
        expected = plan_of(config, path, state)
        got = cli_plan(path, state)
        for key in ("cluster", "summary", "phases"):
            assert got[key] == expected[key], (name, key)
