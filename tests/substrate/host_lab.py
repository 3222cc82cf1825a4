"""Bare-metal stand-ins: real sshd hosts, each in its own network namespace, on a private lab network.

Fixtures
- ``host_lab`` (function; ``module_host_lab`` the same per test module): a factory
  ``host_lab(hosts) -> Lab``; ``hosts`` is a count (hosts ``h1..hN``) or a list of :class:`HostSpec`.
  Everything it started (sshd processes, namespaces, routes) is removed after the test. ``open_lab(stack, root, client_keys, hosts)`` makes one for a fixture of a wider scope.
- ``ssh_client_keys`` (session): :class:`ClientKeys`, client key files ``.ed25519`` / ``.rsa`` / ``.ecdsa``
  (OpenSSH private key files without passphrase; ``.pub(path)`` gives the public line). Every lab host
  authorises the ed25519 key for root and for its sudo user; ``HostSpec.authorized_key_types`` adds others.

Layout (addresses never appear in the root namespace; a blackhole route for both lab ranges in the root
namespace makes an accidental direct connection fail at once):
- lab namespace ``Lab.netns``: bridge ``br0`` 10.77.X.1/24 (X random per lab), plus bridge ``br1`` without an
  address for the hosts behind the bastion (10.78.X.0/24): the lab namespace cannot reach them itself.
- host namespace per host: ``eth0`` on br0 (10.77.X.11, .12, ...) or, with ``behind_bastion=True``, on br1
  (10.78.X.11, ...). The bastion host (``bastion=True``) has both ``eth0`` (br0) and ``eth1`` (br1,
  10.78.X.254); IP forwarding stays off, so the only way in is an SSH tunnel (direct-tcpip) through the
  bastion's sshd.
- each sshd runs under ``unshare --mount --uts`` with its own hostname, /etc/passwd, group, shadow, hosts,
  sudoers.d, /home and OS trust store (copies of /etc/ssl/certs and /usr/local/share/ca-certificates),
  and optionally its own /usr/lib/os-release, a private /dev (with or without kvm) and a
  CPU affinity (``taskset``) so ``nproc`` reports fewer CPUs.

:class:`Lab` API
- ``lab.hosts`` (dict name -> :class:`Host`), ``lab[name]``, ``lab.bastion`` (Host or None), ``lab.netns``.
- ``lab.known_hosts`` (path of a known_hosts file with every host, by IP), ``lab.client_keys``.
- ``lab.connect(ip, port=22, timeout=10) -> socket`` : a TCP socket opened INSIDE the lab namespace.
- ``lab.sock_for(host) -> socket | paramiko.Channel``: a transport to host:22 (through the bastion if the host
  is behind it) for ``paramiko.SSHClient.connect(..., sock=...)``.
- ``lab.ssh(host_or_name, user="root", key=None) -> paramiko.SSHClient``: connected, host key verified
  (RejectPolicy + lab.known_hosts), closed after the test. ``lab.exec(host, command, user=...)`` runs one
  command and returns (exit status, stdout, stderr).
- ``lab.run_in_lab(argv, **subprocess_kw)``: run a command inside the lab namespace (e.g. ``ssh`` itself).

:class:`Host` API: ``.name``, ``.ip`` (address the client uses), ``.inner_ip`` (bastion only), ``.spec``,
``.private`` (each of ``spec.private_copies``/``private_dirs`` -> the folder behind it on the machine),
``.host_key_line`` (``ssh-ed25519 AAAA...``), ``.host_key_lines`` (by type, see ``HostSpec.host_key_types``),
``.known_hosts_line``, ``.user`` / ``.sudo_password``,
``.stop_sshd()`` / ``.start_sshd()`` (host down: connection refused), ``.link_down()`` / ``.link_up()``
(host unreachable: packets vanish, connects time out), ``.kill_sessions()`` (drop every open SSH connection,
the listener stays), ``.run(argv)`` (a command as root inside the host's namespaces, without SSH).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paramiko
import pytest

from .netns import connect_in, run_in
from .procs import Proc, descendants, run, wait_until

SSHD = "/usr/sbin/sshd"
TRUST_STORE = ("/etc/ssl/certs", "/usr/local/share/ca-certificates")  # private per host (see _prepare_host)
SUDO_USER = "kvadmin"
DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
UBUNTU_2404 = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
"""


