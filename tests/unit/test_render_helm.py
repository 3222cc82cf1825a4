"""Rendering charts with the real helm binary (kvinstall.render.helm), on the real Kube-OVN charts
(tests/upstream_pack.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kvinstall.errors import ArtifactError
from kvinstall.render.helm import find_helm, helm_template, helm_version
from upstream_pack import artifact_bytes

CHART = artifact_bytes("kubeovn", "v1.16.2")["kube-ovn-chart"]


def render(chart: bytes, values: dict, kube_version: str = "v1.34.4") -> list[dict]:
    return helm_template(
        chart,
        chart_name="kube-ovn",
        release="kube-ovn",
        namespace="kube-system",
        values=values,
        version="v1.16.2",
        kube_version=kube_version,
    )


def by_name(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs}


def test_helm_is_v3() -> None:
    assert helm_version(find_helm()).startswith("v3")


def test_renders_crds_and_drops_hooks() -> None:
    objs = render(CHART, {"MASTER_NODES": "10.0.0.1"})
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("CustomResourceDefinition", "subnets.kubeovn.io") in kinds
    assert ("Deployment", "ovn-central") in kinds
    # The chart's hooks (subnet finalizer removal on delete, ovs-ovn upgrade) are Jobs: dropped.
    assert not any(o["kind"] == "Job" for o in objs)


def test_values_are_passed_as_data() -> None:
    # A value with YAML syntax in it arrives as one string (values are written as a JSON file).
    tricky = "10.0.0.1\nfunc:\n  ENABLE_LB: false"
    objs = by_name(render(CHART, {"MASTER_NODES": tricky}))
    env = objs["ovn-central"]["spec"]["template"]["spec"]["containers"][0]["env"]
    # The chart's own quoting folds the newlines; what matters is that no value became a key.
    assert {"name": "NODE_IPS", "value": "10.0.0.1 func: ENABLE_LB: false"} in env
    ctrl = objs["kube-ovn-controller"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-lb=true" in ctrl
    assert objs["ovn-central"]["spec"]["replicas"] == 1
    assert by_name(render(CHART, {"MASTER_NODES": "10.0.0.1,10.0.0.2"}))["ovn-central"]["spec"]["replicas"] == 2


def test_chart_failure_names_the_chart_and_carries_stderr() -> None:
    with pytest.raises(ArtifactError) as err:
        render(CHART, {"MASTER_NODES": "10.0.0.1"}, kube_version="v1.28.9")  # the chart needs >= 1.29
    assert "chart kube-ovn v1.16.2" in str(err.value)
    assert "incompatible with Kubernetes v1.28.9" in str(err.value)


def test_version_mismatch_is_refused() -> None:
    with pytest.raises(ArtifactError, match=r"holds chart version 'v1\.15\.24'"):
        render(artifact_bytes("kubeovn", "v1.15.24")["kube-ovn-chart"], {"MASTER_NODES": "10.0.0.1"})


def test_not_a_chart() -> None:
    with pytest.raises(ArtifactError, match="not a Helm chart archive"):
        render(b"not a tarball", {})


def test_kvinstall_helm_must_be_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVINSTALL_HELM", str(tmp_path / "missing"))
    with pytest.raises(ArtifactError, match="KVINSTALL_HELM"):
        find_helm()


def test_helm_2_is_refused(tmp_path: Path) -> None:
    # Helm v2 cannot be installed here: a two-line script answering like it stands in for it.
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho v2.17.0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ArtifactError, match="needs Helm v3"):
        helm_version(str(fake))
    assert os.access(fake, os.X_OK)
