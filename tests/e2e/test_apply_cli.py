"""The CLI as CI runs it: `python -m kvinstall ...` as a subprocess, no terminal. It runs in the root
network namespace and cannot reach the lab's hosts, hence `--skip preflight` (the apiserver and the
upstream are on 127.0.0.1). apply --output json, the refusal without --yes, status, plan
--detailed-exitcode and reset.

World: real kube-apiserver + real helm; KubeOne is a stand-in and a fake controller loop plays the
operators (see platform_world.py). The tests of this module share one apiserver, in file order; each
converges first (reset, last, removes everything)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import (
    EVENTS_SCHEMA,
    World,
    delete_gone,
    json_lines,
    kvinstall_writes,
    lab_config,
    run_cli,
    write_config,
)
from kvinstall.errors import exit_code

pytestmark = pytest.mark.e2e

KUBEVIRT_CR = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
ROLEBINDING = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/workspace-admin"


def _setup(world: World, host_lab: Any, tmp_path: Path) -> tuple[Path, Path]:
    lab = host_lab(3)  # only for the config's host addresses and pinned keys: the CLI skips preflight
    return write_config(lab_config(world, lab), tmp_path / "cluster.yaml"), tmp_path / "state"


def _apply(world: World, cwd: Path, config: Path, state: Path, *extra: str) -> Any:
    return run_cli(world, cwd, "apply", "-f", str(config), "--skip", "preflight", "--state-dir", str(state), *extra)


def _converge(world: World, cwd: Path, config: Path, state: Path) -> list[dict[str, Any]]:
    res = _apply(world, cwd, config, state, "--yes", "--output", "json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    events = json_lines(res.stdout)
    for event in events:
        jsonschema.validate(event, EVENTS_SCHEMA)
    return events


def _status(world: World, cwd: Path, config: Path, state: Path) -> dict[str, Any]:
    res = run_cli(world, cwd, "status", "-f", str(config), "--output", "json", "--state-dir", str(state))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def test_apply_yes_json_lines(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    config, state = _setup(world, host_lab, tmp_path)
    events = _converge(world, tmp_path, config, state)  # every line is a schema-valid event
    assert events[0]["type"] == "run.start" and events[0]["command"] == "apply"
    assert any(e["type"] == "plan" for e in events)  # the plan, as data, before anything is done
    end = events[-1]
    assert end["type"] == "run.end" and end["status"] == "ok" and end["exitCode"] == 0
    assert end["phases"]["preflight"] == "skipped"
    assert all(end["phases"][p] == "ok" for p in ("kubeone", "bootstrap", "component/kubevirt", "verify"))
    skip = [e for e in events if e["type"] == "phase.skip" and e["phase"] == "preflight"]
    assert skip and "--skip" in skip[0]["reason"]
    assert Path(events[0]["log"]).is_file()


def test_apply_without_yes_and_without_a_terminal_refuses(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    config, state = _setup(world, host_lab, tmp_path)
    _converge(world, tmp_path, config, state)
    delete_gone(world, KUBEVIRT_CR)  # something apply would repair

    mark = world.api.audit_mark()
    res = _apply(world, tmp_path, config, state)
    assert res.returncode == exit_code("declined") == 4, res.stdout[-2000:] + res.stderr
    assert "no terminal" in res.stderr and "--yes" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert kvinstall_writes(world, mark) == []
    assert world.api.request("GET", KUBEVIRT_CR).status_code == 404  # nothing applied


def test_status_shows_ready_then_names_drift(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    config, state = _setup(world, host_lab, tmp_path)
    _converge(world, tmp_path, config, state)

    status = _status(world, tmp_path, config, state)
    assert status["driftTotal"] == 0, status
    components = {c["name"]: c for c in status["components"]}
    assert {"kubeovn", "kubevirt", "cdi", "dex", "kyverno", "policies", "workspaces"} <= set(components)
    assert all(c["ready"] for c in components.values()), [(c["name"], c["why"]) for c in components.values()]
    assert components["kubevirt"]["version"] == "v1.8.4"
    assert {n["name"] for n in status["nodes"]} >= {"cp-1", "worker-1", "worker-2"}
    assert status["workspaces"] == ["team-a", "team-b"]

    assert world.api.request("DELETE", ROLEBINDING).status_code == 200
    drifted = _status(world, tmp_path, config, state)
    assert drifted["driftTotal"] == 1, drifted
    ws = next(c for c in drifted["components"] if c["name"] == "workspaces")
    assert ws["drifted"] == [{"object": "RoleBinding.rbac.authorization.k8s.io/team-a/workspace-admin",
                              "action": "create", "changes": []}]  # fmt: skip


def test_plan_detailed_exitcode_on_a_converged_cluster(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    config, state = _setup(world, host_lab, tmp_path)
    _converge(world, tmp_path, config, state)
    args = ["plan", "-f", str(config), "--detailed-exitcode", "--kubeconfig", str(state / "kubeconfig"),
            "--state-dir", str(state)]  # fmt: skip

    # Converged: the host checks and the verify phase still "run" (every apply runs them) but they
    # change nothing: 0.
    res = run_cli(world, tmp_path, *args, "--output", "json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    plan = json.loads(res.stdout)
    assert plan["hasChanges"] is False
    assert plan["summary"]["run"] == 3 + 1 and plan["summary"]["create"] == 0, plan["summary"]

    # A drift is a change: 2.
    delete_gone(world, KUBEVIRT_CR)
    res = run_cli(world, tmp_path, *args)
    assert res.returncode == 2, res.stdout[-3000:] + res.stderr
    assert "KubeVirt kubevirt/kubevirt" in res.stdout


def test_reset_removes_every_component(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    config, state = _setup(world, host_lab, tmp_path)
    _converge(world, tmp_path, config, state)

    res = run_cli(world, tmp_path, "reset", "-f", str(config), "--yes", "--output", "json", "--state-dir", str(state))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    events = json_lines(res.stdout)
    for event in events:
        jsonschema.validate(event, EVENTS_SCHEMA)
    assert events[-1]["type"] == "run.end" and events[-1]["status"] == "ok"
    logs = [e["message"] for e in events if e["type"] == "log"]
    for comp in ("workspaces", "policies", "kyverno", "dex", "cdi", "kubevirt", "kubeovn"):
        assert f"removed {comp}" in logs, logs
    # Workspaces first, Kube-OVN (the CNI) last: reverse install order.
    assert logs.index("removed workspaces") < logs.index("removed kubevirt") < logs.index("removed kubeovn")

    def gone(path: str) -> bool:
        resp = world.api.request("GET", path)
        if resp.status_code == 404:
            return True
        # No controller-manager here: namespaces (and what only it would clean up) stay Terminating.
        return bool(resp.json()["metadata"].get("deletionTimestamp"))

    for path in (KUBEVIRT_CR, ROLEBINDING,
                 "/apis/cdi.kubevirt.io/v1beta1/cdis/cdi",
                 "/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator",
                 "/apis/apps/v1/namespaces/kube-system/deployments/ovn-central",
                 "/apis/apps/v1/namespaces/dex/deployments/dex",
                 "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kubevirts.kubevirt.io",
                 "/api/v1/namespaces/kubevirt", "/api/v1/namespaces/team-a", "/api/v1/namespaces/dex"):  # fmt: skip
        assert gone(path), path
    # kvinstall's own state is kept (the cluster itself is still there; `--kubeone` would reset it).
    assert world.api.request("GET", "/api/v1/namespaces/kvinstall-system/secrets/kvinstall-state").status_code == 200
    # What is left of the platform is nothing status would call installed.
    status = _status(world, tmp_path, config, state)
    assert not any(c["ready"] for c in status["components"] if c["name"] in ("kubevirt", "cdi", "dex"))