@dataclass
class HostSpec:
    name: str
    os_release: str | None = None  # content of /usr/lib/os-release (and /etc/os-release); None: the machine's
    kvm: bool | None = None  # True: /dev/kvm present, False: absent (private /dev), None: as on the machine
    cpus: int | None = None  # limit to the first N CPUs (taskset); None: all
    user: str | None = SUDO_USER  # a non-root login user (uid >= 1000) with sudo; None: root only
    sudo: Literal["nopasswd", "password", "none"] = "nopasswd"
    bastion: bool = False
    behind_bastion: bool = False
    authorized_key_types: tuple[str, ...] = ("ed25519",)  # client key types accepted (see ClientKeys)
    extra_sshd_config: str = ""
    # Directories the host gets its own writable copy of (e.g. /etc/apt), or an empty one of (e.g.
    # /var/lib/apt): what the installer writes there stays in the host, not on the shared machine.
    private_copies: tuple[str, ...] = ()
    private_dirs: tuple[str, ...] = ()
    # sshd's host keys (ed25519 first). More than one: they live in a private /etc/ssh, as on a
    # real host, where a client of another preference (KubeOne's Go client) is shown another key.
    host_key_types: tuple[str, ...] = ("ed25519",)


@dataclass(frozen=True)
class ClientKeys:
    ed25519: Path
    rsa: Path
    ecdsa: Path

    def path(self, kind: str) -> Path:
        return {"ed25519": self.ed25519, "rsa": self.rsa, "ecdsa": self.ecdsa}[kind]

    @staticmethod
    def pub(path: Path) -> str:
        return Path(f"{path}.pub").read_text().strip()


def make_client_keys(directory: Path) -> ClientKeys:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, extra in (("ed25519", []), ("rsa", ["-b", "2048"]), ("ecdsa", ["-b", "256"])):
        path = directory / f"id_{kind}"
        run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", f"kvtest-{kind}", "-f", str(path)])
        paths[kind] = path
    return ClientKeys(**paths)


@dataclass
class Host:
    spec: HostSpec
    ip: str
    netns: str
    dir: Path
    lab: Lab
    inner_ip: str | None = None
    sudo_password: str | None = None
    uid: int | None = None
    host_key_line: str = ""
    host_key_lines: dict[str, str] = field(default_factory=dict)  # by type (ed25519, ecdsa, rsa)
    proc: Proc | None = field(default=None, repr=False)
    private: dict[str, Path] = field(default_factory=dict)  # private directory -> its folder on the machine

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def user(self) -> str | None:
        return self.spec.user

    @property
    def known_hosts_line(self) -> str:
        return f"{self.ip} {self.host_key_line}"

    # -------------------------------------------------------------- sshd lifecycle
    def start_sshd(self) -> None:
        assert self.proc is not None
        if self.proc.alive():
            return
        self.proc.start()
        # readiness: sshd has written its pid file after binding the listener
        wait_until(lambda: self.proc is not None and self.proc.check_alive(f"sshd {self.name}")
                   and (self.dir / "sshd.pid").exists(), 15, f"sshd on {self.name}")

    def stop_sshd(self) -> None:
        """Host down: the listener and every session die; new connections are refused."""
        if self.proc is not None:
            self.proc.stop()
        (self.dir / "sshd.pid").unlink(missing_ok=True)

    def kill_sessions(self) -> None:
        """Drop every open SSH connection to this host; the listener keeps accepting new ones."""
        assert self.proc is not None and self.proc.alive()
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def link_down(self) -> None:
        """Unreachable host: its interface goes down, packets to it vanish (connects time out)."""
        for dev in self._devs():
            run(["ip", "-n", self.netns, "link", "set", dev, "down"])

    def link_up(self) -> None:
        for dev in self._devs():
            run(["ip", "-n", self.netns, "link", "set", dev, "up"])

    def _devs(self) -> list[str]:
        return ["eth0", "eth1"] if self.inner_ip else ["eth0"]

    def run(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command as root inside this host's namespaces (mounts, hostname, network), not via SSH."""
        assert self.proc is not None and self.proc.alive(), f"sshd on {self.name} is not running"
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "-u", "-n", "--", *argv], **kw)


