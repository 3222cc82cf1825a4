"""Upgrades end to end, on the real upstream artifacts: the platform installed at the older versions of
the pack (Kubernetes v1.33.8, Kube-OVN v1.15.24, KubeVirt v1.7.4, CDI v1.64.0, Kyverno 1.17.2 = chart
3.7.2), the file changed to the newer ones; `plan` shows each upgrade with its steps and the VMs to
live-migrate, `apply` carries them out in order through the readiness gates (each component reports
the new version), `status` shows the installed versions, and a second apply writes nothing. Refused:
a downgrade, a skipped minor (a catalog with a KubeVirt v1.9.0 added as data), and an upgrade on a
drifted platform, each with exit code 15 and the next allowed step.

World: real kube-apiserver + real helm + the real charts/manifests from ../shared/upstream served by a
local HTTPS upstream; KubeOne is a stand-in (it registers the nodes at the manifest's Kubernetes
version) and a FAKE controller loop plays the operators on the real CRDs: virt-operator and
cdi-operator report their version in the CR status (targetKubeVirtVersion/targetVersion first, the
observed version once their operands run the new images), as the real ones do (platform_world.py).
Commands run as CI runs them (`python -m kvinstall` subprocesses) with `--skip preflight`: no host is
contacted (the hosts' addresses are loopback ones nothing listens on for SSH). The module converges
one platform at the old versions, once; the tests then run in order on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import World, json_lines, kvinstall_writes, run_cli, write_config
from substrate.host_lab import ClientKeys

pytestmark = pytest.mark.e2e

OLD = {
    "kubernetes": "v1.33.8",
    "kubeOVN": "v1.15.24",
    "kubevirt": "v1.7.4",
    "cdi": "v1.64.0",
    "kyverno": "v1.17.2",
}
NEW = {
    "kubernetes": "v1.34.4",
    "kubeOVN": "v1.16.2",
    "kubevirt": "v1.8.4",
    "cdi": "v1.65.0",
    "kyverno": "v1.18.2",
}
KUBEVIRT_CR = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
CDI_CR = "/apis/cdi.kubevirt.io/v1beta1/cdis/cdi"
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
MERGE = {"Content-Type": "application/merge-patch+json"}


def config_at(keys: ClientKeys, versions: dict[str, str], kubeone: Path) -> dict[str, Any]:
    hosts = [
        {"address": f"127.0.0.{i + 2}", "role": "controlPlane" if i == 0 else "worker", "hostname": name,
         "hostPublicKey": " ".join(ClientKeys.pub(keys.ed25519).split()[:2])}
        for i, name in enumerate(["cp-1", "worker-1", "worker-2"])
    ]  # fmt: skip
    components: dict[str, Any] = {k: {"version": v} for k, v in versions.items() if k != "kubernetes"}
    components["kubevirt"]["useEmulation"] = True
    return {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "e2e"},
        "ssh": {"user": "root", "privateKeyFile": str(keys.ed25519), "useAgent": False},
        "hosts": hosts,
        "kubernetes": {"version": versions["kubernetes"]},
        "storage": {"rwxClass": "nfs"},
        "components": components,
        "kubeone": {"binary": str(kubeone)},
        "auth": {"mode": "none"},
        "workspaces": [{"name": "team-a", "members": [{"user": "alice@example.com", "role": "admin"}]}],
    }


class Site:
    def __init__(self, world: World, root: Path, keys: ClientKeys) -> None:
        self.world, self.root, self.keys = world, root, keys
        self.state = root / "state"
        self.file = root / "cluster.yaml"

    def write(self, versions: dict[str, str]) -> None:
        write_config(config_at(self.keys, versions, self.world.kubeone), self.file)

    def kv(self, *args: str, env: dict[str, str] | None = None) -> Any:
        # Bounded by --timeout per wait (apply) and this generous whole-command limit.
        return run_cli(self.world, self.root, *args, "-f", str(self.file), "--state-dir", str(self.state),
                       env=env, timeout=1500)  # fmt: skip

    def apply(self, *extra: str) -> Any:
        return self.kv(
            "apply", "--skip", "preflight", "--yes", "--output", "json", "--timeout", "240", *extra
        )

    def status(self) -> dict[str, Any]:
        res = self.kv("status", "-o", "json")
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    def get(self, path: str) -> dict[str, Any]:
        resp = self.world.api.request("GET", path)
        assert resp.status_code == 200, resp.text[:300]
        data: dict[str, Any] = resp.json()
        return data


@pytest.fixture(scope="module")
def site(
    world: World, ssh_client_keys: ClientKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One platform converged at the old versions (expensive: shared by the module's tests)."""
    s = Site(world, tmp_path_factory.mktemp("upgrade"), ssh_client_keys)
    s.write(OLD)
    res = s.apply()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:] + str(world.sim.errors[-3:])
    # Two running VMs (one live-migratable) for the KubeVirt upgrade to move.
    for name, migratable in (("vm-a", "True"), ("vm-b", "False")):
        vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
               "metadata": {"name": name, "namespace": "default"}, "spec": {}}  # fmt: skip
        assert world.api.request("POST", VMIS, json=vmi).status_code == 201
        status = {
            "status": {"phase": "Running", "conditions": [{"type": "LiveMigratable", "status": migratable}]}
        }
        assert (
            world.api.request("PATCH", f"{VMIS}/{name}/status", json=status, headers=MERGE).status_code == 200
        )
    yield s


