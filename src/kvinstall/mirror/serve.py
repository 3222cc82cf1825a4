"""`mirror serve`: a registry and a package repository on the jump host, made from a bundle.

- The registry is the distribution registry (Debian `docker-registry`), over TLS, storing in the
  state directory, read-only: the bundle is pushed into that storage first, through a writable
  registry on a loopback port (only what it lacks, digests unchanged), so nobody on the site network
  can push to it or move a tag.
- The package repository is an HTTPS static server (kvinstall.mirror.reposerver) over the apt
  trees that aptrepo writes from the bundle, signed with a key kept in the state directory.
- Both use a server certificate from a CA that is generated once (or given), so hosts trust one CA.

The servers run under a supervisor: in the background (`start_background`: its own session and
process group, so closing the terminal does not end it; pid and state in serve.json; logs in
logs/) or in the foreground (`Supervisor.run` in the calling process). The supervisor restarts a
server that exits (a bounded number of times) and, when stopped, stops both and records that.

State directory (default $XDG_STATE_HOME/kvinstall/serve):
    serve.json  serve.lock  logs/  pki/  gnupg/  repo/  registry/  kvinstall-archive-keyring.gpg
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from kvinstall.errors import LocalIOError, UsageError
from kvinstall.fsutil import write_atomic
from kvinstall.mirror.aptrepo import MARKER

STATE_FILE = "serve.json"
LOCK_FILE = "serve.lock"
PUBLIC_KEY = "kvinstall-archive-keyring.gpg"
DOCKER_REGISTRY = "docker-registry"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
MAX_RESTARTS = 5  # per server within RESTART_WINDOW_S; then the supervisor gives up
RESTART_WINDOW_S = 300.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kvinstall" / "serve"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@dataclass
class ServeState:
    """serve.json: what runs where, and what the hosts need to know."""

    state_dir: str
    bundle: str
    address: str
    registry_port: int
    repo_port: int
    ca_file: str
    cert: str
    key: str
    signing_key: str  # the public key file (hosts' signed-by)
    repo_root: str
    distributions: dict[str, int] = field(default_factory=dict)  # OS release -> packages
    status: str = "starting"  # starting | running | stopped | failed
    message: str = ""
    supervisor_pid: int | None = None
    process_group: int | None = None  # set when the supervisor leads its own group (background)
    children: dict[str, int] = field(default_factory=dict)
    started_at: float | None = None

    @property
    def registry(self) -> str:
        return f"{_host(self.address)}:{self.registry_port}"

    @property
    def repo_url(self) -> str:
        return f"https://{_host(self.address)}:{self.repo_port}"

    @property
    def logs(self) -> Path:
        return Path(self.state_dir) / "logs"

    def save(self) -> None:
        write_atomic(Path(self.state_dir) / STATE_FILE, json.dumps(asdict(self), indent=2).encode())

    @staticmethod
    def load(state_dir: Path) -> ServeState | None:
        path = state_dir / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LocalIOError(f"unreadable serve state: {exc}", where=str(path)) from exc
        try:
            return ServeState(**data)
        except TypeError as exc:
            raise LocalIOError(f"unreadable serve state: {exc}", where=str(path)) from exc

    def settings(self) -> dict[str, Any]:
        """The config's offline settings that point at this service."""
        out: dict[str, Any] = {"enabled": True, "registry": self.registry, "caFile": self.ca_file}
        if self.distributions:
            out["packageRepository"] = {"url": self.repo_url, "signingKey": self.signing_key}
        return out


# -- preparing the state directory ----------------------------------------------------------------


