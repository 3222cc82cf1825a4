"""Readiness waits: built-in rules for workloads, CRDs and Jobs; phase/condition rules for custom
resources. `is_ready` is pure (object in, verdict and reason out); `wait_ready` polls the cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kvinstall.errors import Interrupted, ReadinessTimeout
from kvinstall.kube.client import Kube, describe
from kvinstall.model import KubeObject, ReadinessRule


def rule_name(rule: ReadinessRule) -> str:
    return describe(rule.api_version, rule.kind, rule.name, rule.namespace)


def _conditions(obj: KubeObject) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _condition_reason(obj: KubeObject, prefer: tuple[str, ...] = ()) -> str:
    """The most telling condition message: the preferred types first, then the latest transition."""
    conds = _conditions(obj)
    for t in prefer:
        c = conds.get(t)
        if c and c.get("message"):
            return f"{t}={c.get('status')}: {c['message']}"
    latest = sorted(conds.values(), key=lambda c: str(c.get("lastTransitionTime", "")))
    for c in reversed(latest):
        if c.get("message"):
            return f"{c.get('type')}={c.get('status')}: {c['message']}"
    return ""


def _generation_seen(obj: KubeObject) -> str | None:
    gen = (obj.get("metadata") or {}).get("generation")
    seen = (obj.get("status") or {}).get("observedGeneration")
    if gen is not None and seen is not None and seen < gen:
        return f"controller has not observed generation {gen} yet (observed {seen})"
    if gen is not None and seen is None and obj.get("kind") in ("Deployment", "DaemonSet", "StatefulSet"):
        return "controller has not reported status yet"
    return None


def _with_reason(base: str, obj: KubeObject, prefer: tuple[str, ...] = ()) -> str:
    why = _condition_reason(obj, prefer)
    return f"{base} ({why})" if why else base


def _dig(obj: KubeObject, path: str) -> Any:
    node: Any = obj
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def is_ready(rule: ReadinessRule, obj: KubeObject | None) -> tuple[bool, str]:
    """(ready, why not) for one object against its rule."""
    if obj is None:
        return False, "not found"
    if rule.exists_only:
        return True, ""
    status = obj.get("status") or {}
    kind = rule.kind
    for path, want in rule.fields:
        have = _dig(obj, path)
        if have != want:
            return False, f"{path} is {'unset' if have is None else repr(have)}, want {want!r}"
    if rule.fields and rule.phase is None and not rule.conditions:
        return True, ""
    if rule.phase is None and not rule.conditions:
        if kind == "Deployment":
            if (g := _generation_seen(obj)) is not None:
                return False, g
            want = (obj.get("spec") or {}).get("replicas", 1)
            upd, ready, avail = (
                status.get(k, 0) for k in ("updatedReplicas", "readyReplicas", "availableReplicas")
            )
            if upd != want or ready != want or avail < want:
                return False, _with_reason(
                    f"{ready}/{want} ready, {upd}/{want} updated", obj, ("Progressing",)
                )
            if _conditions(obj).get("Available", {}).get("status") != "True":
                return False, _with_reason("not Available", obj, ("Available",))
            return True, ""
        if kind == "DaemonSet":
            if (g := _generation_seen(obj)) is not None:
                return False, g
            want = status.get("desiredNumberScheduled", 0)
            upd, ready, avail = (
                status.get(k, 0) for k in ("updatedNumberScheduled", "numberReady", "numberAvailable")
            )
            if upd != want or ready != want or avail != want:
                return False, f"{ready}/{want} ready, {upd}/{want} updated"
            return True, ""
        if kind == "StatefulSet":
            if (g := _generation_seen(obj)) is not None:
                return False, g
            want = (obj.get("spec") or {}).get("replicas", 1)
            ready, upd = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
            if ready != want or upd != want:
                return False, f"{ready}/{want} ready, {upd}/{want} updated"
            if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
                return False, "rollout to the update revision not finished"
            return True, ""
        if kind == "CustomResourceDefinition":
            if _conditions(obj).get("Established", {}).get("status") == "True":
                return True, ""
            return False, _with_reason("not Established", obj, ("NamesAccepted", "Established"))
        if kind == "Job":
            conds = _conditions(obj)
            if conds.get("Complete", {}).get("status") == "True":
                return True, ""
            if conds.get("Failed", {}).get("status") == "True":
                return False, _with_reason("failed", obj, ("Failed",))
            return False, _with_reason(f"{status.get('succeeded', 0)} succeeded", obj)
        # Any other kind without phase or conditions: existing (and its generation observed) is ready.
        g = _generation_seen(obj)
        return (g is None), g or ""
    if (g := _generation_seen(obj)) is not None:
        return False, g
    problems: list[str] = []
    if rule.phase is not None and status.get("phase") != rule.phase:
        problems.append(f"phase {status.get('phase') or '(none)'}, want {rule.phase}")
    conds = _conditions(obj)
    for ctype, want in rule.conditions:
        have = conds.get(ctype, {}).get("status", "Unknown")
        if have != want:
            problems.append(f"{ctype}={have}, want {want}")
    if problems:
        return False, _with_reason("; ".join(problems), obj, tuple(c for c, _ in rule.conditions))
    return True, ""


def wait_ready(
    kube: Kube,
    rules: list[ReadinessRule],
    timeout: float,
    *,
    interval: float = 1.0,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Poll until every rule holds. On timeout raise ReadinessTimeout naming each object not ready
    and why (its last condition message). When `cancel` is set (Ctrl-C) the wait ends at once with
    Interrupted: waiting writes nothing, so stopping it is always safe."""
    cancel = cancel or threading.Event()
    end = time.monotonic() + timeout
    pending = list(rules)
    why: dict[int, str] = {}

    def check(rule: ReadinessRule) -> tuple[bool, str]:
        res = kube.try_resource(rule.api_version, rule.kind)
        if res is None:
            return False, f"kind {rule.kind} is not served by the cluster"
        return is_ready(rule, kube.get(rule.api_version, rule.kind, rule.name, rule.namespace))

    with ThreadPoolExecutor(max_workers=8) as pool:
        while True:
            results = list(pool.map(check, pending))
            still = []
            for rule, (ok, reason) in zip(pending, results, strict=True):
                if not ok:
                    still.append(rule)
                    why[id(rule)] = reason
            pending = still
            if on_progress:
                on_progress(len(rules) - len(pending), len(rules))
            if not pending:
                return
            if cancel.is_set():
                raise Interrupted(f"stopped while {len(pending)} object(s) were not ready yet")
            if time.monotonic() >= end:
                lines = [f"{rule_name(r)}: {why[id(r)]}" for r in pending]
                raise ReadinessTimeout(
                    f"{len(pending)} object(s) not ready after {timeout:.0f}s:\n  " + "\n  ".join(lines),
                    where=rule_name(pending[0]) if len(pending) == 1 else None,
                )
            cancel.wait(min(interval, max(0.0, end - time.monotonic())))
