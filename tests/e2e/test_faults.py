"""Faults during `apply`, end to end: the apiserver restarted mid-apply, a host down at preflight,
Ctrl-C (a real SIGINT to a real `kvinstall` process) mid-apply, KubeOne failing. Each ends clearly
(a documented exit code, the host or cause named) and a re-run converges.

World: sshd host lab + real kube-apiserver + real helm; KubeOne is a stand-in and a fake controller
loop plays the operators (see platform_world.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import (
    EVENTS_SCHEMA,
    World,
    apply_in_process,
    cli_argv,
    cli_env,
    converged,
    delete_gone,
    kvinstall_writes,
    lab_config,
    write_config,
)
from kvinstall.errors import exit_code

pytestmark = pytest.mark.e2e

KUBEVIRT_CR = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
CDI_CR = "/apis/cdi.kubevirt.io/v1beta1/cdis/cdi"


class RestartAt:
    """An event sink that takes the apiserver down the moment a phase starts (synchronously, so the
    phase surely meets the outage) and brings it back from another thread."""

    def __init__(self, world: World, phase: str) -> None:
        self.world, self.phase = world, phase
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def handle(self, event: dict[str, Any]) -> None:
        if event["type"] == "phase.start" and event["phase"] == self.phase and self.thread is None:
            self.world.api.stop_apiserver()
            self.thread = threading.Thread(target=self._start, name="apiserver-restart", daemon=True)
            self.thread.start()

    def _start(self) -> None:
        try:
            self.world.api.start_apiserver()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def close(self) -> None:
        pass


def test_apiserver_restarted_mid_apply(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab, state, config = converged(world, host_lab, tmp_path)

    # Work for the component phases, then the apiserver goes away as KubeVirt's phase starts.
    delete_gone(world, KUBEVIRT_CR)
    delete_gone(world, CDI_CR)
    fault = RestartAt(world, "component/kubevirt")
    during = apply_in_process(world, lab, config, state, sinks=[fault])
    assert fault.thread is not None, "the phase never started"
    fault.thread.join(120)
    assert not fault.errors, fault.errors
    # The module's controller loop outlives the outage (later tests in this module rely on it).
    world.sim.wait_working()
    # Transient failures are retried: the run completes; if it gives up, it says so clearly.
    if during.code != 0:
        assert during.code == exit_code("cluster"), during.error
        assert "Kubernetes API" in str(during.error) or "retrying" in str(during.error), during.error
        assert during.events.of("run.end")[-1]["status"] == "failed"
    else:
        created = set(during.events.objects())
        assert ("create", "KubeVirt.kubevirt.io/kubevirt/kubevirt") in created
        assert ("create", "CDI.cdi.kubevirt.io/cdi") in created

    # A re-run converges: everything is there, verified, and only what the faulted run left is done.
    again = apply_in_process(world, lab, config, state)
    assert again.code == 0, again.error
    assert again.events.phases()["verify"] == "ok"
    if during.code == 0:
        assert again.events.objects() == []
    assert world.api.request("GET", KUBEVIRT_CR).status_code == 200
    assert world.api.request("GET", CDI_CR).status_code == 200


def test_host_down_at_preflight(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    # No converging first: a new lab means a new KubeOne manifest, so this run would reach KubeOne
    # and the components, had preflight let it.
    world = world_env
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)
    down = list(lab.hosts.values())[2]
    down_cfg = config["hosts"][2]
    down.stop_sshd()

    mark = world.api.audit_mark()
    calls = world.root / "kubeone-calls.log"
    kubeone_calls = calls.read_text() if calls.exists() else ""
    failed = apply_in_process(world, lab, config, state)
    assert failed.code == exit_code("ssh"), failed.error
    text = str(failed.error)
    assert down_cfg["address"] in text or down_cfg["hostname"] in text, text
    # The down host is named unreachable; the others were checked, and cannot reach it either.
    hosts = {e["host"]: e for e in failed.events.of("host")}
    assert hosts[down_cfg["address"]]["status"] == "unreachable", hosts
    others = [e for h, e in hosts.items() if h != down_cfg["address"]]
    assert len(others) == 2 and all("results" in e for e in others), others
    for e in others:
        reach = [r for r in e["results"] if r["check"] == "network.reachability"]
        assert reach and reach[0]["status"] == "fail" and down_cfg["address"] in reach[0]["message"], reach
    # Nothing was applied: no phase after preflight started, no write reached the cluster, no KubeOne.
    assert [e["phase"] for e in failed.events.of("phase.start")] == ["preflight"]
    assert failed.events.of("run.end")[-1]["exitCode"] == exit_code("ssh")
    assert kvinstall_writes(world, mark) == []
    assert (calls.read_text() if calls.exists() else "") == kubeone_calls

    down.start_sshd()
    again = apply_in_process(world, lab, config, state)
    assert again.code == 0, again.error
    assert again.events.phases()["preflight"] == "ok"
    assert again.events.phases()["kubeone"] == "ok"  # the new lab's manifest


def _events(lines: list[str]) -> list[dict[str, Any]]:
    """The event lines of a JSON Lines stream (each validated against the published schema)."""
    out = []
    for line in lines:
        event = json.loads(line)
        if "schema" in event:
            jsonschema.validate(event, EVENTS_SCHEMA)
            out.append(event)
    return out


def _interrupted_cli(
    argv: list[str], cwd: Path, env: dict[str, str], at: Callable[[dict[str, Any]], bool]
) -> tuple[int, list[dict[str, Any]], str]:
    """Runs `kvinstall` with JSON output and sends it one real SIGINT at the first event `at` accepts.
    Returns its exit code, its events and everything it said."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    watchdog = threading.Timer(300, proc.kill)  # bounded: a hung run fails the test, never the suite
    watchdog.start()
    lines: list[str] = []
    sent = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            event = json.loads(line) if line.startswith("{") else {}
            if not sent and at(event):
                proc.send_signal(signal.SIGINT)
                sent = True
        code = proc.wait(60)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        watchdog.cancel()
        proc.kill()
    said = "".join(lines) + stderr
    assert sent, said
    return code, _events([line for line in lines if line.strip()]), said


