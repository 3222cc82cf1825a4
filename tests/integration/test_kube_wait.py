"""Readiness waits against the real apiserver; status is played by operator_sim (no controllers run here)."""

from __future__ import annotations

from typing import Any

import pytest

from kvinstall.errors import Interrupted, ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, execute, plan_apply, wait_ready
from kvinstall.model import ReadinessRule
from substrate.crds import crd as make_crd

pytestmark = pytest.mark.integration


def test_wait_ready_deployment_crd_and_custom_resource(
    kube_api: Any, operator_sim: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube = Kube.from_kubeconfig(kube_api.kubeconfig)
    crd = make_crd("example.kvinstall.io", "Gizmo", "gizmos")
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    giz = {
        "apiVersion": "example.kvinstall.io/v1",
        "kind": "Gizmo",
        "metadata": {"name": "g", "namespace": ns},
        "spec": {"a": 1},
    }
    execute(kube, plan_apply(kube, ApplySetRef(f"wait-{ns}"), [crd, dep, giz]))
    rules = [
        ReadinessRule("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gizmos.example.kvinstall.io"),
        ReadinessRule("apps/v1", "Deployment", "web", ns),
        ReadinessRule(
            "example.kvinstall.io/v1",
            "Gizmo",
            "g",
            ns,
            phase="Deployed",
            conditions=(("Available", "True"), ("Degraded", "False")),
        ),
        ReadinessRule("v1", "ConfigMap", "never", ns, exists_only=True),
    ]
    gpath = f"/apis/example.kvinstall.io/v1/namespaces/{ns}/gizmos/g"
    operator_sim.patch_status(
        gpath,
        {
            "status": {
                "phase": "Deploying",
                "conditions": [
                    {
                        "type": "Available",
                        "status": "False",
                        "reason": "Waiting",
                        "message": "virt-handler not ready on node-1",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
    )
    with pytest.raises(ReadinessTimeout) as info:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    msg = str(info.value)
    assert f"Deployment.apps/{ns}/web" in msg and "controller has not reported status yet" in msg
    assert "virt-handler not ready on node-1" in msg and "phase Deploying" in msg
    assert f"ConfigMap/{ns}/never: not found" in msg
    assert "CustomResourceDefinition" not in msg  # the apiserver established it
    assert info.value.exit_code == 9

    operator_sim.deployment_available(ns, "web")
    operator_sim.patch_status(
        gpath,
        {
            "status": {
                "phase": "Deployed",
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Degraded", "status": "False"},
                ],
            }
        },
    )
    kube_api.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "never"}}
    ).raise_for_status()
    wait_ready(kube, rules, timeout=30, interval=0.2)
    kube.close()


def test_wait_ready_ends_at_once_when_cancelled(kube_api: Any, kube_namespace: str) -> None:
    """Ctrl-C during a long readiness wait: the wait stops at the next poll, not at its timeout."""
    import threading

    kube = Kube.from_kubeconfig(kube_api.kubeconfig)
    rules = [ReadinessRule("v1", "ConfigMap", "never", kube_namespace, exists_only=True)]
    cancel = threading.Event()
    polls: list[int] = []

    def progress(done: int, total: int) -> None:
        polls.append(done)
        if len(polls) == 2:
            cancel.set()  # as the SIGINT handler does, from the outside, mid-wait

    with pytest.raises(Interrupted) as info:
        # An hour's timeout: only the cancel can end this wait within the test's own timeout.
        wait_ready(kube, rules, timeout=3600, interval=0.2, on_progress=progress, cancel=cancel)
    assert "1 object(s) were not ready" in str(info.value)
    assert info.value.exit_code == 130
    assert polls == [0, 0]  # it stopped at the first poll after the cancel
    kube.close()
