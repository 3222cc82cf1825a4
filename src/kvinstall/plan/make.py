"""load -> desire -> observe -> diff, as one call for `plan` (and the start of `apply`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvinstall.catalog import load_catalog
from kvinstall.config.loader import load_file
from kvinstall.config.models import Config
from kvinstall.config.problems import Problem
from kvinstall.model import ArtifactSource, DesiredState
from kvinstall.plan.build import KubeOneDecision, build_plan
from kvinstall.plan.desired import desire
from kvinstall.plan.model import Observed, Plan
from kvinstall.plan.observe import cluster_client, observe_cluster
from kvinstall.state import kubeconfig_path, state_dir


@dataclass
class PlanResult:
    config: Config
    desired: DesiredState
    plan: Plan
    warnings: list[Problem]
    state: Path


def make_plan(
    file: Path,
    *,
    kubeconfig: Path | None = None,
    state_override: Path | None = None,
    source: ArtifactSource | None = None,
    refresh_hosts: bool = False,
    socket_factory: Any = None,
) -> PlanResult:
    from kvinstall.components.artifacts import NoFetch

    loaded = load_file(file)
    config = loaded.config
    state = state_dir(file, config.name, state_override)
    catalog = load_catalog()
    from kvinstall.components import default_components

    desired = desire(config, catalog, source or NoFetch(), components=default_components(state))
    observed = Observed()
    untrusted: dict[str, str] = {}
    host_results: dict[str, list[str]] = {}
    if refresh_hosts:
        untrusted, host_results = _refresh_hosts(config, state, socket_factory)
        observed.hosts = True
    else:
        observed.notes.append("hosts: not contacted (pass --refresh-hosts; preflight and apply always do)")
    kube = cluster_client(kubeconfig or kubeconfig_path(state), observed)
    cluster = None
    kubeone = None
    dns = None
    if kube is not None:
        cluster = observe_cluster(kube, desired)
        observed.cluster = True
        kubeone = kubeone_decision(kube, config, desired, state)
        if desired.upstream_dns:
            from kvinstall.kube.dns import ensure_upstream

            dns = ensure_upstream(kube, desired.upstream_dns, dry_run=True)
    plan = build_plan(
        desired,
        observed=observed,
        cluster=cluster,
        kubeone=kubeone,
        untrusted_host_keys=untrusted,
        host_results=host_results,
        warnings=[str(w) for w in loaded.warnings],
        dns=dns,
    )
    return PlanResult(config=config, desired=desired, plan=plan, warnings=loaded.warnings, state=state)


def kubeone_decision(kube: Any, config: Config, desired: DesiredState, state: Path) -> KubeOneDecision:
    """What apply's KubeOne phase will decide: skip when its manifest is the one last applied from
    this state directory and every node is Ready at the wanted version."""
    from kvinstall.kubeone.runner import should_skip
    from kvinstall.phases.base import nodes_ready_at_version
    from kvinstall.phases.journal import Journal

    healthy, _ = nodes_ready_at_version(kube, config)
    skip, reason = should_skip(desired.kubeone_manifest_sha256, Journal.load(state).kubeone_manifest, healthy)
    return KubeOneDecision(skip=skip, reason=reason)


def _refresh_hosts(
    config: Config, state: Path, socket_factory: Any
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Host facts and checks for the plan (read-only: new host keys are listed, never trusted here)."""
    from kvinstall.hosts.hostkeys import host_id
    from kvinstall.hosts.preflight import run_preflight

    report = run_preflight(
        config,
        accept_new_host_keys=False,
        skip=set(),
        known_hosts_path=state / "known_hosts",
        socket_factory=socket_factory,
    )
    untrusted: dict[str, str] = {}
    results: dict[str, list[str]] = {}
    for host, name in zip(config.hosts, report.hosts, strict=True):
        hid = host_id(host.address, host.port or config.ssh.port)
        if hid in report.untrusted_host_keys:
            untrusted[host.address] = report.untrusted_host_keys[hid]
        if name in report.host_errors:
            results[host.address] = [f"unreachable: {str(report.host_errors[name]).splitlines()[0]}"]
        else:
            results[host.address] = [
                f"{r.check}: {r.status}" + (f" ({r.message})" if r.status != "pass" else "")
                for r in report.results
                if r.host == name and r.status != "pass"
            ]
    return untrusted, results
