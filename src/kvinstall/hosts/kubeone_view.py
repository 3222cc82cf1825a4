"""The SSH host keys KubeOne will be shown: verified and on record before KubeOne runs.

KubeOne checks a host's key only when the manifest gives it one (`sshHostPublicKey`), and compares
it with whatever key the host presents to its Go client, which prefers ECDSA, then RSA, then
ed25519. kvinstall's own client prefers ed25519, so on a host with several keys the key kvinstall
verified is not the one KubeOne sees. Preflight therefore also makes a key exchange the way KubeOne
will (same address, port, bastion and key preference) and accepts the key it gets when it is on
record (pinned or known_hosts), when the host, over the connection kvinstall already verified,
holds it in /etc/ssh, or with --accept-new-host-keys; it is then recorded in kvinstall's own
known_hosts. The KubeOne phase reads the keys back from the records and refuses to run KubeOne for
a host without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from kvinstall.config.models import Bastion, Config
from kvinstall.errors import SSHError
from kvinstall.hosts.hostkeys import (
    KUBEONE_KEY_ALGORITHMS,
    HostKeyPolicy,
    KnownKey,
    fingerprint,
    host_id,
    kubeone_choice,
    kubeone_decide,
    line_of,
    parse_public_key_line,
)
from kvinstall.hosts.ssh import Connection, HostTarget, JumpTarget, SSHPool

HOST_KEY_FILES = "cat /etc/ssh/ssh_host_*_key.pub"


@dataclass(frozen=True)
class View:
    """A host (or bastion) as KubeOne reaches it: the manifest's address and port (KubeOne reads no
    ~/.ssh/config), through the config's bastion."""

    name: str
    address: str
    port: int
    pinned: str | None
    via: JumpTarget | None = None


def _bastion_view(b: Bastion) -> View:
    return View(f"bastion {b.address}:{b.port}", b.address, b.port, b.host_public_key)


def host_views(config: Config, targets: Sequence[HostTarget]) -> list[tuple[HostTarget, View]]:
    """Each host's view, paired with the resolved target kvinstall connects to."""
    out = []
    for h, t in zip(config.hosts, targets, strict=True):
        port = h.port or config.ssh.port
        via = t.bastion if (h.bastion or config.ssh.bastion) is not None else None
        out.append((t, View(t.name, h.address, port, h.host_public_key, via)))
    return out


def bastion_views(config: Config, targets: Sequence[HostTarget]) -> list[tuple[JumpTarget, View]]:
    seen: dict[tuple[str, int], tuple[JumpTarget, View]] = {}
    for h, t in zip(config.hosts, targets, strict=True):
        b = h.bastion or config.ssh.bastion
        if b is not None and t.bastion is not None:
            seen.setdefault((b.address, b.port), (t.bastion, _bastion_view(b)))
    return list(seen.values())


def held_keys(conn: Connection) -> set[bytes]:
    """The public host keys in /etc/ssh of a host, read over a verified connection."""
    res = conn.run(["sh", "-c", HOST_KEY_FILES], sudo=False, timeout=60)
    blobs = set()
    for line in res.stdout.splitlines():
        try:
            blobs.add(parse_public_key_line(line)[1])
        except ValueError:
            continue
    return blobs


