"""Run the kubeone binary: `apply`, then `kubeconfig`.

Output is streamed line by line to a callback (log and progress view). KubeOne's own exit codes are
named in the error. "Operation canceled." means KubeOne did not apply anything even though it may
exit 0, so it is never taken for success.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvinstall.errors import KubeOneError, LocalIOError

# KubeOne's documented exit codes.
KUBEONE_EXIT_CODES: Mapping[int, str] = {
    1: "general error",
    10: "runtime error",
    11: "etcd error",
    12: "Kubernetes client error",
    13: "SSH error",
    14: "connection error",
    15: "configuration error",
    16: "remote command execution error",
}
_HINTS: Mapping[int, str] = {
    11: "check etcd health on the control-plane hosts; a repair must not risk etcd quorum",
    12: "the Kubernetes API was not reachable or refused a request; check apiEndpoint and the load balancer",
    13: "check SSH access to every host (run `kvinstall preflight`)",
    14: "a host or the API endpoint could not be reached; check the network",
    15: "KubeOne rejected the manifest; see the rendered manifest in the state directory",
    16: "a command failed on a host; the lines above show which",
}
CANCELED_MARKER = "Operation canceled"
TAIL_LINES = 30

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class ApplyResult:
    exit_code: int
    tail: tuple[str, ...]  # the last lines of output, for messages


def describe_exit(code: int) -> str:
    return KUBEONE_EXIT_CODES.get(code, "unexpected exit code")


def error_for(code: int, tail: Sequence[str], *, action: str) -> KubeOneError:
    last = "\n    ".join(list(tail)[-8:])
    hint = _HINTS.get(code)
    return KubeOneError(
        f"kubeone {action} failed with exit code {code} ({describe_exit(code)})"
        + (f"; last output:\n    {last}" if last else ""),
        where="kubeone",
        hint=hint,
    )


def write_private(path: Path, text: str) -> Path:
    """Write a file readable by the owner only (0600), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise LocalIOError(f"cannot write: {exc.strerror or exc}", where=str(path)) from exc
    return path


def _spawn(
    argv: list[str], *, cwd: Path | None, env: Mapping[str, str] | None, capture: bool
) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,  # KubeOne must never wait on a prompt
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture else subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise KubeOneError(
            f"the kubeone executable {argv[0]!r} was not found",
            where="kubeone",
            hint="install KubeOne (or use the one in the offline bundle) and set kubeone.binary",
        ) from exc
    except PermissionError as exc:
        raise KubeOneError(f"{argv[0]!r} is not executable", where="kubeone") from exc


def _stream(
    argv: list[str],
    *,
    action: str,
    on_line: LineCallback | None,
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
) -> ApplyResult:
    """Run kubeone streaming its output; raise KubeOneError unless it really did `action`."""
    proc = _spawn(argv, cwd=Path(cwd) if cwd else None, env=env, capture=False)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    canceled = False
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\r\n")
            tail.append(line)
            if CANCELED_MARKER in line:
                canceled = True
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    except BaseException:
        # Ctrl-C or a failing callback: do not leave KubeOne running unattended.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        proc.stdout.close()
    if code != 0:
        raise error_for(code, tail, action=action)
    if canceled:
        raise KubeOneError(
            f"kubeone {action} printed 'Operation canceled.': nothing was {'applied' if action == 'apply' else 'done'} "
            "(it still exited 0)",
            where="kubeone",
            hint="kvinstall passes -y; check kubeone.extraArgs for options that bring the prompt back",
        )
    return ApplyResult(code, tuple(tail))


def apply(
    manifest: str | Path,
    *,
    binary: str = "kubeone",
    extra_args: Sequence[str] = (),
    credentials: str | Path | None = None,
    on_line: LineCallback | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ApplyResult:
    """`kubeone apply -m MANIFEST -y [-c CREDENTIALS] EXTRA...`; raises KubeOneError unless it applied."""
    argv = [binary, "apply", "-m", str(manifest), "-y"]
    if credentials is not None:
        argv += ["-c", str(credentials)]
    argv += list(extra_args)
    return _stream(argv, action="apply", on_line=on_line, cwd=cwd, env=env)


def reset(
    manifest_text: str,
    workdir: str | Path,
    *,
    binary: str = "kubeone",
    on_line: LineCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> ApplyResult:
    """`kubeone reset -m MANIFEST -y --destroy-workers`: tear the cluster down (the user asked twice)."""
    wd = Path(workdir)
    manifest = write_private(wd / "kubeone.yaml", manifest_text)
    argv = [binary, "reset", "-m", str(manifest), "-y", "--destroy-workers"]
    return _stream(argv, action="reset", on_line=on_line, cwd=wd, env=env)


def fetch_kubeconfig(
    manifest: str | Path,
    dest: str | Path,
    *,
    binary: str = "kubeone",
    credentials: str | Path | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> Path:
    """`kubeone kubeconfig -m MANIFEST` into `dest` with mode 0600."""
    argv = [binary, "kubeconfig", "-m", str(manifest)]
    if credentials is not None:
        argv += ["-c", str(credentials)]
    proc = _spawn(argv, cwd=Path(cwd) if cwd else None, env=env, capture=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise KubeOneError(
            f"kubeone kubeconfig did not finish within {timeout:g}s", where="kubeone"
        ) from exc
    if proc.returncode != 0:
        raise error_for(proc.returncode, (err or out).splitlines(), action="kubeconfig")
    if "clusters:" not in out or "apiVersion" not in out:
        raise KubeOneError(
            "kubeone kubeconfig printed no kubeconfig: " + (out.strip() or err.strip())[:300], where="kubeone"
        )
    return write_private(Path(dest), out)


def should_skip(manifest_hash: str, last_hash: str | None, nodes_ready_at_version: bool) -> tuple[bool, str]:
    """Skip KubeOne when nothing it manages changed and the cluster is healthy. Pure."""
    if last_hash is None:
        return False, "KubeOne has not run successfully for this cluster yet"
    if manifest_hash != last_hash:
        return False, "the KubeOne manifest changed since the last successful run"
    if not nodes_ready_at_version:
        return False, "not every node is Ready at the expected Kubernetes version"
    return True, "KubeOne manifest unchanged and every node Ready at the expected version: skipping KubeOne"


def run_kubeone(
    manifest_text: str,
    workdir: str | Path,
    *,
    binary: str = "kubeone",
    extra_args: Sequence[str] = (),
    registries_auth_yaml: str | None = None,
    on_line: LineCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write the manifest (0600) into workdir, apply it, fetch the kubeconfig; return its path.

    registries_auth_yaml goes into a 0600 credentials file that is removed afterwards.
    """
    wd = Path(workdir)
    manifest = write_private(wd / "kubeone.yaml", manifest_text)
    creds: Path | None = None
    if registries_auth_yaml is not None:
        from kvinstall.kubeone.manifest import to_yaml

        doc: dict[str, Any] = {"registriesAuth": registries_auth_yaml}
        creds = write_private(wd / ".kubeone-credentials.yaml", to_yaml(doc))
    try:
        apply(
            manifest,
            binary=binary,
            extra_args=extra_args,
            credentials=creds,
            on_line=on_line,
            cwd=wd,
            env=env,
        )
        return fetch_kubeconfig(
            manifest, wd / "kubeconfig", binary=binary, credentials=creds, cwd=wd, env=env
        )
    finally:
        if creds is not None:
            creds.unlink(missing_ok=True)
