"""The local state directory: logs, journal, rendered KubeOne manifest, kubeconfig (0600).

Default: `.kvinstall/<cluster>/` beside the configuration file (as terraform keeps `.terraform/`),
overridden by `--state-dir` or KVINSTALL_STATE_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(config_file: Path, cluster: str, override: Path | None = None) -> Path:
    if override is not None:
        return override
    env = os.environ.get("KVINSTALL_STATE_DIR")
    if env:
        return Path(env)
    return config_file.resolve().parent / ".kvinstall" / cluster


def kubeconfig_path(state: Path) -> Path:
    return state / "kubeconfig"
