"""The real kubeone binary: v1.13.7 built from its release sources in ../shared/upstream/kubeone by
hack/build-binaries.sh, in the binary cache.

What is safe to run here: `version`, `config images list -m` (reads the manifest only), `config dump
-m` (reads the manifest, then over SSH runs `hostname -f` and reads /etc/os-release on every host
whose hostname or OS the manifest does not give: read-only), and failures that stop before a host is
touched. NEVER its `apply` or `reset` against lab hosts: they share this machine's filesystem, and
KubeOne installs packages and rewrites system configuration on its targets.

- ``kubeone_bin`` (session fixture): the binary's path, checked to be the expected version.
- ``kubeone(binary, *args, netns=None, env=None)``: run it (inside a lab's network namespace when
  ``netns`` is given), output captured.
- ``isolated_kubeone(binary, directory)``: a wrapper script that runs the binary in an empty network
  namespace (``unshare -n``), for runs that must not reach any host even if they got that far.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from .kube_api import require_binary

KUBEONE_VERSION = "v1.13.7"
# KubeOne retries a failing step for about 8 minutes; a dump of a good manifest takes seconds.
DUMP_TIMEOUT = 300


def kubeone(
    binary: Path, *args: str, netns: str | None = None, env: Mapping[str, str] | None = None,
    timeout: float = DUMP_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    argv = [str(binary), *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(env) if env is not None else None)  # fmt: skip


def isolated_kubeone(binary: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "kubeone"
    wrapper.write_text(f'#!/bin/sh\nexec unshare -n -- {binary} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture(scope="session")
def kubeone_bin() -> Path:
    path = require_binary("kubeone")
    out = kubeone(path, "version", env={"PATH": os.environ.get("PATH", "")}, timeout=60)
    version = json.loads(out.stdout)["kubeone"]["gitVersion"]
    assert version == KUBEONE_VERSION, f"{path} is kubeone {version}, want {KUBEONE_VERSION}: rebuild it"
    return path
