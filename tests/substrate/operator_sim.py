"""Plays an operator's controller loop (a fake at a process boundary that cannot exist here: no kubelet, no
controllers run) by patching status subresources, so readiness logic can be tested against a real apiserver.

Use (fixture ``operator_sim``, function-scoped; stops its background threads after the test)::

    operator_sim.kubevirt_deployed("kubevirt", "kubevirt")  # KubeVirt CR: phase Deployed + conditions
    operator_sim.deployment_available("ns", "name")        # Deployment status: Available, all ready
    operator_sim.cdi_deployed()                            # CDI CR: phase Deployed (no status subresource)
    operator_sim.patch_status(path, {"status": {...}})     # any object (its API path, no /status)
    operator_sim.when_exists(path, status, timeout=30)     # background: wait for it, then patch

``path`` is the object's API path, e.g. ``/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt``.
The background helper polls (every 0.2 s, bounded by ``timeout``) and records errors in ``.errors``;
``.wait()`` joins all threads and returns the list of paths it patched.
CRDs need nothing: the apiserver itself sets Established/NamesAccepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .kube_api import KubeApi

_READY = {"reason": "AllComponentsReady", "message": "All components are ready."}
AVAILABLE_CONDITIONS = [
    {"type": "Available", "status": "True", **_READY},
    {"type": "Progressing", "status": "False", **_READY},
    {"type": "Degraded", "status": "False", **_READY},
]


class OperatorSim:
    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.errors: list[str] = []
        self.patched: list[str] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def patch_status(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``body`` (``{"status": ...}``) into ``path``/status; returns the object."""
        r = self.api.request("PATCH", f"{path}/status", json=body,
                             headers={"Content-Type": "application/merge-patch+json"})
        if r.status_code >= 300:
            raise RuntimeError(f"status patch of {path} failed: {r.status_code} {r.text}")
        self.patched.append(path)
        result: dict[str, Any] = r.json()
        return result

    def get(self, path: str) -> dict[str, Any] | None:
        r = self.api.request("GET", path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    # -------------------------------------------------------------- canned operator effects
    @staticmethod
    def kubevirt_path(namespace: str = "kubevirt", name: str = "kubevirt", version: str = "v1") -> str:
        return f"/apis/kubevirt.io/{version}/namespaces/{namespace}/kubevirts/{name}"

    @staticmethod
    def kubevirt_status(observed_generation: int | None = None) -> dict[str, Any]:
        status: dict[str, Any] = {"phase": "Deployed", "conditions": AVAILABLE_CONDITIONS}
        if observed_generation is not None:
            status["observedGeneration"] = observed_generation
        return {"status": status}

    def kubevirt_deployed(self, namespace: str = "kubevirt", name: str = "kubevirt") -> dict[str, Any]:
        """Deployed, at the version virt-operator runs (its KUBEVIRT_VERSION), as virt-operator reports."""
        path = self.kubevirt_path(namespace, name)
        obj = self.get(path)
        if obj is None:
            raise RuntimeError(f"{path} does not exist")
        status = self.kubevirt_status(obj["metadata"].get("generation"))
        operator = self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/virt-operator")
        env = {e["name"]: e.get("value") for e in
               (operator or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("env", [])}
        if env.get("KUBEVIRT_VERSION"):
            status["status"]["observedKubeVirtVersion"] = env["KUBEVIRT_VERSION"]
            status["status"]["targetKubeVirtVersion"] = env["KUBEVIRT_VERSION"]
        return self.patch_status(path, status)

    def cdi_deployed(self, name: str = "cdi", version: str = "v1.65.0") -> dict[str, Any]:
        """The CDI CR Deployed. Its CRD has no status subresource: cdi-operator writes status
        through the object itself (a /status patch would 404), and so does this."""
        path = f"/apis/cdi.kubevirt.io/v1beta1/cdis/{name}"
        status = {"phase": "Deployed", "conditions": AVAILABLE_CONDITIONS, "observedVersion": version,
                  "operatorVersion": version, "targetVersion": version}  # fmt: skip
        r = self.api.request("PATCH", path, json={"status": status},
                             headers={"Content-Type": "application/merge-patch+json"})
        if r.status_code >= 300:
            raise RuntimeError(f"status update of {path} failed: {r.status_code} {r.text}")
        self.patched.append(path)
        result: dict[str, Any] = r.json()
        return result

    @staticmethod
    def deployment_status(obj: dict[str, Any]) -> dict[str, Any]:
        replicas = int(obj.get("spec", {}).get("replicas", 1))
        return {"status": {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet has successfully progressed."},
            ],
        }}

    def deployment_available(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        obj = self.get(path)
        if obj is None:
            raise RuntimeError(f"{path} does not exist")
        return self.patch_status(path, self.deployment_status(obj))

    # -------------------------------------------------------------- background
    def when_exists(self, path: str, status: dict[str, Any] | None = None, timeout: float = 30.0,
                    delay: float = 0.0) -> threading.Thread:
        """In a thread: wait (bounded) until ``path`` exists, sleep ``delay``, then patch its status.

        ``status=None`` picks the canned status by path (Deployment or KubeVirt)."""
        def loop() -> None:
            deadline = time.monotonic() + timeout
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    obj = self.get(path)
                    if obj is not None:
                        if self._stop.wait(delay):
                            return
                        body = status
                        if body is None:
                            body = (self.deployment_status(obj) if "/deployments/" in path
                                    else self.kubevirt_status(obj["metadata"].get("generation")))
                        self.patch_status(path, body)
                        return
                except Exception as exc:  # recorded, and the test sees it through .errors / wait()
                    self.errors.append(f"{path}: {exc!r}")
                    return
                self._stop.wait(0.2)
            if not self._stop.is_set():
                self.errors.append(f"{path}: did not appear within {timeout}s")

        t = threading.Thread(target=loop, name=f"operator-sim {path}", daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def wait(self, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return list(self.patched)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@pytest.fixture
def operator_sim(kube_api: KubeApi) -> Iterator[OperatorSim]:
    sim = OperatorSim(kube_api)
    try:
        yield sim
    finally:
        sim.close()
