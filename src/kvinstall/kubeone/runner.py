"""Run the kubeone binary: `apply`, then `kubeconfig` (and `reset`, `config images list`).

kvinstall asks its own question before any of this; KubeOne runs with `-y` and stdin closed, so it
never prompts. It logs JSON (`-l json`): each line is shown as its message, and the failure is
classified from what KubeOne said as well as from its exit code, because KubeOne wraps SSH and
connection failures in exit 10 ("runtime error") and uses exit 15 for more than a bad manifest.

A failure no retry can fix (the SSH agent, a refused key, a host key that does not match) stops
KubeOne at once instead of after its ~8 minutes of retries; a host that does not answer is left to
KubeOne's retries (preflight, which runs first, already failed fast on an unreachable host).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvinstall.errors import KubeOneError, LocalIOError, SSHError

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
TAIL_LINES = 40


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong, from KubeOne's output: a short statement, a hint, and whether retrying
    could help (False: stop KubeOne at once)."""

    what: str
    hint: str
    transient: bool = False


# (pattern in KubeOne's output, statement, hint, transient); the first rule that matches wins.
_RULES: tuple[tuple[re.Pattern[str], str, str, bool], ...] = tuple(
    (re.compile(p, re.IGNORECASE), what, hint, transient)
    for p, what, hint, transient in (
        (
            r"agent unix dialing|could not open socket",
            "KubeOne could not use the SSH agent (SSH_AUTH_SOCK)",
            "start ssh-agent and load the key (ssh-add) in the shell that runs kvinstall, or set "
            "ssh.privateKeyFile so that KubeOne uses the key file instead",
            False,
        ),
        (
            r"host key mismatch",
            "a host presented another SSH host key than the one kvinstall verified",
            "the host may have been reinstalled, or the connection is intercepted: compare the "
            "fingerprints (kvinstall preflight) before changing known_hosts or hostPublicKey",
            False,
        ),
        (
            r"ssh: unable to authenticate",
            "a host refused KubeOne's SSH login",
            "KubeOne uses only ssh.privateKeyFile (or the host's) and the SSH agent, not ~/.ssh/config "
            "or ~/.ssh/id_*: set the key file that works for kvinstall preflight",
            False,
        ),
        (
            r"SSH key could not be parsed|password-protected",
            "KubeOne could not read the SSH private key",
            "KubeOne cannot use passphrase-protected key files: load the key into ssh-agent and "
            "leave privateKeyFile empty",
            False,
        ),
        (
            r"connection to: (\S+)\s.*?(connection refused|no route to host|i/o timeout|"
            r"network is unreachable|connection reset|host is unreachable)",
            "KubeOne could not connect to {0} ({1})",
            "the host answered kvinstall's preflight moments ago: check that it is up and that "
            "nothing between here and port {0} filters KubeOne's connections",
            True,
        ),
        (
            r"does not satisfy version constraint '([^']*)': \"?([0-9.]+)",
            "this KubeOne supports Kubernetes {0} only, not {1}",
            "pair kubernetes.version with a kubeone.version that supports it (kvinstall validate "
            "shows the supported range)",
            False,
        ),
        (
            r"cluster downgrades are disallowed",
            "KubeOne refuses to downgrade the cluster: kubernetes.version is older than what runs",
            "set kubernetes.version to the running version or newer",
            False,
        ),
        (
            r"repair and upgrade are not supported at the same time",
            "KubeOne must repair the cluster before it can upgrade it, and will not do both at once",
            "apply once with the version the cluster runs (KubeOne printed it as 'Highest version'), "
            "then apply the new version",
            False,
        ),
        (
            r"broken host\(s\) found|is broken and needs to be manually removed",
            "KubeOne found broken hosts that must be removed by hand",
            "remove the hosts KubeOne named, in the order it recommends (etcd quorum), then apply again",
            False,
        ),
    )
)


def diagnose(text: str) -> Diagnosis | None:
    """The first rule matching `text` (KubeOne's output). Pure."""
    for rx, what, hint, transient in _RULES:
        m = rx.search(text)
        if m:
            groups = [g for g in m.groups() if g] if m.groups() else [m.group(0)]
            return Diagnosis(what.format(*groups), hint.format(*groups), transient)
    return None


LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class ApplyResult:
    exit_code: int
    tail: tuple[str, ...]  # the last lines of output, for messages


def describe_exit(code: int) -> str:
    return KUBEONE_EXIT_CODES.get(code, "unexpected exit code")


def error_for(code: int, tail: Sequence[str], *, action: str, stopped: bool = False) -> KubeOneError:
    """The error for a failed KubeOne run: what KubeOne said, classified, with a hint."""
    lines = list(tail)
    final = _kubeone_error(lines)
    diag = diagnose("\n".join(final)) or diagnose("\n".join(lines))
    said = "\n    ".join(final[-8:])
    if stopped:
        head = f"kubeone {action} stopped by kvinstall: retrying cannot help"
    else:
        head = f"kubeone {action} failed with exit code {code} ({describe_exit(code)})"
    if diag is not None:
        head += f": {diag.what}"
    return KubeOneError(
        head + (f"; KubeOne said:\n    {said}" if said else ""),
        where="kubeone",
        hint=diag.hint if diag is not None else _HINTS.get(code),
    )


def _kubeone_error(lines: Sequence[str]) -> list[str]:
    """KubeOne's final 'Error: ...' block, else its last failed attempt, else the last lines."""
    for marker in ("Error: ", "WARN Task failed"):
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith(marker):
                return [ln for ln in lines[i:] if ln.strip()]
    return [ln for ln in lines if ln.strip()]


