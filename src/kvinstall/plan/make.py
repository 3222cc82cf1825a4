"""load -> desire -> observe -> diff, as one call for `plan` (and the start of `apply`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvinstall.catalog import load_catalog
from kvinstall.components.base import ArtifactSource
from kvinstall.config.loader import load_file
from kvinstall.config.models import Config
from kvinstall.config.problems import Problem
from kvinstall.plan.build import build_plan
from kvinstall.plan.desired import DesiredState, desire
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
) -> PlanResult:
    from kvinstall.components.artifacts import NoFetch

    loaded = load_file(file)
    config = loaded.config
    state = state_dir(file, config.name, state_override)
    catalog = load_catalog()
    from kvinstall.components import default_components

    desired = desire(config, catalog, source or NoFetch(), components=default_components(state))
    observed = Observed()
    observed.notes.append("hosts: not contacted (preflight and apply gather host facts)")
    kube = cluster_client(kubeconfig or kubeconfig_path(state), observed)
    cluster = None
    if kube is not None:
        cluster = observe_cluster(kube, desired)
        observed.cluster = True
    plan = build_plan(desired, observed=observed, cluster=cluster, warnings=[str(w) for w in loaded.warnings])
    return PlanResult(config=config, desired=desired, plan=plan, warnings=loaded.warnings, state=state)