class Lab:
    def __init__(self, root: Path, client_keys: ClientKeys, stack: ExitStack) -> None:
        self.root = root
        self.client_keys = client_keys
        self._stack = stack
        self.id = uuid.uuid4().hex[:6]
        self.netns = f"kvlab-{self.id}"
        self.hosts: dict[str, Host] = {}
        self.known_hosts = root / "known_hosts"
        self._clients: list[paramiko.SSHClient] = []
        self.x = self._claim_subnet()
        self.subnet = f"10.77.{self.x}.0/24"
        self.inner_subnet = f"10.78.{self.x}.0/24"

    def _claim_subnet(self) -> int:
        # The blackhole routes double as a lock: another lab (or session) holding X makes `ip route add` fail.
        for x in random.sample(range(256), 256):
            if run(["ip", "route", "add", "blackhole", f"10.77.{x}.0/24"], check=False).returncode != 0:
                continue
            if run(["ip", "route", "add", "blackhole", f"10.78.{x}.0/24"], check=False).returncode != 0:
                run(["ip", "route", "del", "blackhole", f"10.77.{x}.0/24"], check=False)
                continue
            for net in (f"10.77.{x}.0/24", f"10.78.{x}.0/24"):
                self._stack.callback(run, ["ip", "route", "del", "blackhole", net], False)
            return x
        raise RuntimeError("no free 10.77.X.0/24 lab range")

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def bastion(self) -> Host | None:
        return next((h for h in self.hosts.values() if h.spec.bastion), None)

    # -------------------------------------------------------------- network
    def _add_netns(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self._stack.callback(run, ["ip", "netns", "del", name], False)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def build_network(self) -> None:
        self._add_netns(self.netns)
        for br, addr in (("br0", f"10.77.{self.x}.1/24"), ("br1", None)):
            run(["ip", "-n", self.netns, "link", "add", br, "type", "bridge"])
            if addr:
                run(["ip", "-n", self.netns, "addr", "add", addr, "dev", br])
            run(["ip", "-n", self.netns, "link", "set", br, "up"])

    def _plug(self, host_ns: str, dev: str, peer: str, bridge: str, addr: str) -> None:
        run(["ip", "link", "add", dev, "netns", host_ns, "type", "veth",
             "peer", "name", peer, "netns", self.netns])
        run(["ip", "-n", self.netns, "link", "set", peer, "master", bridge])
        run(["ip", "-n", self.netns, "link", "set", peer, "up"])
        run(["ip", "-n", host_ns, "addr", "add", addr, "dev", dev])
        run(["ip", "-n", host_ns, "link", "set", dev, "up"])

    # -------------------------------------------------------------- hosts
    def add_host(self, spec: HostSpec, index: int) -> Host:
        if spec.behind_bastion and spec.bastion:
            raise ValueError(f"{spec.name}: a host cannot be the bastion and behind it")
        ns = f"kvh-{self.id}-{index}"
        hdir = self.root / spec.name
        hdir.mkdir(parents=True)
        self._add_netns(ns)
        outer = f"10.77.{self.x}.{10 + index}"
        inner = f"10.78.{self.x}.{10 + index}"
        if spec.behind_bastion:
            self._plug(ns, "eth0", f"vi{index}", "br1", f"{inner}/24")
            host = Host(spec, inner, ns, hdir, self)
        else:
            self._plug(ns, "eth0", f"vo{index}", "br0", f"{outer}/24")
            host = Host(spec, outer, ns, hdir, self)
            if spec.bastion:
                host.inner_ip = f"10.78.{self.x}.254"
                self._plug(ns, "eth1", f"vb{index}", "br1", f"{host.inner_ip}/24")
        self._prepare_host(host)
        self.hosts[spec.name] = host
        self._stack.callback(host.stop_sshd)  # before start: a failed start is cleaned up too
        host.start_sshd()
        return host

    def _prepare_host(self, host: Host) -> None:
        spec, d = host.spec, host.dir
        assert spec.host_key_types[0] == "ed25519", "the first host key type is ed25519"
        keydir = d / "etc-ssh" if len(spec.host_key_types) > 1 else d
        keydir.mkdir(exist_ok=True)
        host_keys = []
        for kind in spec.host_key_types:
            key = keydir / f"ssh_host_{kind}_key"
            extra = {"rsa": ["-b", "2048"], "ecdsa": ["-b", "256"]}.get(kind, [])
            run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", spec.name, "-f", str(key)])
            host.host_key_lines[kind] = " ".join(Path(f"{key}.pub").read_text().split()[:2])
            host_keys.append(key)
        host.host_key_line = host.host_key_lines["ed25519"]

        # root's authorized keys outside any home directory (StrictModes off: files live under /tmp)
        auth = d / "authorized_keys"
        auth.mkdir()
        keys = "".join(ClientKeys.pub(self.client_keys.path(k)) + "\n" for k in spec.authorized_key_types)
        (auth / "root").write_text(keys)

        etc = d / "etc"
        etc.mkdir()
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        # root's own password field must not be locked ("!") or sshd without PAM refuses key logins too
        shadow = "".join(
            ("root:*:" + line.split(":", 2)[2] if line.startswith("root:") else line) + "\n"
            for line in Path("/etc/shadow").read_text().splitlines())
        home = d / "home"
        home.mkdir()
        sudoers = d / "sudoers.d"
        sudoers.mkdir(mode=0o750)
        if spec.user:
            u = spec.user
            # a uid/gid no entry of the machine's files uses, or `id` and sudo would resolve another name
            used = {line.split(":")[2] for line in (passwd + group).splitlines() if line.count(":") >= 2}
            uid = next(i for i in range(1000, 60000) if str(i) not in used)
            host.uid = uid
            passwd += f"{u}:x:{uid}:{uid}:kvinstall test user:/home/{u}:/bin/bash\n"
            group += f"{u}:x:{uid}:\n"
            pw_field = "*"
            if spec.sudo == "password":
                host.sudo_password = secrets.token_urlsafe(10)
                pw_field = run(["openssl", "passwd", "-6", "-stdin"],
                               input=host.sudo_password.encode()).stdout.decode().strip()
            shadow += f"{u}:{pw_field}:20000:0:99999:7:::\n"
            # the user cannot traverse pytest's 0700 temp dirs: its keys live in its home (bound at /home)
            (home / u / ".ssh").mkdir(parents=True)
            (home / u / ".ssh" / "authorized_keys").write_text(keys)
            for p in (home / u, home / u / ".ssh", home / u / ".ssh" / "authorized_keys"):
                shutil.chown(p, uid, uid)
            if spec.sudo != "none":
                tag = "NOPASSWD: " if spec.sudo == "nopasswd" else ""
                rule = sudoers / "kvtest"
                rule.write_text(f"{u} ALL=(ALL:ALL) {tag}ALL\n")
                rule.chmod(0o440)
        (etc / "passwd").write_text(passwd)
        (etc / "group").write_text(group)
        (etc / "shadow").write_text(shadow)
        (etc / "shadow").chmod(0o640)
        hosts = Path("/etc/hosts").read_text() + f"{host.ip} {spec.name}\n"
        (etc / "hosts").write_text(hosts)

        listen = [host.ip] + ([host.inner_ip] if host.inner_ip else [])
        cfg = [
            "Port 22",
            *(f"ListenAddress {a}" for a in listen),
            *(f"HostKey {k}" for k in host_keys),
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {auth}/%u .ssh/authorized_keys",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UseDNS no",
            "AllowTcpForwarding yes",
            "MaxStartups 200",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            spec.extra_sshd_config,
        ]
        (d / "sshd_config").write_text("\n".join(cfg) + "\n")

        boot = ["set -e", f"hostname {spec.name}"]
        for name in ("passwd", "group", "shadow", "hosts"):
            boot.append(f"mount --bind {etc / name} /etc/{name}")
        boot += [f"mount --bind {sudoers} /etc/sudoers.d", f"mount --bind {home} /home"]
        # A private copy of the OS trust store: what kvinstall installs there (a site registry's CA)
        # must not reach this machine's.
        for i, shared in enumerate(TRUST_STORE):
            if Path(shared).is_dir():
                private = d / f"trust-{i}"
                shutil.copytree(shared, private, symlinks=True)
                boot.append(f"mount --bind {private} {shared}")
        if keydir != d:
            if Path("/etc/ssh/moduli").is_file():
                shutil.copy("/etc/ssh/moduli", keydir / "moduli")
            boot.append(f"mount --bind {keydir} /etc/ssh")
        if spec.os_release is not None:
            (etc / "os-release").write_text(spec.os_release)
            boot.append(f"mount --bind {etc / 'os-release'} /usr/lib/os-release")
            if not Path("/etc/os-release").is_symlink():
                boot.append(f"mount --bind {etc / 'os-release'} /etc/os-release")
        for i, path in enumerate([*spec.private_copies, *spec.private_dirs]):
            own = d / "private" / str(i)
            if path in spec.private_copies:
                shutil.copytree(path, own, symlinks=True)
            else:
                own.mkdir(parents=True)
            boot.append(f"mount --bind {own} {path}")
            host.private[path] = own
        machine_kvm = Path("/dev/kvm").exists()
        if spec.kvm is not None and spec.kvm != machine_kvm:
            boot += self._private_dev(d / "dev", spec.kvm)
        sshd = [SSHD, "-D", "-e", "-f", str(d / "sshd_config")]
        if spec.cpus is not None:
            sshd = ["taskset", "-c", f"0-{spec.cpus - 1}", *sshd]
        boot.append("exec " + " ".join(sshd))
        (d / "boot.sh").write_text("\n".join(boot) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        host.proc = Proc(["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--propagation",
                          "private", "--", "/bin/sh", str(d / "boot.sh")], d / "sshd.log")

    @staticmethod
    def _private_dev(dev: Path, kvm: bool) -> list[str]:
        """Shell lines mounting a private /dev: the usual nodes, plus /dev/kvm only if ``kvm``."""
        lines = [f"mkdir -p {dev}", f"mount -t tmpfs -o mode=755 kvtest-dev {dev}"]
        for n in ("null", "zero", "full", "random", "urandom", "tty", "ptmx"):
            lines += [f"touch {dev}/{n}", f"mount --bind /dev/{n} {dev}/{n}"]
        lines += [f"mkdir {dev}/pts {dev}/shm", f"mount --bind /dev/pts {dev}/pts",
                  f"mount -t tmpfs -o mode=1777 kvtest-shm {dev}/shm",
                  f"ln -s /proc/self/fd {dev}/fd", f"ln -s /proc/self/fd/0 {dev}/stdin",
                  f"ln -s /proc/self/fd/1 {dev}/stdout", f"ln -s /proc/self/fd/2 {dev}/stderr"]
        if kvm:
            lines.append(f"mknod -m 660 {dev}/kvm c 10 232")
        lines.append(f"mount --move {dev} /dev")
        return lines

    def write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in self.hosts.values()))

    # -------------------------------------------------------------- client side
    def connect(self, ip: str, port: int = 22, timeout: float = 10.0) -> socket.socket:
        return connect_in(self.netns, ip, port, timeout)

    def run_in_lab(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        return run_in(self.netns, argv, **kw)

    def _host(self, host: Host | str) -> Host:
        return self.hosts[host] if isinstance(host, str) else host

    def sock_for(self, host: Host | str, timeout: float = 10.0) -> socket.socket | paramiko.Channel:
        h = self._host(host)
        if not h.spec.behind_bastion:
            return self.connect(h.ip, 22, timeout)
        bastion = self.bastion
        if bastion is None:
            raise RuntimeError(f"{h.name} is behind a bastion but the lab has none")
        transport = self.ssh(bastion).get_transport()
        assert transport is not None
        return transport.open_channel("direct-tcpip", (h.ip, 22), ("127.0.0.1", 0), timeout=timeout)

    def ssh(self, host: Host | str, user: str = "root", key: Path | None = None,
            timeout: float = 10.0) -> paramiko.SSHClient:
        h = self._host(host)
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self._clients.append(client)
        # an explicit PKey: with key_filename paramiko reports a refused key as "Invalid key" from its
        # key-type guessing instead of AuthenticationException
        pkey = paramiko.PKey.from_path(key or self.client_keys.ed25519)
        client.connect(h.ip, 22, username=user, pkey=pkey,
                       sock=self.sock_for(h, timeout), timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, look_for_keys=False, allow_agent=False)
        return client

    def exec(self, host: Host | str, command: str, user: str = "root", stdin: bytes | None = None,
             timeout: float = 30.0) -> tuple[int, str, str]:
        client = self.ssh(host, user)
        try:
            i, o, e = client.exec_command(command, timeout=timeout)
            if stdin is not None:
                i.write(stdin)
                i.channel.shutdown_write()
            out, err = o.read().decode(), e.read().decode()
            return o.channel.recv_exit_status(), out, err
        finally:
            client.close()

    def close_clients(self) -> None:
        for c in reversed(self._clients):
            c.close()
        self._clients.clear()


def _specs(hosts: int | Sequence[HostSpec]) -> list[HostSpec]:
    if isinstance(hosts, int):
        return [HostSpec(f"h{i + 1}") for i in range(hosts)]
    names = [s.name for s in hosts]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate host names: {names}")
    if sum(s.bastion for s in hosts) > 1:
        raise ValueError("at most one bastion per lab")
    return list(hosts)


@pytest.fixture(scope="session")
def ssh_client_keys(tmp_path_factory: pytest.TempPathFactory) -> ClientKeys:
    return make_client_keys(tmp_path_factory.mktemp("ssh-client-keys"))


def open_lab(stack: ExitStack, root: Path, client_keys: ClientKeys, hosts: int | Sequence[HostSpec]) -> Lab:
    """A lab whose teardown is registered on `stack` (for fixtures of any scope)."""
    specs = _specs(hosts)
    lab = Lab(root, client_keys, stack)
    lab.build_network()
    for i, spec in enumerate(specs, start=1):
        lab.add_host(spec, i)
    lab.write_known_hosts()
    stack.callback(lab.close_clients)  # registered last, runs first: clients close before sshd goes
    return lab


@contextlib.contextmanager
def _labs(tmp_path_factory: pytest.TempPathFactory, keys: ClientKeys
          ) -> Iterator[Callable[[int | Sequence[HostSpec]], Lab]]:
    with ExitStack() as stack:
        def make(hosts: int | Sequence[HostSpec]) -> Lab:
            return open_lab(stack, tmp_path_factory.mktemp("host-lab"), keys, hosts)

        yield make


@pytest.fixture
def host_lab(tmp_path_factory: pytest.TempPathFactory, ssh_client_keys: ClientKeys
             ) -> Iterator[Callable[[int | Sequence[HostSpec]], Lab]]:
    with _labs(tmp_path_factory, ssh_client_keys) as make:
        yield make


@pytest.fixture(scope="module")
def module_host_lab(tmp_path_factory: pytest.TempPathFactory, ssh_client_keys: ClientKeys
                    ) -> Iterator[Callable[[int | Sequence[HostSpec]], Lab]]:
    """host_lab for a whole test module (e.g. one converged platform its tests share)."""
    with _labs(tmp_path_factory, ssh_client_keys) as make:
        yield make
