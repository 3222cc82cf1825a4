"""Change scripts on the hosts: one POSIX sh script per host (run with sudo) that puts files in place
when they differ and prints `changed` or `unchanged`, over a pool of its own. Used for what kvinstall
sets up on the hosts before KubeOne runs (the site package source, CA files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kvinstall.errors import SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy
from kvinstall.hosts.ssh import Connection, SocketFactory, SSHPool, load_ssh_config, resolve_targets

if TYPE_CHECKING:
    from kvinstall.config.models import Config, Host


def run_change_scripts(
    config: Config,
    script_for: Callable[[Host], str],
    *,
    what: str,
    known_hosts_path: str | Path,
    socket_factory: SocketFactory | None = None,
    user_known_hosts: Sequence[str | Path] | None = None,
    ssh_config_path: str | Path | None = None,
) -> dict[str, bool]:
    """Run `script_for(host)` on every host; which hosts changed. SSHError naming the first host that
    failed (the others are done). Host keys are checked as in preflight; none is trusted anew."""
    targets = resolve_targets(config, load_ssh_config(ssh_config_path))
    scripts = {t.name: script_for(h) for h, t in zip(config.hosts, targets, strict=True)}
    policy = HostKeyPolicy(
        Path(known_hosts_path),
        user_known_hosts=None if user_known_hosts is None else [Path(p) for p in user_known_hosts],
    )

    def one(c: Connection) -> bool:
        res = c.run_script(scripts[c.target.name], timeout=120)
        status = res.stdout.strip()
        if res.exit_code != 0 or status not in ("changed", "unchanged"):
            raise SSHError(
                f"{what} failed (exit code {res.exit_code}): {res.stderr.strip()[:300]}", where=c.target.name
            )
        return status == "changed"

    with SSHPool(policy, parallelism=config.ssh.parallelism, socket_factory=socket_factory) as pool:
        results = pool.run_all(targets, one)
    failed = [r for r in results.values() if isinstance(r, SSHError)]
    if failed:
        raise failed[0]
    return {name: bool(r) for name, r in results.items()}
