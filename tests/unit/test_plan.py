"""plan without any cluster or hosts: complete, versioned JSON, detailed exit code, render export.

The CLI runs inside an empty network namespace: the examples name addresses that do not exist here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvinstall.edges import Edges
from kvinstall.model import DesiredState
from kvinstall.render.export import REDACTED, export_files
from kvinstall.session import open_session

ROOT = Path(__file__).resolve().parents[2]
PLAN_SCHEMA = json.loads(resources.files("kvinstall.plan").joinpath("plan.schema.json").read_text())


def kv(*args: str, state: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["unshare", "-n", sys.executable, "-m", "kvinstall", *args]
    environ = {
        **os.environ,
        "KVINSTALL_STATE_DIR": str(state),
        "KVINSTALL_CACHE_DIR": str(state / "cache"),
        **(env or {}),
    }
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=environ, timeout=120)


@pytest.mark.parametrize("example", ["minimal", "ha-gpu", "airgapped", "kubev", "platform-services"])
def test_plan_json_validates_against_its_schema(example: str, tmp_path: Path) -> None:
    env = {"CORP_SSO_CLIENT_SECRET": "x"}
    (tmp_path / "pw").write_text("pw")
    res = kv("plan", "-f", f"examples/{example}.yaml", "-o", "json", state=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    jsonschema.validate(data, PLAN_SCHEMA)
    assert data["observed"]["cluster"] is False
    # Apply's phases, in apply's order and with apply's names; online, the gate is shown as skipped.
    names = [p["name"] for p in data["phases"]]
    assert names[:6] == ["gate", "preflight", "host-packages", "host-trust", "kubeone", "bootstrap"]
    assert names[-2:] == ["prune", "verify"]
    assert "component/kubevirt" in names and "component/workspaces" not in names
    gate = data["phases"][0]["actions"]
    offline = example == "airgapped"
    assert [a["action"] for a in gate] == (["run"] if offline else ["skip"])
    # airgapped.yaml names a registry CA: KubeOne cannot carry it, kvinstall puts it on the hosts first
    trust = data["phases"][3]["actions"]
    assert [a["action"] for a in trust] == (["run"] if offline else ["skip"])
    if offline:
        assert "kvinstall-registry-ca.crt" in trust[0]["reason"]
    assert data["kubeoneManifest"]["apiVersion"] == "kubeone.k8c.io/v1beta2"


def test_plan_shows_the_host_package_source_when_a_site_package_repository_is_set(tmp_path: Path) -> None:
    text = (ROOT / "examples/airgapped.yaml").read_text().replace(
        "  # packageRepository:", "  packageRepository:").replace("  #   ", "    ")
    config = tmp_path / "site.yaml"
    config.write_text(text)
    res = kv("plan", "-f", str(config), "-o", "json", state=tmp_path, env={"CORP_SSO_CLIENT_SECRET": "x"})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    jsonschema.validate(data, PLAN_SCHEMA)
    phases = {p["name"]: p for p in data["phases"]}
    assert [p["name"] for p in data["phases"]][:5] == ["gate", "preflight", "host-packages", "host-trust", "kubeone"]
    assert "https://10.0.0.5:8443" in phases["host-packages"]["actions"][0]["reason"]
    assert "kvinstall-registry-ca.crt" in phases["host-trust"]["actions"][0]["reason"]


def test_plan_text_is_complete_for_minimal(tmp_path: Path) -> None:
    res = kv("plan", "-f", "examples/minimal.yaml", state=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for expected in (
        "host cp-1 (192.0.2.10)",
        "dev.kvm",
        "kubeone apply",
        "KubeOneCluster",
        "KubeVirt v1.8.4",
        "quay.io/kubevirt/virt-operator:v1.8.4",
        "Namespace team-a",
        "not observed: cluster",
        "Summary:",
    ):
        assert expected in out, expected


def test_detailed_exitcode(tmp_path: Path) -> None:
    res = kv("plan", "-f", "examples/minimal.yaml", "--detailed-exitcode", state=tmp_path)
    assert res.returncode == 2


def test_checks_that_always_run_are_not_changes() -> None:
    from kvinstall.plan.model import Action, Observed, Plan
    from kvinstall.plan.model import PhasePlan as Phase

    def plan(*phases: Phase) -> Plan:
        return Plan(cluster="c", phases=list(phases), observed=Observed(cluster=True))

    checks = [
        Phase("gate", "Gate", [Action("run", "site registry r.example")]),
        Phase("preflight", "Preflight", [Action("run", "host cp-1 (192.0.2.10)")]),
        Phase("kubeone", "KubeOne", [Action("skip", "kubeone apply")]),
        Phase("component/kubevirt", "KubeVirt", [Action("unchanged", "KubeVirt kubevirt/kubevirt")]),
    ]
    assert not plan(*checks).has_changes
    assert plan(*checks).summary()["run"] == 2  # still shown and counted
    assert plan(*checks, Phase("kubeone", "KubeOne", [Action("run", "kubeone apply")])).has_changes
    for kind in ("create", "update", "delete"):
        assert plan(*checks, Phase("workspaces", "W", [Action(kind, "Namespace team-a")])).has_changes  # type: ignore[arg-type]


def test_render_writes_files_and_redacts_secrets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = kv("render", "-f", "examples/airgapped.yaml", "-o", str(out), state=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (out / "kubeone.yaml").read_text().startswith("apiVersion: kubeone.k8c.io/v1beta2")
    files = list(out.rglob("*.yaml"))
    assert len(files) > 5
    secrets = [f for f in files if f.name.startswith("Secret_")]
    assert secrets, "basic auth renders Dex's config Secret"
    for f in secrets:
        assert REDACTED in f.read_text()
    creds = list(tmp_path.rglob("*credentials*"))
    for c in creds:
        password = c.read_text()
        for f in files:
            assert password not in f.read_text()


def _desired(tmp_path: Path, text: str) -> DesiredState:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    session = open_session(path, state_override=tmp_path / "state", edges=Edges(artifact_cache=tmp_path / "cache"))
    return session.desire(session.source(fetch=False))


_nasty = st.text(alphabet=st.sampled_from(list("ab:{}\n-#'\"|>&*!%@` ")), min_size=1, max_size=30).map(
    lambda s: "x" + s
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(value=_nasty)
def test_config_values_cannot_inject_objects_or_keys(tmp_path: Path, value: str) -> None:
    """A member name with newlines, `{{`, `: `, `---` ends up as one string value, never as structure."""
    base = (ROOT / "examples/minimal.yaml").read_text()
    text = base.replace("user: alice@example.com", f"user: {json.dumps(value + '{{ x }}---: y')}")
    desired = _desired(tmp_path, text)
    ws = desired.component("workspaces")
    assert ws is not None
    count = len(ws.objects)
    plain = _desired(tmp_path, base).component("workspaces")
    assert plain is not None and count == len(plain.objects)
    binding = next(o for o in ws.objects if o["kind"] == "RoleBinding")
    assert binding["subjects"][0]["name"] == value + "{{ x }}---: y"
    assert set(binding) == set(next(o for o in plain.objects if o["kind"] == "RoleBinding"))


def test_export_files_layout(tmp_path: Path) -> None:
    desired = _desired(tmp_path, (ROOT / "examples/minimal.yaml").read_text())
    files = export_files(desired)
    assert "kubeone.yaml" in files and "images.txt" in files
    names = [p for p in files if p.endswith(".yaml") and p != "kubeone.yaml"]
    assert names and all(p.split("/")[0][:2].isdigit() for p in names)


def test_plan_takes_applys_phase_selection(tmp_path: Path) -> None:
    """--only/--skip mean what they mean for apply: the plan shows those phases as skipped, with why."""
    res = kv("plan", "-f", "examples/minimal.yaml", "-o", "json", "--skip", "kubeone", "--skip", "component",
             state=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    phases = {p["name"]: p["actions"] for p in json.loads(res.stdout)["phases"]}
    (kubeone,) = phases["kubeone"]
    assert kubeone["action"] == "skip" and kubeone["reason"] == "skipped by --skip"
    components = [n for n in phases if n.startswith("component/")]
    assert components and all([a["action"] for a in phases[n]] == ["skip"] for n in components)
    assert {a["action"] for a in phases["workspaces"]} == {"create"}  # not a component phase
    res = kv("plan", "-f", "examples/minimal.yaml", "--only", "nonsense", state=tmp_path)
    assert res.returncode == 64 and "unknown phase(s): nonsense" in res.stderr


def test_plan_shows_the_platform_services_as_phases_that_select_like_apply(tmp_path: Path) -> None:
    """MetalLB, Longhorn, cert-manager and Multus are phases of their own, in install order, with the
    names --only/--skip take (`metallb` or `component/metallb`)."""
    import yaml

    tree = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    tree.pop("storage")
    tree["components"] = {
        "certManager": {"enabled": True},
        "multus": {"enabled": True},
        "metallb": {"enabled": True, "pools": [{"name": "lb", "addresses": ["192.0.2.200-192.0.2.220"]}]},
        "longhorn": {"enabled": True},
    }
    config = tmp_path / "services.yaml"
    config.write_text(yaml.safe_dump(tree))
    res = kv("plan", "-f", str(config), "-o", "json", "--only", "metallb", "--only", "component/longhorn",
             state=tmp_path / "state")  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    jsonschema.validate(data, PLAN_SCHEMA)
    phases = {p["name"]: p["actions"] for p in data["phases"]}
    assert [n for n in phases if n.startswith("component/")] == [
        "component/kubeovn", "component/multus", "component/certmanager", "component/metallb",
        "component/longhorn", "component/kubevirt", "component/cdi", "component/kyverno", "component/policies",
    ]  # fmt: skip
    selected = {"component/metallb", "component/longhorn"}
    for name, actions in phases.items():
        if name in selected:
            assert actions and all(a["action"] != "skip" for a in actions), name
        else:  # the gate keeps its own reason (not in offline mode)
            assert [a["action"] for a in actions] == ["skip"], name
            assert name == "gate" or actions[0]["reason"] == "not selected by --only", name
    # Longhorn's ReadWriteMany class stands in for storage.rwxClass: no live-migration warning.
    assert not any("rwxClass" in w for w in data["warnings"])
    res = kv("plan", "-f", str(config), "-o", "json", state=tmp_path / "state")
    assert res.returncode == 0, res.stderr
    preflight = next(p for p in json.loads(res.stdout)["phases"] if p["name"] == "preflight")
    checks = {c for a in preflight["actions"] for c in a["details"]["checks"]}
    assert {"longhorn.iscsi", "metallb.l2-network"} <= checks