def test_sigint_mid_apply_then_resume(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    world.sim.wait_working()  # readiness below is reported by it; a dead loop would look like a hang
    _lab, state, config = converged(world, host_lab, tmp_path)
    delete_gone(world, KUBEVIRT_CR)  # work for a phase after the interrupted one

    # The CLI as a user runs it, in the root network namespace: it cannot reach the lab's hosts,
    # hence --skip preflight (the apiserver and the upstream are on 127.0.0.1).
    path = write_config(config, tmp_path / "cluster.yaml")
    args = ["apply", "-f", str(path), "--yes", "--skip", "preflight", "--output", "json",
            "--state-dir", str(state)]  # fmt: skip
    env = cli_env(world, tmp_path / "home")

    # 1. Ctrl-C as Kube-OVN's phase starts: that phase (all ready already) finishes, nothing after it starts.
    code, events, said = _interrupted_cli(
        cli_argv(*args), tmp_path, env,
        lambda e: e.get("type") == "phase.start" and e.get("phase") == "component/kubeovn",
    )  # fmt: skip
    assert code == 130, said
    started = [e["phase"] for e in events if e["type"] == "phase.start"]
    assert started[-1] == "component/kubeovn", started
    assert any(e["type"] == "warning" and "interrupt" in e["message"] for e in events)
    end = [e for e in events if e["type"] == "run.end"][-1]
    assert end["status"] == "failed" and end["exitCode"] == 130
    assert "--resume" in said, said  # it says how to continue

    # 2. --resume, with the controllers stopped (the fake loop paused): KubeVirt's CR is created and
    # never reported ready. Ctrl-C during that wait ends the run at once, not at the 600 s timeout.
    world.sim.paused.set()
    try:
        code, events, said = _interrupted_cli(
            cli_argv(*args, "--resume"), tmp_path, env,
            lambda e: e.get("type") == "progress" and e.get("phase") == "component/kubevirt",
        )  # fmt: skip
    finally:
        world.sim.paused.clear()
    assert code == 130, said
    skips = {e["phase"]: e["reason"] for e in events if e["type"] == "phase.skip"}
    for phase in ("bootstrap", "component/kubeovn"):
        assert "--resume" in skips.get(phase, ""), skips
    ran = [e["phase"] for e in events if e["type"] == "phase.start"]
    assert ran == ["component/kubevirt"], ran
    objects = [(e["action"], e["object"]) for e in events if e["type"] == "object"]
    assert objects == [("create", "KubeVirt.kubevirt.io/kubevirt/kubevirt")]
    ended = [e for e in events if e["type"] == "phase.end"]
    assert [(e["phase"], e["status"]) for e in ended] == [("component/kubevirt", "failed")], ended
    assert "not ready" in ended[0]["error"]["message"] and "--resume" in said, said

    # 3. --resume again, controllers back: the interrupted phase runs again (it was not recorded as
    # done), finds its objects in place, waits for readiness, and the run converges.
    resume = subprocess.run(cli_argv(*args, "--resume"), cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr
    events = _events(resume.stdout.splitlines())
    ran = [e["phase"] for e in events if e["type"] == "phase.start"]
    assert ran[0] == "component/kubevirt" and ran[-1] == "verify", ran
    assert [e for e in events if e["type"] == "object"] == []
    assert events[-1]["type"] == "run.end" and events[-1]["status"] == "ok"


def test_kubeone_failing_is_named(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    # No converging first: KubeOne only runs when its manifest changed, which a new lab (and a new
    # state directory) makes so.
    world = world_env
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)
    env = {**world.env, "KVTEST_KUBEONE_EXIT": "11"}
    failed = apply_in_process(world, lab, config, state, kubeone_env=env)
    assert failed.code == exit_code("kubeone"), failed.error
    text = str(failed.error)
    assert "exit code 11" in text and "etcd error" in text, text
    assert failed.events.phases()["kubeone"] == "failed"
    assert "bootstrap" not in failed.events.phases()
    # Fixed (the stand-in succeeds again), a re-run converges.
    again = apply_in_process(world, lab, config, state)
    assert again.code == 0, again.error
    assert again.events.phases()["kubeone"] == "ok"
