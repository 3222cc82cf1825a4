"""`status`: observe + diff, summarised (nodes, components with version and readiness, drift)."""

from __future__ import annotations

from typing import Any

from kvinstall.phases.context import Context


def collect_status(ctx: Context) -> dict[str, Any]:
    from kvinstall.kube.apply import ApplyFailed, plan_apply
    from kvinstall.kube.inventory import ApplySetRef
    from kvinstall.kube.wait import is_ready, rule_name

    kube = ctx.kube()
    nodes = []
    for node in kube.list("v1", "Node"):
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
    for comp in ctx.desired.components:
        drift: list[dict[str, Any]]
        try:
            plan = plan_apply(kube, ApplySetRef(comp.name), comp.objects)
        except ApplyFailed as exc:
            # Kinds the cluster does not serve (e.g. their CRDs were removed): those objects are missing.
            drift = [
                {"object": ref, "action": "create", "changes": [], "reason": msg}
                for ref, msg in sorted(exc.failures.items())
            ]
        else:
            drift = [
                {"object": i.ref, "action": i.action, "changes": [c.to_dict() for c in i.changes]}
                for i in plan.changed
            ] + [{"object": p.ref, "action": "delete"} for p in plan.prune]
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
        components.append(
            {
                "name": comp.name,
                "title": comp.title,
                "version": comp.version,
                "ready": not why,
                "why": "; ".join(why),
                "drift": len(drift),
                "drifted": drift,
            }
        )
    return {
        "apiVersion": "kvinstall.io/status/v1",
        "cluster": ctx.config.name,
        "nodes": nodes,
        "components": components,
        "workspaces": [w.name for w in ctx.config.workspaces],
        "driftTotal": total,
    }