def ensure_on_record(
    pool: SSHPool, policy: HostKeyPolicy, view: View, trusted: Connection, timeout: float
) -> str:
    """Make sure the key `view` shows KubeOne is on record; return how ('on record', 'held by the
    host', 'accepted'). Raises SSHError when it cannot be trusted."""
    key: paramiko.PKey = pool.presented_key(
        view.address, view.port, via=view.via, timeout=timeout, key_types=KUBEONE_KEY_ALGORITHMS, where=view.name
    )
    known = policy.on_record(view.address, view.port, pinned=view.pinned)
    verdict = kubeone_decide(key.get_name(), key.asbytes(), known)
    fp = f"{fingerprint(key)} ({key.get_name()})"
    if verdict == "trusted":
        return "on record"
    if verdict == "changed":
        same = [k.fingerprint for k in known if k.key_type == key.get_name()]
        raise SSHError(
            f"HOST KEY CHANGED for KubeOne's connection: presented {fp}, known {', '.join(same)}",
            where=view.name,
            hint="if the host was reinstalled, remove its stale line from known_hosts (kvinstall's own "
            "is in the state directory) and re-run; otherwise the connection may be intercepted",
        )
    if key.asbytes() in held_keys(trusted):
        policy.record(view.address, view.port, key)
        return "held by the host"
    if policy.accept_new:
        policy.record(view.address, view.port, key)
        return "accepted"
    raise SSHError(
        f"KubeOne will be shown the host key {fp}, which is not on record (pinned or known_hosts) "
        "and not among the host's /etc/ssh keys",
        where=view.name,
        hint="add that key to known_hosts after checking it on the host, or re-run with "
        "--accept-new-host-keys",
    )


def record_kubeone_keys(
    config: Config, pool: SSHPool, targets: Sequence[HostTarget], *, skip: Sequence[str] = ()
) -> tuple[dict[str, SSHError], list[str]]:
    """ensure_on_record for every host (except those named in `skip`) and bastion. Returns the
    errors by host name and notes for keys accepted as new."""
    policy = pool.policy
    timeout = config.ssh.connect_timeout
    errors: dict[str, SSHError] = {}
    notes: list[str] = []

    def host(c: Connection) -> str:
        view = views[c.target.name]
        return ensure_on_record(pool, policy, view, c, timeout)

    views = {t.name: v for t, v in host_views(config, targets) if t.name not in skip}
    todo = [t for t in targets if t.name in views]
    for name, got in pool.run_all(todo, host).items():
        if isinstance(got, SSHError):
            errors[name] = got
        elif got == "accepted":
            notes.append(f"{name}: the host key KubeOne will be shown was trusted and recorded")
    for jump, view in bastion_views(config, targets):
        try:
            how = ensure_on_record(pool, policy, view, pool.jump_connection(jump, timeout), timeout)
        except SSHError as exc:
            errors[view.name] = exc
            continue
        if how == "accepted":
            notes.append(f"{view.name}: the host key KubeOne will be shown was trusted and recorded")
    return errors, notes


def kubeone_host_keys(
    config: Config, own_known_hosts: str | Path, *, user_known_hosts: Sequence[str | Path] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The key KubeOne will be shown by each host and bastion, from the records ('type base64', by
    host_id(address, port)), and the names of those without one."""
    policy = HostKeyPolicy(
        Path(own_known_hosts), user_known_hosts=None if user_known_hosts is None else [Path(p) for p in user_known_hosts]
    )
    wanted: dict[str, tuple[str, int, str | None]] = {}
    for h in config.hosts:
        port = h.port or config.ssh.port
        wanted.setdefault(f"{h.address}:{port}", (h.address, port, h.host_public_key))
        b = h.bastion or config.ssh.bastion
        if b is not None:
            wanted.setdefault(f"bastion {b.address}:{b.port}", (b.address, b.port, b.host_public_key))
    keys: dict[str, str] = {}
    missing: list[str] = []
    for name, (address, port, pinned) in wanted.items():
        choice: KnownKey | None = kubeone_choice(policy.on_record(address, port, pinned=pinned))
        if choice is None:
            missing.append(name)
        else:
            keys[host_id(address, port)] = line_of(choice.key_type, choice.blob)
    return keys, missing


def require_all(missing: Sequence[str]) -> None:
    if missing:
        raise SSHError(
            f"no verified host key for {', '.join(missing)}: KubeOne would connect without checking "
            "who answers",
            where="kubeone",
            hint="run apply with its preflight phase (it verifies and records the keys), pin "
            "hostPublicKey in the config, or add the hosts to known_hosts",
        )
