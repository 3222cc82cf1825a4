"""CA files kvinstall puts on the hosts before KubeOne runs (phase `host-trust`), for what KubeOne's
API cannot carry.

- `offline.caFile` (the site registry's CA): KubeOne v1.13 configures containerd's registries with
  mirrors and `insecureSkipVerify` only; the hosts.toml it writes has no `ca` entry. containerd then
  verifies a registry against the host's trust store, so the CA goes there (Debian/Ubuntu:
  /usr/local/share/ca-certificates + update-ca-certificates; RHEL family:
  /etc/pki/ca-trust/source/anchors + update-ca-trust), on every host, and a running containerd is
  restarted to read it.
- `auth.issuerCAFile` (the OIDC issuer's CA): on every control plane at OIDC_CA_PATH, which the
  manifest names as the kube-apiserver's --oidc-ca-file (kubeadm mounts /etc/ssl/certs into it).

Each host gets one script (run with sudo) that writes a file only when its content differs, so a
re-run changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kvinstall.config.models import OIDC_CA_PATH, Config, Host
from kvinstall.errors import LocalIOError
from kvinstall.hosts.scripts import run_change_scripts
from kvinstall.hosts.ssh import SocketFactory

REGISTRY_CA_NAME = "kvinstall-registry-ca.crt"
_PEM = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class HostFile:
    """A file for the hosts: `path` on the host (for `trust`: the trust store's own name), the
    local file it comes from, and whether it goes into the OS trust store."""

    path: str
    source: str
    control_plane_only: bool = False
    trust: bool = False

    def for_host(self, host: Host) -> bool:
        return host.role == "controlPlane" or not self.control_plane_only


def host_files(config: Config) -> list[HostFile]:
    """The CA files `config` puts on hosts (none for most configs). Pure."""
    files = []
    off = config.offline
    if off.enabled and off.ca_file and not off.insecure:
        files.append(HostFile(REGISTRY_CA_NAME, off.ca_file, trust=True))
    if config.auth.mode != "none" and config.auth.issuer_ca_file:
        files.append(HostFile(OIDC_CA_PATH, config.auth.issuer_ca_file, control_plane_only=True))
    return files


def read_pem(f: HostFile) -> bytes:
    """The local CA file's bytes; LocalIOError unless it can be read and holds a PEM certificate."""
    try:
        data = Path(f.source).expanduser().read_bytes()
    except OSError as exc:
        raise LocalIOError(f"cannot read the CA file: {exc.strerror or exc}", where=f.source) from exc
    if _PEM not in data:
        raise LocalIOError("not a PEM certificate (no BEGIN CERTIFICATE line)", where=f.source)
    return data


def digest(config: Config) -> str:
    """What the host files are, for the journal's input hash: their paths and contents (a file that
    cannot be read counts by its name; the phase reports it)."""
    h = hashlib.sha256()
    for f in host_files(config):
        h.update(f"{f.path}\0{f.source}\0".encode())
        try:
            h.update(Path(f.source).expanduser().read_bytes())
        except OSError:
            h.update(b"\0unreadable")
    return h.hexdigest()


def install_script(files: Sequence[tuple[HostFile, bytes]]) -> str:
    """A POSIX sh script that puts `files` in place when they differ, refreshes the trust store if a
    CA in it changed and then restarts a running containerd; prints 'changed' or 'unchanged'."""
    lines = ["set -eu", "changed=0", "trust=0"]
    if any(f.trust for f, _ in files):
        lines += [
            "if command -v update-ca-certificates >/dev/null 2>&1; then",
            "  anchors=/usr/local/share/ca-certificates; refresh=update-ca-certificates",
            "elif command -v update-ca-trust >/dev/null 2>&1; then",
            "  anchors=/etc/pki/ca-trust/source/anchors; refresh='update-ca-trust extract'",
            "else",
            "  echo 'no update-ca-certificates or update-ca-trust on this host' >&2; exit 3",
            "fi",
        ]
    for f, data in files:
        path = f'"$anchors"/{shlex.quote(f.path)}' if f.trust else shlex.quote(f.path)
        b64 = base64.b64encode(data).decode()
        lines += [
            f"want={shlex.quote(hashlib.sha256(data).hexdigest())}",
            f'have=$(sha256sum {path} 2>/dev/null | cut -d" " -f1 || true)',
            'if [ "$have" != "$want" ]; then',
            f"  mkdir -p $(dirname {path})",
            f"  echo {b64} | base64 -d > {path}.kvinstall-tmp",
            f"  chmod 0644 {path}.kvinstall-tmp && mv {path}.kvinstall-tmp {path}",
            "  changed=1" + ("; trust=1" if f.trust else ""),
            "fi",
        ]
    lines += [
        'if [ "$trust" = 1 ]; then',
        "  $refresh >/dev/null",
        "  if systemctl is-active --quiet containerd 2>/dev/null; then systemctl restart containerd; fi",
        "fi",
        'if [ "$changed" = 1 ]; then echo changed; else echo unchanged; fi',
    ]
    return "\n".join(lines) + "\n"


def install_host_files(
    config: Config,
    *,
    known_hosts_path: str | Path,
    socket_factory: SocketFactory | None = None,
    user_known_hosts: Sequence[str | Path] | None = None,
    ssh_config_path: str | Path | None = None,
) -> dict[str, bool]:
    """Put the CA files on every host that gets them; which hosts changed. SSHError naming the first
    host that failed (the others are done)."""
    files = host_files(config)
    if not files:
        return {}
    contents = {f.path: read_pem(f) for f in files}
    return run_change_scripts(
        config,
        lambda host: install_script([(f, contents[f.path]) for f in files if f.for_host(host)]),
        what="putting the CA files in place",
        known_hosts_path=known_hosts_path,
        socket_factory=socket_factory,
        user_known_hosts=user_known_hosts,
        ssh_config_path=ssh_config_path,
    )
