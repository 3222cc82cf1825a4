"""diff (pure): desired objects x what was observed -> the actions of a phase.

Observations are optional: with no cluster, every object is "create". The comparison itself is the
apply engine's per-ApplySet ApplyPlan (kvinstall.kube), which already compared each desired object
with its LIVE counterpart; the same ApplyPlan is what apply then executes and reports, so an action
here names an object exactly as apply's events do (`object`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvinstall.kube.client import describe
from kvinstall.model import DesiredComponent, KubeObject
from kvinstall.plan.model import Action, ActionKind, PhasePlan

if TYPE_CHECKING:
    from kvinstall.kube.apply import ApplyPlan, PruneItem


def _target(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def object_action(
    obj: KubeObject, action: ActionKind, diff: tuple[dict[str, Any], ...] = (), reason: str | None = None
) -> Action:
    meta = obj.get("metadata") or {}
    api, kind, name, ns = (
        obj.get("apiVersion", ""),
        obj.get("kind", ""),
        meta.get("name", ""),
        meta.get("namespace"),
    )
    return Action(
        action=action,
        target=_target(kind, name, ns),
        object=describe(api, kind, name, ns),
        api_version=api,
        kind=kind,
        name=name,
        namespace=ns,
        reason=reason,
        diff=diff,
    )


def delete_action(p: PruneItem, reason: str) -> Action:
    return Action(
        action="delete",
        target=_target(p.kind, p.name, p.namespace),
        object=p.ref,
        api_version=p.api_version,
        kind=p.kind,
        name=p.name,
        namespace=p.namespace,
        reason=reason,
    )


def set_actions(objects: list[KubeObject], live: ApplyPlan | None, *, removed: bool = False) -> list[Action]:
    """The actions of one ApplySet: per desired object create / update (with its field diff) /
    unchanged, then the members to delete. No observation: every object is to create."""
    if live is None:
        return [object_action(o, "create") for o in objects]
    actions = [object_action(i.obj, i.action, tuple(c.to_dict() for c in i.changes)) for i in live.items]
    why = (
        "the component is switched off in the configuration" if removed else "no longer in the configuration"
    )
    return actions + [delete_action(p, why) for p in live.prune]


def blocked_notes(live: ApplyPlan | None) -> list[str]:
    return [
        f"{p.kind} {p.name} left the configuration; kept (CRDs and namespaces need --prune-all)"
        for p in (live.prune_blocked if live is not None else [])
    ]


def component_phase(
    name: str,
    title: str,
    comp: DesiredComponent,
    *,
    observed: bool,
    live: ApplyPlan | None,
    unserved: dict[str, str] | None = None,
    unobserved: str | None = None,
) -> PhasePlan:
    """One component's phase: its version, images, artifacts, and an action per object."""
    phase = PhasePlan(
        name=name,
        title=title,
        version=comp.version,
        images=list(comp.images),
        artifacts=[
            {"name": a.name, "kind": a.kind, "source": a.describe(), "sha256": a.sha256}
            for a in comp.artifacts
        ],
        notes=list(comp.notes),
    )
    for art in comp.unavailable:
        if any(art.source in n for n in phase.notes):
            continue  # the component said so already
        phase.notes.append(
            f"objects of {art.describe()} are not listed: not in the local cache (apply fetches and verifies it)"
        )
    if unserved is not None:
        # Kinds the cluster does not serve yet: apply creates them once an earlier phase brought their CRDs.
        phase.actions = [
            object_action(o, "create", reason=unserved.get(object_action(o, "create").object or ""))
            for o in comp.objects
        ]
        return phase
    if observed and unobserved:
        phase.notes.append(unobserved)
    phase.actions = set_actions(comp.objects, live)
    phase.notes += blocked_notes(live)
    return phase