@dataclass(frozen=True)
class ServeOptions:
    bundle: Path
    state_dir: Path
    address: str
    registry_port: int = 5000
    repo_port: int = 8443
    names: tuple[str, ...] = ()  # more names for the certificate
    ca: Path | None = None
    ca_key: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def prepare(opts: ServeOptions) -> ServeState:
    """Verify the bundle, make (or reuse) the CA and certificate and the signing key, and write the
    signed package repositories: everything the servers need, before any of them starts."""
    from kvinstall.errors import IntegrityError
    from kvinstall.mirror.aptrepo import build_repositories, read_packages
    from kvinstall.mirror.bundle import BundleReader
    from kvinstall.mirror.gpg import SigningKey
    from kvinstall.mirror.pki import tls_files
    from kvinstall.mirror.verify import verify_bundle

    reader = BundleReader(opts.bundle)  # a missing or unreadable file is a local error, not corruption
    problems = verify_bundle(opts.bundle)
    if problems:
        raise IntegrityError(
            "\n  ".join(["bundle is corrupt:", *map(str, problems)]),
            where=str(opts.bundle),
            hint="copy the bundle again (mirror verify names what is wrong)",
        )
    state_dir = opts.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    tls = tls_files(
        state_dir / "pki",
        list(dict.fromkeys([opts.address, *opts.names])),
        ca=opts.ca,
        ca_key=opts.ca_key,
        cert=opts.cert,
        key=opts.key,
    )
    packages, _ = read_packages(reader)
    repo_root = state_dir / "repo"
    if packages.sets:
        with SigningKey(state_dir / "gnupg") as key:
            key.ensure()
            counts = build_repositories(packages, reader, repo_root, key)
            write_atomic(state_dir / PUBLIC_KEY, key.public_key())
    else:  # nothing to sign: no gpg needed
        counts = build_repositories(packages, reader, repo_root, None)
    state = ServeState(
        state_dir=str(state_dir),
        bundle=str(opts.bundle.resolve()),
        address=opts.address,
        registry_port=opts.registry_port,
        repo_port=opts.repo_port,
        ca_file=str(tls.ca.resolve()),
        cert=str(tls.cert.resolve()),
        key=str(tls.key.resolve()),
        signing_key=str(state_dir / PUBLIC_KEY),
        repo_root=str(repo_root),
        distributions=counts,
    )
    state.save()
    return state


