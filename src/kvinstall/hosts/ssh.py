"""SSH to the cluster hosts with paramiko.

One connection per host, reused for every command; a bounded thread pool across hosts; an optional
jump host (bastion) whose connection carries the others as forwarded `direct-tcpip` channels. Host
keys are verified by a `HostKeyPolicy` before any authentication. Remote commands are argument
lists joined with `shlex` (never string concatenation of user values); non-root users run them
through `sudo -n`, so a sudo that wants a password fails at once with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import paramiko

from kvinstall.errors import KvError, SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy

if TYPE_CHECKING:
    from kvinstall.config.models import Bastion, Config, Host

T = TypeVar("T")

# Opens a TCP connection to (address, port) within `timeout` seconds. Tests pass one that opens the
# socket inside the lab's network namespace.
SocketFactory = Callable[[str, int, float], socket.socket]

DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
_SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required", "no askpass program")


@dataclass(frozen=True)
class JumpTarget:
    address: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    use_agent: bool = True
    host_public_key: str | None = None

    @property
    def name(self) -> str:
        return f"bastion {self.address}:{self.port}"


@dataclass(frozen=True)
class HostTarget:
    """Everything needed to reach one host; resolved from the config and ~/.ssh/config."""

    name: str  # how messages name the host (`where=`)
    address: str
    port: int = 22
    user: str = "root"
    key_files: tuple[str, ...] = ()
    use_agent: bool = True
    bastion: JumpTarget | None = None
    host_public_key: str | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 300.0

    @property
    def needs_sudo(self) -> bool:
        return self.user != "root"


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> CommandResult:
        if self.exit_code != 0:
            tail = (self.stderr.strip() or self.stdout.strip())[-400:]
            raise SSHError(
                f"command failed with exit code {self.exit_code}: {self.command}: {tail}", where=self.host
            )
        return self


# --- pure helpers --------------------------------------------------------------------------------


def build_command(argv: Sequence[str], *, sudo: bool) -> str:
    """The remote command line for an argument list: every argument shlex-quoted."""
    if not argv:
        raise ValueError("empty command")
    words = ["sudo", "-n", "--", *argv] if sudo else list(argv)
    return shlex.join(words)


def is_sudo_password_error(exit_code: int, stderr: str) -> bool:
    low = stderr.lower()
    return exit_code != 0 and "sudo" in low and any(m in low for m in _SUDO_PASSWORD_MARKERS)


def parse_proxy_jump(value: str) -> tuple[str | None, str, int | None]:
    """'user@host:port' (first hop of a comma list) -> (user, host, port)."""
    hop = value.split(",")[0].strip()
    user: str | None = None
    if "@" in hop:
        user, hop = hop.rsplit("@", 1)
    port: int | None = None
    if hop.startswith("["):  # [v6addr]:port
        host, _, rest = hop[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif hop.count(":") == 1:
        host, p = hop.split(":")
        port = int(p)
    else:
        host = hop
    return user, host, port


def load_ssh_config(path: str | Path | None = None) -> paramiko.SSHConfig | None:
    p = Path(os.path.expanduser(str(path or "~/.ssh/config")))
    if not p.is_file():
        return None
    try:
        return paramiko.SSHConfig.from_path(str(p))
    except (OSError, paramiko.SSHException) as exc:
        raise SSHError(f"cannot read the SSH client config: {exc}", where=str(p)) from exc


def _lookup(ssh_config: paramiko.SSHConfig | None, address: str) -> dict[str, Any]:
    if ssh_config is None:
        return {}
    return dict(ssh_config.lookup(address))


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def resolve_targets(config: Config, ssh_config: paramiko.SSHConfig | None = None) -> list[HostTarget]:
    """HostTargets for every host of the config.

    Precedence: the host's own fields, then fields set explicitly under `ssh:`, then ~/.ssh/config
    (User, Port, IdentityFile, ProxyJump, HostName), then the defaults (root, 22, agent).
    """
    s = config.ssh
    explicit = s.model_fields_set
    targets: list[HostTarget] = []
    for host in config.hosts:
        sc = _lookup(ssh_config, host.address)
        address = host.address
        if sc.get("hostname") and sc["hostname"] != host.address:
            address = str(sc["hostname"])
        user = host.user or (s.user if "user" in explicit else None) or sc.get("user") or s.user
        port = host.port or (s.port if "port" in explicit else None) or int(sc.get("port", 0) or 0) or s.port
        keys: list[str] = []
        if host.private_key_file or s.private_key_file:
            keys.append(_expand(host.private_key_file or s.private_key_file or ""))
        keys += [_expand(k) for k in sc.get("identityfile", []) if _expand(k) not in keys]
        bastion = _jump(host, config, sc, user, tuple(keys))
        targets.append(
            HostTarget(
                name=host.address if port == 22 else f"{host.address}:{port}",
                address=address,
                port=port,
                user=user,
                key_files=tuple(keys),
                use_agent=s.use_agent,
                bastion=bastion,
                host_public_key=host.host_public_key,
                connect_timeout=s.connect_timeout,
                command_timeout=s.command_timeout,
            )
        )
    return targets


def _jump(
    host: Host, config: Config, sc: dict[str, Any], user: str, keys: tuple[str, ...]
) -> JumpTarget | None:
    b: Bastion | None = host.bastion or config.ssh.bastion
    if b is not None:
        return JumpTarget(
            address=b.address,
            port=b.port,
            user=b.user or user,
            key_files=(_expand(b.private_key_file),) if b.private_key_file else keys,
            use_agent=config.ssh.use_agent,
            host_public_key=b.host_public_key,
        )
    pj = sc.get("proxyjump")
    if pj and str(pj).lower() != "none":
        juser, jhost, jport = parse_proxy_jump(str(pj))
        return JumpTarget(
            address=jhost,
            port=jport or 22,
            user=juser or user,
            key_files=keys,
            use_agent=config.ssh.use_agent,
        )
    return None


# --- keys ----------------------------------------------------------------------------------------

_key_cache: dict[str, paramiko.PKey] = {}
_key_lock = threading.Lock()


def load_private_key(path: str, *, where: str) -> paramiko.PKey:
    """Load an ed25519, ecdsa or rsa key file (cached). Encrypted keys: use the agent."""
    with _key_lock:
        if path in _key_cache:
            return _key_cache[path]
    try:
        key = paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise SSHError(
            f"the private key {path} is protected by a passphrase",
            where=where,
            hint="load it into ssh-agent (ssh-add) and leave privateKeyFile empty",
        ) from exc
    except FileNotFoundError as exc:
        raise SSHError(f"the private key file {path} does not exist", where=where) from exc
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise SSHError(f"cannot load the private key {path}: {exc}", where=where) from exc
    with _key_lock:
        _key_cache[path] = key
    return key


def _candidate_keys(
    key_files: Sequence[str], use_agent: bool, where: str
) -> Iterable[tuple[str, paramiko.PKey]]:
    for path in key_files:
        yield path, load_private_key(path, where=where)
    if use_agent and os.environ.get("SSH_AUTH_SOCK"):
        agent = paramiko.Agent()
        try:
            for k in agent.get_keys():
                yield f"agent key {k.fingerprint}", k
        finally:
            agent.close()
    if not key_files:
        for name in DEFAULT_KEY_NAMES:
            p = Path.home() / ".ssh" / name
            if p.is_file():
                yield str(p), load_private_key(str(p), where=where)


# --- connections ---------------------------------------------------------------------------------


def _default_socket(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


def _no_delay(sock: Any) -> None:
    # Small request/response packets: without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms to
    # every session open.
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _open_transport(
    sock: Any,
    *,
    address: str,
    port: int,
    user: str,
    key_files: Sequence[str],
    use_agent: bool,
    pinned: str | None,
    timeout: float,
    policy: HostKeyPolicy,
    where: str,
) -> paramiko.Transport:
    _no_delay(sock)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        # Verify the host before offering any credential.
        policy.verify(address, port, transport.get_remote_server_key(), pinned=pinned)
        tried: list[str] = []
        for label, key in _candidate_keys(key_files, use_agent, where):
            tried.append(label)
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                transport.set_keepalive(15)
                return transport
        raise SSHError(
            f"login as {user!r} refused; tried: {', '.join(tried) or 'no keys (none configured, no agent)'}",
            where=where,
            hint="set ssh.privateKeyFile (or the host's privateKeyFile), or load the key into ssh-agent",
        )
    except BaseException:
        transport.close()
        raise


def _dropped(t: HostTarget, command: str) -> SSHError:
    return SSHError(
        "the connection dropped while a command was running", where=t.name, hint=f"command: {command[:200]}"
    )


def _timeout(t: HostTarget, limit: float, command: str) -> SSHError:
    return SSHError(
        f"command timed out after {limit:g}s: {command[:200]}",
        where=t.name,
        hint="raise ssh.commandTimeout if the host is just slow",
    )


class Connection:
    """An authenticated SSH connection to one host."""

    def __init__(self, target: HostTarget, transport: paramiko.Transport) -> None:
        self.target = target
        self.transport = transport

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv (quoted with shlex) on the host. sudo=None: sudo when the user is not root."""
        use_sudo = self.target.needs_sudo if sudo is None else sudo
        return self._exec(build_command(argv, sudo=use_sudo), stdin=stdin, timeout=timeout, sudo=use_sudo)

    def run_script(
        self, script: str, *, sudo: bool | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run a POSIX sh script fed on stdin (`sh -s`): no argument-length limit, nothing to quote."""
        return self.run(["sh", "-s"], sudo=sudo, stdin=script.encode(), timeout=timeout)

    def _exec(self, command: str, *, stdin: bytes | None, timeout: float | None, sudo: bool) -> CommandResult:
        t = self.target
        limit = timeout if timeout is not None else t.command_timeout
        deadline = time.monotonic() + limit
        try:
            chan = self.transport.open_session(timeout=t.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"cannot open a session: {exc or type(exc).__name__}", where=t.name) from exc
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout(t, limit, command)
                # recv wakes at once on stdout data or EOF; the short timeout drains stderr
                # now and then so a chatty stderr cannot fill the channel window.
                chan.settimeout(min(remaining, 0.5))
                try:
                    data: bytes | None = chan.recv(65536)
                except TimeoutError:
                    data = None
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                if data:
                    out.append(data)
                elif data == b"":
                    break  # EOF: the command closed its output (or the channel closed)
                elif not self.transport.is_active():
                    raise _dropped(t, command)
            # EOF covers both streams; wait for the exit status that follows it.
            chan.status_event.wait(max(0.0, deadline - time.monotonic()))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            if not chan.status_event.is_set():
                raise _dropped(t, command) if not self.transport.is_active() else _timeout(t, limit, command)
            # status_event is also set when the channel closes; -1 then means no exit status came:
            # sshd or the session was killed under us (a signal-killed command gives exit-signal).
            code = chan.exit_status
            if code == -1:
                raise SSHError(
                    "the connection dropped: the session ended without an exit status",
                    where=t.name,
                    hint=f"command: {command[:200]}",
                )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(
                f"the connection failed while running a command: {exc or type(exc).__name__}", where=t.name
            ) from exc
        finally:
            chan.close()
        stderr = b"".join(err).decode(errors="replace")
        if sudo and is_sudo_password_error(code, stderr):
            raise SSHError(
                f"sudo asks user {t.user!r} for a password; kvinstall needs passwordless sudo",
                where=t.name,
                hint=f"add '{t.user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/ on the host, "
                "or log in as root",
            )
        return CommandResult(t.name, command, code, b"".join(out).decode(errors="replace"), stderr)

    def close(self) -> None:
        self.transport.close()


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Any = None


class SSHPool:
    """Connections to many hosts: one per host (and per bastion), reused, opened in parallel."""

    def __init__(
        self,
        policy: HostKeyPolicy,
        *,
        parallelism: int = 30,
        socket_factory: SocketFactory | None = None,
    ) -> None:
        self.policy = policy
        self.parallelism = max(1, parallelism)
        self.socket_factory = socket_factory or _default_socket
        self._slots: dict[tuple[Any, ...], _Slot] = {}
        self._slots_lock = threading.Lock()

    def _slot(self, key: tuple[Any, ...]) -> _Slot:
        with self._slots_lock:
            return self._slots.setdefault(key, _Slot())

    def _jump_transport(self, j: JumpTarget, timeout: float) -> paramiko.Transport:
        slot = self._slot(("jump", j.address, j.port, j.user))
        with slot.lock:
            tr = slot.value
            if tr is not None and tr.is_active():
                return tr
            sock = self._socket(j.address, j.port, timeout, j.name)
            tr = _open_transport(
                sock,
                address=j.address,
                port=j.port,
                user=j.user,
                key_files=j.key_files,
                use_agent=j.use_agent,
                pinned=j.host_public_key,
                timeout=timeout,
                policy=self.policy,
                where=j.name,
            )
            slot.value = tr
            return tr

    def _socket(self, address: str, port: int, timeout: float, where: str) -> socket.socket:
        try:
            return self.socket_factory(address, port, timeout)
        except TimeoutError as exc:
            raise SSHError(
                f"no answer from {address}:{port} within {timeout:g}s (host down or filtered?)", where=where
            ) from exc
        except OSError as exc:
            raise SSHError(
                f"cannot connect to {address}:{port}: {exc.strerror or exc}", where=where
            ) from exc

    def connect(self, target: HostTarget) -> Connection:
        """The connection to `target`, opened on first use and reused afterwards."""
        slot = self._slot(("host", target))
        with slot.lock:
            conn: Connection | None = slot.value
            if conn is not None and conn.transport.is_active():
                return conn
            timeout = target.connect_timeout
            try:
                sock: Any
                if target.bastion is not None:
                    jump = self._jump_transport(target.bastion, timeout)
                    try:
                        sock = jump.open_channel(
                            "direct-tcpip", (target.address, target.port), ("127.0.0.1", 0), timeout=timeout
                        )
                    except paramiko.ChannelException as exc:
                        raise SSHError(
                            f"the bastion {target.bastion.address} could not reach "
                            f"{target.address}:{target.port}: "
                            f"{exc.text}",
                            where=target.name,
                        ) from exc
                else:
                    sock = self._socket(target.address, target.port, timeout, target.name)
                tr = _open_transport(
                    sock,
                    address=target.address,
                    port=target.port,
                    user=target.user,
                    key_files=target.key_files,
                    use_agent=target.use_agent,
                    pinned=target.host_public_key,
                    timeout=timeout,
                    policy=self.policy,
                    where=target.name,
                )
            except KvError:
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise SSHError(
                    f"SSH handshake failed: {exc or type(exc).__name__}", where=target.name
                ) from exc
            conn = Connection(target, tr)
            slot.value = conn
            return conn

    def run_all(
        self, targets: Sequence[HostTarget], fn: Callable[[Connection], T]
    ) -> dict[str, T | SSHError]:
        """Call fn(connection) for every target, at most `parallelism` at once.

        A host that cannot be reached, refuses, or drops the connection yields its SSHError; the others
        are not affected.
        """

        def one(t: HostTarget) -> T | SSHError:
            try:
                return fn(self.connect(t))
            except SSHError as exc:
                return exc
            except (paramiko.SSHException, OSError, EOFError) as exc:
                return SSHError(f"SSH failure: {exc or type(exc).__name__}", where=t.name)

        if not targets:
            return {}
        with ThreadPoolExecutor(
            max_workers=min(self.parallelism, len(targets)), thread_name_prefix="ssh"
        ) as ex:
            results = list(ex.map(one, targets))
        return {t.name: r for t, r in zip(targets, results, strict=True)}

    def close(self) -> None:
        with self._slots_lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for s in slots:
            v = s.value
            if isinstance(v, Connection):
                v.close()
        for s in slots:
            v = s.value
            if isinstance(v, paramiko.Transport):
                v.close()

    def __enter__(self) -> SSHPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