def test_installed_old_versions_report_themselves(site: Site) -> None:
    res = site.kv("status", "-o", "json")
    assert res.returncode == 0, res.stderr[-2000:]
    status = json.loads(res.stdout)
    installed = {c["name"]: c["installed"] for c in status["components"]}
    assert installed == {"kubeovn": "v1.15.24", "kubevirt": "v1.7.4", "cdi": "v1.64.0", "kyverno": "v1.17.2",
                         "policies": None, "workspaces": None}  # fmt: skip
    assert status["kubernetes"]["installed"] == "v1.33.8"
    assert status["upgradeInProgress"] == []
    text = site.kv("status").stdout
    assert "Kubernetes: v1.33.8" in text
    assert any(line.split()[:2] == ["KubeVirt", "v1.7.4"] for line in text.splitlines()), text
    # The operators' own signals, as the cluster holds them.
    assert site.get(KUBEVIRT_CR)["status"]["observedKubeVirtVersion"] == "v1.7.4"
    assert site.get(CDI_CR)["status"]["observedVersion"] == "v1.64.0"


def test_plan_shows_the_upgrade_steps(site: Site) -> None:
    site.write(NEW)
    res = site.kv("plan", "--skip", "preflight", "-o", "json")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    plan = json.loads(res.stdout)
    ups = [(u["name"], u["from"], u["to"]) for u in plan["upgrades"]]
    assert ups == [("kubernetes", "v1.33.8", "v1.34.4"), ("kubeovn", "v1.15.24", "v1.16.2"),
                   ("kubevirt", "v1.7.4", "v1.8.4"), ("cdi", "v1.64.0", "v1.65.0"),
                   ("kyverno", "v1.17.2", "v1.18.2")]  # fmt: skip
    kv = plan["upgrades"][2]
    assert kv["liveMigrations"] == 1 and kv["notMigratable"] == 1
    assert (
        kv["steps"][-1]
        == "gate: KubeVirt kubevirt reports status.observedKubeVirtVersion = v1.8.4, and is ready"
    )
    assert plan["hasChanges"] is True
    text = site.kv("plan", "--skip", "preflight", "--hide-manifest")
    assert text.returncode == 0, text.stderr[-2000:]
    assert "Upgrades (one supported step each, in this order):" in text.stdout
    assert "  KubeVirt v1.7.4 -> v1.8.4  [upgrade]" in text.stdout
    assert (
        "1 running VM(s) will be live-migrated to the new virt-launcher; 1 cannot live-migrate" in text.stdout
    )
    # The plan wrote nothing (dry).
    assert json.loads((site.state / "journal.json").read_text())["upgrades"] == {}


