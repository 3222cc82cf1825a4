"""The hosts' package source in offline mode: the site package repository (`mirror serve`), set up on
every host before KubeOne runs.

KubeOne v1.13 with `systemPackages.configureRepositories: false` runs `apt-get update` and
`apt-get install kubelet=<version>-* kubeadm ... containerd.io=2.2.*` against whatever sources the
host has: it never adds a repository of its own. So kvinstall writes, on each host (with sudo):
    /etc/apt/keyrings/kvinstall-site.gpg               the repository's signing key
    /etc/apt/kvinstall-site-ca.crt                     the CA of its certificate
    /etc/apt/apt.conf.d/60kvinstall-site               Acquire::https::<host>::CaInfo for that CA
    /etc/apt/sources.list.d/kvinstall-site.list        deb [signed-by=...] URL/<os-release> kvinstall main
The OS release path is chosen on the host from /etc/os-release. Files are written only when their
content differs, so a re-run changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kvinstall.config.models import Config
from kvinstall.errors import LocalIOError, SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy
from kvinstall.hosts.ssh import Connection, SocketFactory, SSHPool, load_ssh_config, resolve_targets

KEYRING = "/etc/apt/keyrings/kvinstall-site.gpg"
CA = "/etc/apt/kvinstall-site-ca.crt"  # apt's own folder: apt is its only reader
APT_CONF = "/etc/apt/apt.conf.d/60kvinstall-site"
SOURCES = "/etc/apt/sources.list.d/kvinstall-site.list"
SUITE_AND_COMPONENT = "kvinstall main"  # as mirror.packages names them (hosts/ does not import mirror/)
RHEL_LIKE = ("rhel", "rocky", "centos", "almalinux")


@dataclass(frozen=True)
class SourceFiles:
    url: str
    distributions: tuple[str, ...]
    key: bytes
    ca: bytes | None


def source_files(config: Config) -> SourceFiles | None:
    """What the hosts get, read from the files the config names; None without a package repository."""
    off = config.offline
    repo = off.package_repository
    if not off.enabled or repo is None:
        return None
    ca_path = repo.ca_file or off.ca_file

    def read(path: str, what: str) -> bytes:
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise LocalIOError(f"cannot read the {what}: {exc.strerror or exc}", where=path) from exc

    return SourceFiles(
        url=repo.url,
        distributions=tuple(off.host_packages.distributions),
        key=read(repo.signing_key, "package repository signing key"),
        ca=read(ca_path, "package repository CA") if ca_path else None,
    )


def setup_script(files: SourceFiles, *, root: str = "") -> str:
    """A POSIX sh script (run as root) that points apt at the site repository; prints `changed` or
    `unchanged`. `root` prefixes every path (tests use a private folder; hosts use '')."""
    host = urlsplit(files.url).hostname or ""
    keyring, ca, conf, sources = (root + p for p in (KEYRING, CA, APT_CONF, SOURCES))
    served = " ".join(files.distributions)
    lines = [
        "set -eu",
        "if ! command -v apt-get >/dev/null 2>&1; then",
        "  echo 'kvinstall: this host has no apt-get; the site repository serves Debian/Ubuntu packages' >&2; exit 3",
        "fi",
        ". /etc/os-release",
        f'case "$ID" in {"|".join(RHEL_LIKE)}) ver=${{VERSION_ID%%.*}} ;; *) ver=$VERSION_ID ;; esac',
        'dist="$ID-$ver"',
        f'case " {served} " in *" $dist "*) ;; *)',
        f'  echo "kvinstall: $dist is not among the served OS releases ({served})" >&2; exit 3 ;;',
        "esac",
        "changed=0",
        # put PATH MODE BASE64: write PATH only when its content differs
        "put() {",
        "  want=$(printf %s \"$3\" | base64 -d | sha256sum | cut -d' ' -f1)",
        "  have=$(sha256sum \"$1\" 2>/dev/null | cut -d' ' -f1 || true)",
        "  if [ \"$want\" != \"$have\" ]; then",
        "    mkdir -p \"$(dirname \"$1\")\"",
        "    printf %s \"$3\" | base64 -d > \"$1.kvinstall-tmp\"",
        "    chmod \"$2\" \"$1.kvinstall-tmp\" && mv \"$1.kvinstall-tmp\" \"$1\"",
        "    changed=1",
        "  fi",
        "}",
        f"put {shlex.quote(keyring)} 0644 {_b64(files.key)}",
    ]
    if files.ca is not None:
        conf_text = f'Acquire::https::{host}::CaInfo "{ca}";\n'
        lines += [f"put {shlex.quote(ca)} 0644 {_b64(files.ca)}", f"put {shlex.quote(conf)} 0644 {_b64(conf_text.encode())}"]
    line = f"deb [signed-by={keyring}] {files.url.rstrip('/')}/"
    lines += [
        f'line={shlex.quote(line)}"$dist "{shlex.quote(SUITE_AND_COMPONENT)}',
        f'put {shlex.quote(sources)} 0644 "$(printf \'%s\\n\' "$line" | base64 | tr -d \'\\n\')"',
        'if [ "$changed" = 1 ]; then echo changed; else echo unchanged; fi',
    ]
    return "\n".join(lines) + "\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def digest(config: Config) -> str:
    """What the hosts' package source is (URL, releases, key, CA): for the journal's input hash."""
    files = source_files(config)
    if files is None:
        return ""
    h = hashlib.sha256(f"{files.url}\0{' '.join(files.distributions)}\0".encode())
    h.update(files.key)
    h.update(files.ca or b"")
    return h.hexdigest()


def configure(
    config: Config,
    *,
    known_hosts_path: str | Path,
    socket_factory: SocketFactory | None = None,
    user_known_hosts: Sequence[str | Path] | None = None,
    ssh_config_path: str | Path | None = None,
) -> dict[str, bool]:
    """Point every host's apt at the site repository; which hosts changed. SSHError naming the first
    host that failed (the others are done). Host keys are checked as in preflight; none is trusted anew."""
    files = source_files(config)
    if files is None:
        return {}
    script = setup_script(files)
    targets = resolve_targets(config, load_ssh_config(ssh_config_path))
    policy = HostKeyPolicy(
        Path(known_hosts_path),
        user_known_hosts=None if user_known_hosts is None else [Path(p) for p in user_known_hosts],
    )

    def one(c: Connection) -> bool:
        res = c.run_script(script, timeout=120)
        status = res.stdout.strip()
        if res.exit_code != 0 or status not in ("changed", "unchanged"):
            raise SSHError(
                f"setting up the site package repository failed (exit code {res.exit_code}): "
                f"{res.stderr.strip()[:300]}",
                where=c.target.name,
            )
        return status == "changed"

    with SSHPool(policy, parallelism=config.ssh.parallelism, socket_factory=socket_factory) as pool:
        results = pool.run_all(targets, one)
    failed = [r for r in results.values() if isinstance(r, SSHError)]
    if failed:
        raise failed[0]
    return {name: bool(r) for name, r in results.items()}