def display_line(raw: str) -> str:
    """A line of KubeOne's JSON log as a person reads it ('WARN msg'); other lines unchanged."""
    if not raw.startswith("{"):
        return raw
    try:
        rec: Any = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(rec, dict) or "msg" not in rec:
        return raw
    level = str(rec.get("level", "info")).upper()
    msg = str(rec["msg"]).rstrip()
    host = rec.get("node")
    text = f"[{host}] {msg}" if host else msg
    return text if level == "INFO" else f"{level[:4]} {text}"


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


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stream(
    argv: list[str],
    *,
    action: str,
    on_line: LineCallback | None,
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
) -> ApplyResult:
    """Run kubeone streaming its output; raise KubeOneError unless it succeeded."""
    proc = _spawn(argv, cwd=Path(cwd) if cwd else None, env=env, capture=False)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    assert proc.stdout is not None
    hopeless: Diagnosis | None = None
    try:
        for raw in proc.stdout:
            line = display_line(raw.rstrip("\r\n"))
            tail.extend(line.splitlines() or [""])
            if on_line is not None:
                on_line(line)
            if "Task failed" in line:
                diag = diagnose(line)
                if diag is not None and not diag.transient:
                    hopeless = diag
                    break
        if hopeless is not None:
            _stop(proc)
        code = proc.wait()
    except BaseException:
        # Ctrl-C or a failing callback: do not leave KubeOne running unattended.
        _stop(proc)
        raise
    finally:
        proc.stdout.close()
    if hopeless is not None:
        raise error_for(code, tail, action=action, stopped=True)
    if code != 0:
        raise error_for(code, tail, action=action)
    return ApplyResult(code, tuple(tail))


def check_agent(manifest_text: str, env: Mapping[str, str] | None) -> None:
    """KubeOne told to use the SSH agent while SSH_AUTH_SOCK is not set: every one of its SSH
    connections would fail, for minutes of retries. Say so before starting it."""
    if "env:SSH_AUTH_SOCK" not in manifest_text:
        return
    sock = (env if env is not None else os.environ).get("SSH_AUTH_SOCK")
    if not sock:
        raise SSHError(
            "KubeOne would log in with the SSH agent, but SSH_AUTH_SOCK is not set",
            where="kubeone",
            hint="start ssh-agent and load the key (ssh-add), or set ssh.privateKeyFile so that "
            "KubeOne uses the key file",
        )


def _base_argv(binary: str, command: list[str], manifest: Path, credentials: Path | None) -> list[str]:
    argv = [binary, *command, "-m", str(manifest)]
    if credentials is not None:
        argv += ["-c", str(credentials)]
    return argv


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
    """`kubeone apply -m MANIFEST [-c CREDENTIALS] -y -l json EXTRA...`; raises unless it applied."""
    creds = Path(credentials).absolute() if credentials is not None else None
    argv = [*_base_argv(binary, ["apply"], Path(manifest).absolute(), creds), "-y", "-l", "json"]
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
    wd = Path(workdir).absolute()
    check_agent(manifest_text, env)
    manifest = write_private(wd / "kubeone.yaml", manifest_text)
    argv = [*_base_argv(binary, ["reset"], manifest, None), "-y", "--destroy-workers", "-l", "json"]
    return _stream(argv, action="reset", on_line=on_line, cwd=wd, env=env)


def _capture(
    argv: list[str], *, action: str, cwd: Path | None, env: Mapping[str, str] | None, timeout: float
) -> str:
    proc = _spawn(argv, cwd=cwd, env=env, capture=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise KubeOneError(f"kubeone {action} did not finish within {timeout:g}s", where="kubeone") from exc
    if proc.returncode != 0:
        raise error_for(proc.returncode, [*out.splitlines(), *err.splitlines()], action=action)
    return out


def fetch_kubeconfig(
    manifest: str | Path,
    dest: str | Path,
    *,
    binary: str = "kubeone",
    credentials: str | Path | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
) -> Path:
    """`kubeone kubeconfig -m MANIFEST` into `dest` with mode 0600."""
    creds = Path(credentials).absolute() if credentials is not None else None
    argv = _base_argv(binary, ["kubeconfig"], Path(manifest).absolute(), creds)
    out = _capture(argv, action="kubeconfig", cwd=Path(cwd) if cwd else None, env=env, timeout=timeout)
    if "clusters:" not in out or "apiVersion" not in out:
        raise KubeOneError("kubeone kubeconfig printed no kubeconfig: " + out.strip()[:300], where="kubeone")
    return write_private(Path(dest), out)


def list_images(
    manifest: str | Path, *, binary: str = "kubeone", env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> list[str]:
    """`kubeone config images list -m MANIFEST`: every image this KubeOne deploys for the manifest's
    Kubernetes version (it reads the manifest only; no host is contacted)."""
    argv = [binary, "config", "images", "list", "-m", str(Path(manifest).absolute())]
    out = _capture(argv, action="config images list", cwd=None, env=env, timeout=timeout)
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def binary_version(binary: str = "kubeone", *, env: Mapping[str, str] | None = None) -> str | None:
    """The version a kubeone binary reports (`kubeone version`, JSON), or None if it cannot run."""
    try:
        proc = _spawn([binary, "version"], cwd=None, env=env, capture=True)
    except KubeOneError:
        return None
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    try:
        data = json.loads(out)
        return str(data["kubeone"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return None


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

    KubeOne runs in workdir (a full install writes `<name>-kubeconfig` into its working directory);
    every path it is given is absolute. registries_auth_yaml goes into a 0600 credentials file that
    is removed afterwards.
    """
    wd = Path(workdir).absolute()
    check_agent(manifest_text, env)
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