def test_skipped_minor_is_refused_naming_the_next_step(site: Site) -> None:
    # A catalog that knows KubeVirt v1.9.0 (data only: the upgrade hop v1.8 -> v1.9 and its range).
    data = yaml.safe_load(site.world.catalog.read_text())
    kv = data["components"]["kubevirt"]
    kv["versions"]["v1.9.0"] = json.loads(json.dumps(kv["versions"]["v1.8.4"]))
    kv["versions"]["v1.9.0"]["kubernetes"] = {"min": "v1.33", "max": "v1.36"}
    kv["upgrades"]["v1.8"] = ["v1.9"]
    catalog = site.root / "catalog-v19.yaml"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**_env(site), "KVINSTALL_CATALOG": str(catalog)}
    site.write({**OLD, "kubevirt": "v1.9.0"})
    for command in ("plan", "apply"):
        args = ["--skip", "preflight", "-o", "json"] + (["--yes"] if command == "apply" else [])
        res = site.kv(command, *args, env=env)
        assert res.returncode == 15, (command, res.stdout[-2000:], res.stderr[-2000:])
        (refusal,) = _error(res)["refusals"]
        assert refusal["name"] == "kubevirt"
        assert "v1.7.4 -> v1.9.0 skips a minor version" in refusal["reason"]
        assert refusal["nextStep"] == "set the version to v1.8.4, apply, then continue to v1.9.0"
        if command == "apply":  # the run's events end with the failed run, before anything changed
            events = json_lines(res.stdout)
            end = events[-2]
            assert (end["type"], end["status"], end["exitCode"]) == ("run.end", "failed", 15)
            assert not [e for e in events if e.get("type") in ("phase.start", "object")]
    assert site.get(KUBEVIRT_CR)["status"]["observedKubeVirtVersion"] == "v1.7.4"


def test_upgrade_on_a_drifted_platform_is_refused(site: Site) -> None:
    site.write(NEW)
    path = "/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator"
    before = site.get(path)["spec"]["replicas"]
    resp = site.world.api.request("PATCH", path, json={"spec": {"replicas": 1}}, headers=MERGE)
    assert resp.status_code == 200
    try:
        res = site.apply()
        assert res.returncode == 15, res.stdout[-2000:] + res.stderr[-2000:]
        (refusal,) = _error(res)["refusals"]
        assert refusal["name"] == "platform"
        assert refusal["reason"].startswith("repair before upgrade")
        assert "Deployment.apps/kubevirt/virt-operator" in refusal["reason"]
        assert refusal["nextStep"].startswith("keep the installed versions in the file (Kubernetes v1.33.8, ")
        assert "--repair-and-upgrade" in refusal["nextStep"]
        # plan says the same, in text too.
        plan = site.kv("plan", "--skip", "preflight")
        assert plan.returncode == 15
        assert (
            "Platform: repair before upgrade" in plan.stderr
            and "next step: keep the installed" in plan.stderr
        )
        # Refused before anything changed: still the old versions.
        assert site.get(path)["spec"]["replicas"] == 1
        assert site.get(KUBEVIRT_CR)["status"]["observedKubeVirtVersion"] == "v1.7.4"
    finally:
        # Repair first, as the refusal says: the old versions applied again.
        site.write(OLD)
        res = site.apply()
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert site.get(path)["spec"]["replicas"] == before


