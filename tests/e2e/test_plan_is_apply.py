"""`plan` is exactly what `apply` then does: in three scenarios (a fresh install, drift repaired, a
component removed), the phases and object actions of `kvinstall plan -o json` are exactly the phases
apply runs or skips and the objects it reports (`apply --output json` events), no more, no less.

Both commands run as CI runs them: `python -m kvinstall` subprocesses, in the root network namespace.
That namespace cannot reach the lab's hosts, so both get `--skip preflight` (plan takes apply's --only and
--skip, so it still describes exactly the run that follows); the host phase is covered by the in-process
e2e tests (conftest.apply_in_process), the object phases are what this test compares.

World: real kube-apiserver + real helm; KubeOne is a stand-in and a fake controller loop plays the
operators (see platform_world.py). The module has its own apiserver: the first scenario is a fresh
cluster.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import World, json_lines, lab_config, run_cli, write_config

pytestmark = pytest.mark.e2e

OBJECT_ACTIONS = ("create", "update", "delete")
KUBEVIRT_CR = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
ROLEBINDING = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/workspace-admin"
DEX_DEPLOYMENT = "/apis/apps/v1/namespaces/dex/deployments/dex"
MERGE = {"Content-Type": "application/merge-patch+json"}

Phases = list[tuple[str, str, Counter[tuple[str, str]]]]


def planned(plan: dict[str, Any]) -> Phases:
    """Per phase of the plan, in order: (name, run or skipped, the objects it will write or delete)."""
    out: Phases = []
    for phase in plan["phases"]:
        actions = phase["actions"]
        skipped = bool(actions) and all(a["action"] == "skip" for a in actions)
        objects = Counter((a["action"], a["object"]) for a in actions if a["action"] in OBJECT_ACTIONS)
        out.append((phase["name"], "skipped" if skipped else "run", objects))
    return out


def applied(events: list[dict[str, Any]]) -> Phases:
    """Per phase apply started or skipped, in order: (name, run or skipped, the objects it reported)."""
    out: Phases = []
    for e in events:
        if e["type"] in ("phase.start", "phase.skip"):
            out.append((e["phase"], "run" if e["type"] == "phase.start" else "skipped", Counter()))
        elif e["type"] == "object":
            assert out and out[-1][0] == e["phase"], e
            out[-1][2][(e["action"], e["object"])] += 1
    return out


def plan_then_apply(world: World, cwd: Path, config: Path, state: Path) -> tuple[Phases, Phases]:
    common = ["-f", str(config), "--state-dir", str(state), "--skip", "preflight"]
    res = run_cli(world, cwd, "plan", *common, "-o", "json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    plan = json.loads(res.stdout)
    assert plan["observed"]["cluster"] is (state / "kubeconfig").exists(), plan["observed"]
    res = run_cli(world, cwd, "apply", *common, "--yes", "--output", "json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    events = json_lines(res.stdout)
    assert events[-1]["type"] == "run.end" and events[-1]["status"] == "ok", events[-1]
    return planned(plan), applied(events)


def objects_of(phases: Phases, name: str) -> Counter[tuple[str, str]]:
    return next(objects for phase, _, objects in phases if phase == name)


def test_plan_lists_exactly_what_apply_then_does(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab = host_lab(3)  # the config's addresses and pinned keys; the CLI skips preflight (see module doc)
    cfg = lab_config(world, lab)
    config = write_config(cfg, tmp_path / "cluster.yaml")
    state = tmp_path / "state"
    # The plan reads upstream artifacts from the local cache only (it fetches nothing); a site that
    # wants the charts' objects listed before the first apply fills the cache first, as here.
    res = run_cli(world, tmp_path, "mirror", "list", "-f", str(config), "--fetch")
    assert res.returncode == 0, res.stderr

    # 1. A fresh install: nothing observed (no kubeconfig yet), every object to create, KubeOne runs.
    plan, apply = plan_then_apply(world, tmp_path, config, state)
    assert plan == apply
    assert [(name, how) for name, how, _ in plan][:5] == [
        ("gate", "skipped"), ("preflight", "skipped"), ("host-packages", "skipped"), ("kubeone", "run"),
        ("bootstrap", "run"),
    ]  # fmt: skip
    assert [name for name, _, _ in plan][-2:] == ["prune", "verify"]
    creates = sum(n for _, _, objects in plan for (action, _), n in objects.items() if action == "create")
    assert creates > 50, plan

    # 2. Drift repaired: a deleted custom resource and RoleBinding, a changed Deployment, a node label gone.
    assert world.api.request("DELETE", KUBEVIRT_CR).status_code == 200
    assert world.api.request("DELETE", ROLEBINDING).status_code == 200
    patch = {"spec": {"replicas": 3}}
    assert world.api.request("PATCH", DEX_DEPLOYMENT, json=patch, headers=MERGE).status_code == 200
    unlabel = {"metadata": {"labels": {"kube-ovn/role": None}}}
    assert world.api.request("PATCH", "/api/v1/nodes/cp-1", json=unlabel, headers=MERGE).status_code == 200
    plan, apply = plan_then_apply(world, tmp_path, config, state)
    assert plan == apply
    assert objects_of(plan, "component/kubevirt") == Counter(
        {("create", "KubeVirt.kubevirt.io/kubevirt/kubevirt"): 1}
    )
    assert objects_of(plan, "workspaces") == Counter(
        {("create", "RoleBinding.rbac.authorization.k8s.io/team-a/workspace-admin"): 1}
    )
    assert objects_of(plan, "component/dex") == Counter({("update", "Deployment.apps/dex/dex"): 1})
    assert objects_of(plan, "bootstrap") == Counter({("update", "Node/cp-1"): 1})
    assert ("kubeone", "skipped") in [(name, how) for name, how, _ in plan]
    assert sum(sum(objects.values()) for _, _, objects in plan) == 4  # nothing else

    # 3. A component removed: login switched off, so Dex leaves (its namespace stays without --prune-all);
    # the KubeOne manifest loses its OIDC settings, and the state records the new config.
    del cfg["auth"]
    write_config(cfg, config)
    plan, apply = plan_then_apply(world, tmp_path, config, state)
    assert plan == apply
    names = [name for name, _, _ in plan]
    assert "component/dex" not in names and ("kubeone", "run") in [(n, how) for n, how, _ in plan]
    pruned = objects_of(plan, "prune")
    assert pruned and {action for action, _ in pruned} == {"delete"}
    assert ("delete", "Deployment.apps/dex/dex") in pruned and ("delete", "Namespace/dex") not in pruned
    assert objects_of(plan, "bootstrap") == Counter(
        {("update", "Secret/kvinstall-system/kvinstall-state"): 1}
    )
