"""The KubeOne runner against a STAND-IN `kubeone` executable.

This is the one place where a fake is right: a successful `kubeone apply` needs real machines to
install Kubernetes on. The stand-in below is a small shell script put first on PATH; it records its
arguments, prints lines like KubeOne does, and exits with the code a test asks for (KUBEONE_FAKE_EXIT).
Everything on our side (process handling, streaming, exit-code mapping, the 0600 kubeconfig) is real.
The failure paths with the real kubeone binary are in test_kubeone_real.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kvinstall.errors import KubeOneError
from kvinstall.kubeone.runner import KUBEONE_EXIT_CODES, apply, fetch_kubeconfig, run_kubeone

STAND_IN = r"""#!/bin/sh
# STAND-IN for the kubeone binary (tests only).
printf '%s\n' "$@" > "$KUBEONE_FAKE_DIR/args-$1"
case "$1" in
apply)
  echo "INFO[00:00:01 UTC] Determine hostname..."
  echo "INFO[00:00:02 UTC] Running kubeadm preflight checks..."
  if [ -n "$KUBEONE_FAKE_CREDS_COPY" ]; then
    while [ $# -gt 0 ]; do [ "$1" = "-c" ] && cp "$2" "$KUBEONE_FAKE_CREDS_COPY"; shift; done
  fi
  echo "some error detail" >&2
  exit "${KUBEONE_FAKE_EXIT:-0}"
  ;;
kubeconfig)
  if [ "${KUBEONE_FAKE_EXIT:-0}" != 0 ]; then echo "failed to connect" >&2; exit "$KUBEONE_FAKE_EXIT"; fi
  cat <<'KC'
apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://10.0.0.1:6443"}
  name: lab
contexts: []
users: []
KC
  ;;
esac
"""


@pytest.fixture
def kubeone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "kubeone"
    exe.write_text(STAND_IN)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBEONE_FAKE_DIR", str(tmp_path))
    monkeypatch.delenv("KUBEONE_FAKE_EXIT", raising=False)
    manifest = tmp_path / "kubeone.yaml"
    manifest.write_text("apiVersion: kubeone.k8c.io/v1beta2\nkind: KubeOneCluster\n")
    return manifest


def test_success_streams_lines_and_passes_flags(kubeone: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    res = apply(kubeone, extra_args=["--verbose"], on_line=lines.append)
    assert res.exit_code == 0
    assert "INFO[00:00:01 UTC] Determine hostname..." in lines
    assert "some error detail" in lines  # stderr is streamed too
    assert (tmp_path / "args-apply").read_text().split() == [
        "apply", "-m", str(kubeone), "-y", "-l", "json", "--verbose"
    ]  # fmt: skip


@pytest.mark.parametrize("code", sorted(KUBEONE_EXIT_CODES))
def test_each_exit_code_is_named(kubeone: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    monkeypatch.setenv("KUBEONE_FAKE_EXIT", str(code))
    with pytest.raises(KubeOneError) as e:
        apply(kubeone)
    msg = str(e.value)
    assert f"exit code {code} ({KUBEONE_EXIT_CODES[code]})" in msg
    assert "some error detail" in msg
    assert e.value.exit_code == 7


def test_kubeconfig_written_0600(kubeone: Path, tmp_path: Path) -> None:
    dest = tmp_path / "state" / "kubeconfig"
    path = fetch_kubeconfig(kubeone, dest)
    assert path == dest
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert 'server: "https://10.0.0.1:6443"' in dest.read_text()
    assert (tmp_path / "args-kubeconfig").read_text().split() == ["kubeconfig", "-m", str(kubeone)]


def test_a_relative_state_directory_works(kubeone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # KubeOne runs in the state directory: every path it gets must be absolute.
    monkeypatch.chdir(tmp_path)
    kc = run_kubeone("apiVersion: kubeone.k8c.io/v1beta2\n", Path("rel/state"))
    args = (tmp_path / "args-apply").read_text().split()
    manifest = Path(args[args.index("-m") + 1])
    assert manifest.is_absolute() and manifest == tmp_path / "rel" / "state" / "kubeone.yaml"
    assert manifest.is_file() and kc == tmp_path / "rel" / "state" / "kubeconfig"


def test_kubeconfig_failure(kubeone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEONE_FAKE_EXIT", "14")
    with pytest.raises(KubeOneError) as e:
        fetch_kubeconfig(kubeone, tmp_path / "kc")
    assert "exit code 14 (connection error)" in str(e.value) and "failed to connect" in str(e.value)
    assert not (tmp_path / "kc").exists()


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(KubeOneError) as e:
        apply(tmp_path / "m.yaml", binary=str(tmp_path / "nope" / "kubeone"))
    assert "was not found" in str(e.value)


def test_run_kubeone_writes_files_and_removes_credentials(
    kubeone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    copy = tmp_path / "creds-seen"
    monkeypatch.setenv("KUBEONE_FAKE_CREDS_COPY", str(copy))
    kc = run_kubeone(
        "apiVersion: kubeone.k8c.io/v1beta2\n",
        work,
        registries_auth_yaml="kind: ContainerRuntimeContainerd\n",
    )
    assert kc == work / "kubeconfig" and stat.S_IMODE(kc.stat().st_mode) == 0o600
    assert stat.S_IMODE((work / "kubeone.yaml").stat().st_mode) == 0o600
    assert "registriesAuth" in copy.read_text()  # KubeOne got the credentials file...
    assert not (work / ".kubeone-credentials.yaml").exists()  # ...and it is gone afterwards
