"""`status`: observe + diff, summarised (nodes, components with version and readiness, drift)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kvinstall.model import DesiredState
from kvinstall.plan.observe import observe

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube


def collect_status(
    kube: Kube, desired: DesiredState, workspaces: Sequence[str], *, prune_protected: bool = False
) -> dict[str, Any]:
    from kvinstall.kube.wait import is_ready, rule_name

    live = observe(kube, desired, prune_protected=prune_protected)
    nodes = []
    for node in live.nodes:
        st = node.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", []))
        nodes.append(
            {
                "name": node["metadata"]["name"],
                "ready": ready,
                "version": (st.get("nodeInfo") or {}).get("kubeletVersion"),
            }
        )
    components = []
    total = 0
    for comp in desired.components:
        drift: list[dict[str, Any]] = []
        notes: list[str] = []
        if comp.name in live.unserved:
            # Kinds the cluster does not serve (e.g. their CRDs were removed): those objects are missing.
            drift = [
                {"object": ref, "action": "create", "changes": [], "reason": msg}
                for ref, msg in live.unserved[comp.name].items()
            ]
        elif comp.name in live.sets:
            plan = live.sets[comp.name]
            drift = [
                {"object": i.ref, "action": i.action, "changes": [c.to_dict() for c in i.changes]}
                for i in plan.changed
            ] + [{"object": p.ref, "action": "delete"} for p in plan.prune]
        else:
            notes.append(live.unobserved[comp.name])
        total += len(drift)
        why = []
        for rule in comp.readiness:
            ok, reason = (
                (False, "kind not served")
                if kube.try_resource(rule.api_version, rule.kind) is None
                else is_ready(rule, kube.get(rule.api_version, rule.kind, rule.name, rule.namespace))
            )
            if not ok:
                why.append(f"{rule_name(rule)}: {reason}")
        entry: dict[str, Any] = {
            "name": comp.name,
            "title": comp.title,
            "version": comp.version,
            "ready": not why,
            "why": "; ".join(why),
            "drift": len(drift),
            "drifted": drift,
        }
        if notes:
            entry["notes"] = notes
        components.append(entry)
    return {
        "apiVersion": "kvinstall.io/status/v1",
        "cluster": desired.cluster,
        "nodes": nodes,
        "components": components,
        "workspaces": list(workspaces),
        "driftTotal": total,
    }
