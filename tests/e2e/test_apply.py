"""`kvinstall apply` end to end: sshd host lab + real apiserver + real helm + the real upstream charts
and manifests served over HTTPS (tests/upstream_pack.py). KubeOne is a stand-in and a fake controller loop plays the operators
(both described in platform_world.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from transcript import anonymise, check_or_write, shorten_again, shorten_first

from conftest import World, apply_in_process, lab_config
from kvinstall.phases.events import PlainLines

pytestmark = pytest.mark.e2e

ALL_PHASES = ["gate", "preflight", "host-packages", "kubeone", "bootstrap", "component/kubeovn", "component/kubevirt",
              "component/cdi", "component/dex", "component/kyverno", "component/policies", "workspaces",
              "prune", "verify"]  # fmt: skip


def test_apply_from_nothing_then_again_is_a_no_op(world_env: World, host_lab: Any, tmp_path: Path) -> None:
    world = world_env
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)

    shown = io.StringIO()  # what a CI log shows: the README's transcript is made from it
    first = apply_in_process(world, lab, config, state, sinks=[PlainLines(shown)])
    assert first.code == 0, first.error
    phases = first.events.phases()
    assert list(phases) == ALL_PHASES
    assert phases["gate"] == "skipped"  # not offline
    assert all(phases[p] == "ok" for p in ALL_PHASES if p not in ("gate", "host-packages")), phases
    assert phases["host-packages"] == "skipped"  # not offline
    created = {obj for action, obj in first.events.objects() if action == "create"}
    for obj in ("KubeVirt.kubevirt.io/kubevirt/kubevirt", "CDI.cdi.kubevirt.io/cdi", "Namespace/team-a",
                "Deployment.apps/kube-system/ovn-central", "Deployment.apps/dex/dex",
                "ValidatingPolicy.policies.kyverno.io/kvinstall-vm-no-hostdisk", "Secret/kvinstall-system/kvinstall-state"):
        assert obj in created, obj
    hosts = {e["host"]: e["status"] for e in first.events.of("host")}
    assert len(hosts) == 3 and set(hosts.values()) <= {"ok", "warn"}
    assert first.outcome.credentials_file is not None
    assert (Path(first.outcome.credentials_file).stat().st_mode & 0o777) == 0o600
    assert (state / "kubeconfig").stat().st_mode & 0o777 == 0o600

    mark = world.api.audit_mark()
    shown_again = io.StringIO()
    second = apply_in_process(world, lab, config, state, sinks=[PlainLines(shown_again)])
    assert second.code == 0, second.error
    assert second.events.phases()["kubeone"] == "skipped"
    assert second.events.objects() == []
    writes = world.api.writes_since(mark, users=("kvtest-token-admin",))
    assert writes == [], [f"{w.verb} {w.uri}" for w in writes]
    # The KubeOne stand-in was called to apply once, by the first run only.
    calls = (world.root / "kubeone-calls.log").read_text().splitlines()
    assert sum(1 for c in calls if c.startswith('["apply"')) == 1

    # The README's transcript is these two runs (regenerated with KVINSTALL_WRITE_README=1).
    check_or_write("first apply", shorten_first(anonymise(shown.getvalue(), tmp_path).splitlines()))
    check_or_write("second apply", shorten_again(anonymise(shown_again.getvalue(), tmp_path).splitlines()))
