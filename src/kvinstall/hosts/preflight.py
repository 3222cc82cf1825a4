"""Preflight: gather facts on every host in parallel, then evaluate the checks.

A host that cannot be reached, refuses the login, presents an untrusted key or drops the connection
gets a per-host error; the other hosts are checked as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvinstall.config.models import Config
from kvinstall.errors import KvError, PreflightError, SSHError, UsageError
from kvinstall.hosts.checks import (
    CHECKS,
    CHECKS_BY_ID,
    CheckResult,
    ClusterContext,
    HostContext,
    evaluate,
    site_endpoints,
)
from kvinstall.hosts.facts import REACH_TIMEOUT_S, HostFacts, Peer, facts_script, parse_facts
from kvinstall.hosts.hostkeys import HostKeyPolicy
from kvinstall.hosts.ssh import (
    Connection,
    HostTarget,
    SocketFactory,
    SSHPool,
    load_ssh_config,
    resolve_targets,
)

# Facts gathering is quick; a host that takes longer than this is treated as hung, whatever the
# (much longer) command timeout for installation steps says.
FACTS_TIMEOUT_CAP_S = 120.0


@dataclass(frozen=True)
class PreflightReport:
    """host x check -> pass / fail / warn / skipped, plus hosts that could not be checked at all."""

    hosts: tuple[str, ...]
    results: tuple[CheckResult, ...]
    host_errors: Mapping[str, SSHError] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # shown to the user (e.g. checks skipped by request)
    accepted_host_keys: Mapping[str, str] = field(
        default_factory=dict
    )  # host id -> fingerprint (newly trusted)
    untrusted_host_keys: Mapping[str, str] = field(default_factory=dict)  # host id -> fingerprint
    facts: Mapping[str, HostFacts] = field(default_factory=dict)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.host_errors

    def result(self, host: str, check: str) -> CheckResult | None:
        for r in self.results:
            if r.host == host and r.check == check:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hosts": list(self.hosts),
            "results": [r.to_dict() for r in self.results],
            "hostErrors": {h: e.to_dict() for h, e in self.host_errors.items()},
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
            "acceptedHostKeys": dict(self.accepted_host_keys),
            "untrustedHostKeys": dict(self.untrusted_host_keys),
        }

    def failure(self) -> KvError | None:
        """SSHError when a host could not be checked, PreflightError when a check failed, else None."""
        if self.host_errors:
            first = next(iter(self.host_errors.values()))
            if len(self.host_errors) == 1:
                return first
            return SSHError(
                f"{len(self.host_errors)} hosts could not be checked: "
                + "; ".join(str(e).splitlines()[0] for e in self.host_errors.values()),
                hint=first.hint,
            )
        if self.failures:
            lines = [f"{r.host}: {r.check}: {r.message}" for r in self.failures]
            return PreflightError(
                f"{len(lines)} preflight check(s) failed:\n  " + "\n  ".join(lines),
                hint="fix the hosts, or skip a check with --skip-check <id> if you know better",
            )
        return None

    def raise_for_failures(self) -> None:
        failure = self.failure()
        if failure is not None:
            raise failure


def gather_facts(
    conn: Connection,
    peers: Sequence[Peer],
    timeout: float,
    reach_timeout: float = REACH_TIMEOUT_S,
    site: Sequence[Peer] = (),
    data_path: str | None = None,
) -> HostFacts:
    script = facts_script(
        peers, check_sudo=conn.target.needs_sudo, reach_timeout=reach_timeout, site=site, data_path=data_path
    )
    out = conn.run_script(script, sudo=False, timeout=timeout)
    if "@@end" not in out.stdout:
        # The script always ends with the marker: without it, the output is truncated.
        raise SSHError(
            f"facts gathering ended early (exit code {out.exit_code}): {out.stderr.strip()[:300]}",
            where=conn.target.name,
        )
    return parse_facts(out.stdout)


def peers_of(config: Config, targets: Sequence[HostTarget], index: int) -> list[Peer]:
    """The private address and SSH port of every host except hosts[index]."""
    return [
        Peer(h.internal_address, t.port)
        for i, (h, t) in enumerate(zip(config.hosts, targets, strict=True))
        if i != index
    ]


def run_preflight(
    config: Config,
    *,
    accept_new_host_keys: bool,
    skip: AbstractSet[str],
    known_hosts_path: str | Path,
    socket_factory: SocketFactory | None = None,
    user_known_hosts: Sequence[str | Path] | None = None,
    ssh_config_path: str | Path | None = None,
    pool: SSHPool | None = None,
    record_kubeone_keys: bool = False,
) -> PreflightReport:
    """Facts from every host, then every applicable check.

    known_hosts_path is kvinstall's own known_hosts (in the state directory; new keys are recorded
    there). user_known_hosts defaults to ~/.ssh/known_hosts. Pass `pool` to reuse connections
    afterwards (the caller closes it); otherwise a pool is opened and closed here.
    record_kubeone_keys: also verify and record the host keys KubeOne will be shown (apply; see
    hosts/kubeone_view.py).
    """
    unknown = sorted(s for s in skip if s not in CHECKS_BY_ID)
    if unknown:
        raise UsageError(
            f"unknown preflight check id(s) to skip: {', '.join(unknown)}",
            hint="valid ids: " + ", ".join(c.id for c in CHECKS),
        )
    targets = resolve_targets(config, load_ssh_config(ssh_config_path))
    own_pool = pool is None
    if pool is None:
        policy = HostKeyPolicy(
            Path(known_hosts_path),
            user_known_hosts=None if user_known_hosts is None else [Path(p) for p in user_known_hosts],
            accept_new=accept_new_host_keys,
        )
        pool = SSHPool(policy, parallelism=config.ssh.parallelism, socket_factory=socket_factory)
    timeout = min(config.ssh.command_timeout, FACTS_TIMEOUT_CAP_S)
    peers = {t.name: peers_of(config, targets, i) for i, t in enumerate(targets)}
    site = [Peer(host, port) for _, host, port in site_endpoints(config)]
    notes: list[str] = []
    try:
        # Peers (and the offline site) are probed with the connect timeout the config trusts for SSH.
        reach = config.ssh.connect_timeout
        lh = config.components.longhorn
        data_path = lh.data_path if lh.enabled else None
        gathered = pool.run_all(
            targets, lambda c: gather_facts(c, peers[c.target.name], timeout, reach, site, data_path)
        )
        if record_kubeone_keys:
            from kvinstall.hosts.kubeone_view import record_kubeone_keys as record

            failed = [n for n, g in gathered.items() if isinstance(g, SSHError)]
            key_errors, notes = record(config, pool, targets, skip=failed)
            gathered.update(key_errors)
    finally:
        if own_pool:
            pool.close()
    contexts: list[HostContext] = []
    errors: dict[str, SSHError] = {}
    for host, target in zip(config.hosts, targets, strict=True):
        got = gathered[target.name]
        if isinstance(got, SSHError):
            errors[target.name] = got
        else:
            contexts.append(HostContext(target.name, host, target.user, got))
    for name, got in gathered.items():  # bastions KubeOne connects to
        if isinstance(got, SSHError) and name not in errors:
            errors[name] = got
    skipped = tuple(sorted(skip))
    results = evaluate(ClusterContext(config, contexts), skip=set(skip))
    return PreflightReport(
        hosts=tuple(t.name for t in targets),
        results=tuple(results),
        host_errors=errors,
        skipped=skipped,
        warnings=(*pool.policy.notes, *(f"preflight check {s!r} skipped by request" for s in skipped), *notes),
        accepted_host_keys=dict(pool.policy.accepted),
        untrusted_host_keys=dict(pool.policy.untrusted),
        facts={c.name: c.facts for c in contexts},
    )