def local_address_towards(host: str) -> str | None:
    """The address this machine uses to reach `host` (no packet is sent: a UDP socket is only
    connected), or None without a route."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


# -- the servers ----------------------------------------------------------------------------------


def registry_config(state: ServeState, *, fill_addr: str | None = None) -> Path:
    """The registry's config: read-only on the served address (no one on the site network can push
    or overwrite a tag), or, with `fill_addr`, writable on a loopback address for filling it."""
    root = Path(state.state_dir) / "registry"
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lines = [
        "version: 0.1",
        "log: {level: info, accesslog: {disabled: true}}",
        "storage:",
        f"  filesystem: {{rootdirectory: {json.dumps(str(storage))}}}",
        "  delete: {enabled: false}",
        f"  maintenance: {{readonly: {{enabled: {'false' if fill_addr else 'true'}}}, uploadpurging: {{enabled: false}}}}",
        "http:",
        f"  addr: {json.dumps(fill_addr or state.registry)}",
        f"  secret: {json.dumps(os.urandom(16).hex())}",
    ]
    if not fill_addr:
        lines.append(f"  tls: {{certificate: {json.dumps(state.cert)}, key: {json.dumps(state.key)}}}")
    path = root / ("fill.yml" if fill_addr else "config.yml")
    write_atomic(path, ("\n".join(lines) + "\n").encode(), mode=0o600)
    return path


def _registry_binary() -> str:
    import shutil

    registry = shutil.which(DOCKER_REGISTRY) or shutil.which(DOCKER_REGISTRY, path="/usr/bin:/usr/sbin")
    if registry is None:
        raise LocalIOError(
            "docker-registry not found: mirror serve runs the distribution registry",
            hint="install it: apt-get install docker-registry (Debian/Ubuntu)",
        )
    return registry


def fill_registry(state: ServeState, progress: Callable[[int, int], None] | None = None) -> Any:
    """Push the bundle into the registry's storage through a writable registry on a loopback port
    that only this host reaches (stopped afterwards). Only what the storage lacks is sent."""
    import socket

    from kvinstall.mirror.bundle import push_bundle

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"127.0.0.1:{port}"
    state.logs.mkdir(parents=True, exist_ok=True)
    with open(state.logs / "registry-fill.log", "ab") as log:
        proc = subprocess.Popen(
            [_registry_binary(), "serve", str(registry_config(state, fill_addr=addr))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with requests.Session() as http:
            http.trust_env = False
            while True:
                if proc.poll() is not None:
                    raise LocalIOError(
                        f"the registry exited at start (code {proc.returncode}): {_tail(state.logs / 'registry-fill.log')}",
                        where=str(Path(state.state_dir) / "registry"),
                    )
                with contextlib.suppress(requests.RequestException):
                    if http.get(f"http://{addr}/v2/", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise LocalIOError("the registry did not answer in time", where=addr)
                time.sleep(0.1)
        return push_bundle(Path(state.bundle), addr, insecure=True, progress=progress)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _commands(state: ServeState) -> dict[str, list[str]]:
    return {
        "registry": [_registry_binary(), "serve", str(registry_config(state))],
        "repository": [
            sys.executable, "-m", "kvinstall.mirror.reposerver", "--root", state.repo_root,
            "--address", state.address, "--port", str(state.repo_port), "--cert", state.cert, "--key", state.key,
        ],
    }


def _session(state: ServeState) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # proxies and REQUESTS_CA_BUNDLE must not decide where this goes
    s.verify = state.ca_file
    return s


def probe(state: ServeState, timeout: float = 5.0) -> dict[str, str]:
    """'ok' or what failed, for the registry and the repository (over TLS, trusting the CA)."""
    out = {}
    with _session(state) as s:
        for name, url in (
            ("registry", f"https://{state.registry}/v2/"),
            ("repository", f"{state.repo_url}/{MARKER}"),
        ):
            try:
                r = s.get(url, timeout=timeout)
                out[name] = "ok" if r.status_code == 200 else f"HTTP {r.status_code} from {url}"
            except requests.RequestException as exc:
                out[name] = f"{url}: {type(exc).__name__}: {exc}"
    return out


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class Supervisor:
    """Runs the registry and repository servers until stopped; restarts one that exits."""

    def __init__(self, state: ServeState, *, background: bool) -> None:
        self.state = state
        self.background = background
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.commands = _commands(state)
        self._stop = False
        self._lock: IO[str] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def lock(self) -> None:
        """One supervisor per state directory (held until this process ends)."""
        self.state.logs.mkdir(parents=True, exist_ok=True)
        fh = open(Path(self.state.state_dir) / LOCK_FILE, "a")  # noqa: SIM115 - held for the lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise UsageError(
                f"another mirror serve already runs from {self.state.state_dir}",
                hint="kvinstall mirror serve --status / --stop (with the same --state-dir)",
            ) from exc
        self._lock = fh

    def _spawn(self, name: str) -> None:
        log = open(self.state.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        with log:
            self.procs[name] = subprocess.Popen(
                self.commands[name], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True
            )
        self.state.children[name] = self.procs[name].pid

    def start(self) -> None:
        """Start both servers and wait until they answer (LocalIOError naming the one that did not)."""
        self.state.supervisor_pid = os.getpid()
        self.state.process_group = os.getpgrp() if self.background else None
        self.state.started_at = time.time()
        self.state.status = "starting"
        self.state.save()
        for name in self.commands:
            self._spawn(name)
        self._wait_ready()
        self.state.status = "running"
        self.state.message = ""
        self.state.save()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise LocalIOError(
                        f"the {name} server exited at start (code {proc.returncode}): "
                        + _tail(self.state.logs / f"{name}.log"),
                        where=self.state.registry if name == "registry" else self.state.repo_url,
                    )
            result = probe(self.state, timeout=2.0)
            if all(v == "ok" for v in result.values()):
                return
            if time.monotonic() > deadline:
                bad = {k: v for k, v in result.items() if v != "ok"}
                raise LocalIOError(f"not answering after {READY_TIMEOUT_S:.0f} s: {bad}", where=self.state.state_dir)
            time.sleep(0.2)

    def stop_children(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.state.children = {}

    def finish(self, status: str, message: str = "") -> None:
        self.stop_children()
        self.state.status = status
        self.state.message = message
        self.state.supervisor_pid = None
        self.state.process_group = None
        self.state.save()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Start, then supervise until SIGTERM/SIGINT (SIGHUP is ignored). Returns an exit code."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        old_wakeup = signal.set_wakeup_fd(write_fd)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

        def request_stop(*_: Any) -> None:
            self._stop = True
            if not looping:
                raise KeyboardInterrupt  # still starting (or filling the registry): stop at once

        looping = False

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            try:
                self.start()
            except KeyboardInterrupt:
                self.finish("stopped", "interrupted while starting")
                raise
            except BaseException as exc:
                self.finish("failed", str(exc))
                raise
            # Running from here: a stop asked for while on_ready tells the user so (who may answer with
            # Ctrl-C at once) is a normal stop, not an interrupted start.
            looping = True
            if on_ready is not None:
                try:
                    on_ready()
                except BaseException as exc:
                    self.finish("failed", str(exc))
                    raise
            if self._stop:
                self.finish("stopped")
                return 0
            return self._loop(read_fd)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, h in handlers.items():
                signal.signal(sig, h)
            os.close(read_fd)
            os.close(write_fd)

    def _loop(self, wake: int) -> int:
        sel = selectors.DefaultSelector()
        sel.register(wake, selectors.EVENT_READ, None)
        fds: dict[str, int] = {}

        def watch(name: str) -> None:
            fd = os.pidfd_open(self.procs[name].pid)
            fds[name] = fd
            sel.register(fd, selectors.EVENT_READ, name)

        for name in self.procs:
            watch(name)
        try:
            while not self._stop:
                for key, _ in sel.select():
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake, 512)
                        continue
                    name = str(key.data)
                    sel.unregister(key.fd)
                    os.close(fds.pop(name))
                    code = self.procs[name].wait()
                    if self._stop:
                        break
                    if not self._may_restart(name):
                        self.finish("failed", f"the {name} server keeps exiting (last code {code}); see {self.state.logs}")
                        return 1
                    sys.stderr.write(f"{name} exited with code {code}; restarting\n")
                    self._spawn(name)
                    watch(name)
                    self.state.save()
            self.finish("stopped")
            return 0
        finally:
            for fd in fds.values():
                os.close(fd)
            sel.close()

    def _may_restart(self, name: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self.restarts.get(name, []) if now - t < RESTART_WINDOW_S]
        recent.append(now)
        self.restarts[name] = recent
        return len(recent) <= MAX_RESTARTS


# -- control from the CLI ---------------------------------------------------------------------------


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _is_supervisor(pid: int) -> bool:
    """The pid still belongs to a kvinstall process (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"kvinstall" in cmdline


def _is_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"docker-registry" in cmdline or b"kvinstall.mirror.reposerver" in cmdline


def running(state: ServeState | None) -> bool:
    return bool(state and state.supervisor_pid and _alive(state.supervisor_pid) and _is_supervisor(state.supervisor_pid))


def start_background(state: ServeState) -> ServeState:
    """Start the supervisor in its own session; return once both servers answer (or raise with the
    reason it gave)."""
    state.logs.mkdir(parents=True, exist_ok=True)
    state.status = "starting"
    state.supervisor_pid = None
    state.save()
    with open(state.logs / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kvinstall.mirror.serve", state.state_dir],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid: no controlling terminal, no SIGHUP when it closes
            close_fds=True,
            cwd="/",
        )
    deadline = time.monotonic() + READY_TIMEOUT_S + 30
    state_dir = Path(state.state_dir)
    while True:
        current = ServeState.load(state_dir)
        code = proc.poll()
        if current is not None and current.status == "running" and current.supervisor_pid == proc.pid:
            return current
        if code is not None or (current is not None and current.status == "failed"):
            message = current.message if current is not None else ""
            raise LocalIOError(
                "mirror serve did not start: " + (message or _tail(state.logs / "supervisor.log")),
                where=str(state_dir),
            )
        if time.monotonic() > deadline:
            stop(state_dir)
            raise LocalIOError("mirror serve did not start in time", where=str(state_dir))
        time.sleep(0.1)


def stop(state_dir: Path) -> ServeState | None:
    """Stop a running service (its whole process group when it leads one) and record it."""
    state = ServeState.load(state_dir)
    if state is None:
        return None
    pid = state.supervisor_pid
    if running(state):
        assert pid is not None
        if state.process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.process_group, signal.SIGTERM)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _wait_gone(pid, STOP_TIMEOUT_S + 5)
        if _alive(pid) and state.process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.process_group, signal.SIGKILL)
            _wait_gone(pid, 10)
    for child in list(state.children.values()):  # left behind by a supervisor that was killed
        if _alive(child) and _is_server(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
            _wait_gone(child, 10)
    fresh = ServeState.load(state_dir) or state
    fresh.status = "stopped" if fresh.status != "failed" else fresh.status
    fresh.supervisor_pid = None
    fresh.process_group = None
    fresh.children = {}
    fresh.save()
    return fresh


def _wait_gone(pid: int, timeout: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        sel.select(timeout)
        sel.close()
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> None:
    """The background supervisor: `python -m kvinstall.mirror.serve STATE_DIR`."""
    args = argv if argv is not None else sys.argv[1:]
    state = ServeState.load(Path(args[0]))
    if state is None:
        sys.stderr.write(f"no {STATE_FILE} in {args[0]}\n")
        sys.exit(2)
    sup = Supervisor(state, background=True)
    try:
        sup.lock()
        sys.exit(sup.run())
    except Exception as exc:  # recorded for the CLI that waits for us
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        if state.status != "failed":
            state.status, state.message = "failed", str(exc)
            state.supervisor_pid = None
            state.save()
        sys.exit(1)


if __name__ == "__main__":
    main()