def test_apply_upgrades_in_order_through_the_gates(site: Site) -> None:
    site.write(NEW)
    # A gate that fails: the controller loop stops acting, so Kube-OVN's new workloads never report
    # ready. The run stops there, with Kubernetes upgraded and the journal saying what is under way.
    site.world.sim.paused.set()
    try:
        res = site.kv("apply", "--skip", "preflight", "--yes", "--output", "json", "--timeout", "15")
    finally:
        site.world.sim.paused.clear()
    assert res.returncode == 9, res.stdout[-3000:] + res.stderr[-2000:]
    events = json_lines(res.stdout)
    plan = next(e for e in events if e.get("type") == "plan")["plan"]
    assert [u["name"] for u in plan["upgrades"]] == ["kubernetes", "kubeovn", "kubevirt", "cdi", "kyverno"]
    ends = {e["phase"]: e["status"] for e in events if e.get("type") == "phase.end"}
    assert ends["kubeone"] == "ok" and ends["component/kubeovn"] == "failed"
    assert "component/kubevirt" not in ends
    journal = json.loads((site.state / "journal.json").read_text())
    assert journal["upgrades"] == {"kubeovn": {"from": "v1.15.24", "to": "v1.16.2"}}
    assert journal["versions"]["kubernetes"] == "v1.34.4"
    status = site.status()
    assert status["upgradeInProgress"] == ["kubeovn"]
    assert status["kubernetes"]["installed"] == "v1.34.4"
    text = site.kv("status").stdout
    assert "Upgrade in progress: kubeovn (apply continues it)" in text
    assert "v1.15.24 -> v1.16.2 (upgrading)" in text
    assert site.get(KUBEVIRT_CR)["status"]["observedKubeVirtVersion"] == "v1.7.4"

    # --resume continues from there: KubeOne is not run again, the rest is upgraded in order.
    site.world.sim.wait_working()
    res = site.apply("--resume")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-3000:]
    events = json_lines(res.stdout)
    plan = next(e for e in events if e.get("type") == "plan")["plan"]
    assert plan["upgradeInProgress"] == ["kubeovn"]
    assert [u["name"] for u in plan["upgrades"]] == ["kubevirt", "cdi", "kyverno"]
    assert "kubeone" in {e["phase"] for e in events if e.get("type") == "phase.skip"}
    ends_ok = [e["phase"] for e in events if e.get("type") == "phase.end" and e["status"] == "ok"]
    order = [
        p
        for p in ends_ok
        if p.startswith("component/") and p.split("/")[1] in ("kubeovn", "kubevirt", "cdi", "kyverno")
    ]
    assert order == ["component/kubeovn", "component/kubevirt", "component/cdi", "component/kyverno"]
    # KubeVirt: the operator first, its gate, then the CR, then the version gate.
    kv = [e for e in events if e.get("phase") == "component/kubevirt"]
    logs = [e["message"] for e in kv if e.get("type") == "log"]
    assert logs[0] == "upgrade KubeVirt v1.7.4 -> v1.8.4: CRDs, operator and workloads first"
    first_ready = next(i for i, e in enumerate(kv) if e.get("type") == "ready")
    cr_write = next(
        i for i, e in enumerate(kv) if e.get("type") == "log" and "custom resources" in e["message"]
    )
    assert first_ready < cr_write
    ready = [e["object"] for e in kv if e.get("type") == "ready"]
    assert ready[-1] == "KubeVirt.kubevirt.io/kubevirt/kubevirt"
    # Every component reports the new version; the CR carries the live-migration update strategy.
    cr = site.get(KUBEVIRT_CR)
    assert cr["status"]["observedKubeVirtVersion"] == "v1.8.4"
    assert cr["spec"]["workloadUpdateStrategy"] == {"workloadUpdateMethods": ["LiveMigrate"]}
    assert site.get(CDI_CR)["status"]["observedVersion"] == "v1.65.0"
    status = site.status()
    assert {c["name"]: c["installed"] for c in status["components"] if c["installed"]} == {
        "kubeovn": "v1.16.2", "kubevirt": "v1.8.4", "cdi": "v1.65.0", "kyverno": "v1.18.2"}  # fmt: skip
    assert status["kubernetes"]["installed"] == "v1.34.4"
    assert status["upgradeInProgress"] == []
    assert json.loads((site.state / "journal.json").read_text())["upgrades"] == {}

    # Converged: the next plan has no upgrade and no change, the next apply writes nothing.
    again = json.loads(site.kv("plan", "--skip", "preflight", "-o", "json").stdout)
    assert again["upgrades"] == [] and again["hasChanges"] is False
    mark = site.world.api.audit_mark()
    res = site.apply()
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert [e for e in json_lines(res.stdout) if e.get("type") == "object"] == []
    assert kvinstall_writes(site.world, mark) == []


def test_downgrade_refused_unless_forced(site: Site) -> None:
    site.write({**NEW, "cdi": "v1.64.0"})
    res = site.kv("plan", "--skip", "preflight", "-o", "json")
    assert res.returncode == 15, res.stdout[-2000:] + res.stderr[-2000:]
    (refusal,) = _error(res)["refusals"]
    assert refusal["name"] == "cdi" and refusal["reason"] == "downgrade from v1.65.0 to v1.64.0 is refused"
    assert refusal["nextStep"].startswith("keep version v1.65.0 in the file")
    forced = site.kv("plan", "--skip", "preflight", "-o", "json", "--force-downgrade")
    assert forced.returncode == 0, forced.stderr[-2000:]
    (down,) = json.loads(forced.stdout)["upgrades"]
    assert (down["name"], down["from"], down["to"], down.get("downgrade")) == (
        "cdi",
        "v1.65.0",
        "v1.64.0",
        True,
    )
    site.write(NEW)


def _env(site: Site) -> dict[str, str]:
    from conftest import cli_env

    return cli_env(site.world, site.root / "home")


def _error(res: Any) -> dict[str, Any]:
    """The error of a failed run: the run's JSON error object (stdout for -o json, else stderr)."""
    for text in (res.stdout, res.stderr):
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{") and '"refusals"' in line:
                data: dict[str, Any] = json.loads(line)
                return data
    raise AssertionError(f"no error with refusals in the output:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
