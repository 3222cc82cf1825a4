"""observe (I/O): what is live in the cluster, per ApplySet. The one observation `plan`, `status`,
apply's preview and its verify phase all use, so they cannot disagree on what differs.

Per desired component: the apply engine's comparison of its objects with the live ones (kvinstall.kube,
which measures drift against the LIVE objects). Per component switched off in the config: its remaining
members, to prune. A component whose upstream artifacts are not available here is not observed (without
all its objects the prune list would be wrong); kinds the cluster does not serve make their objects
missing ("create"), not a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvinstall.model import DesiredState, KubeObject

if TYPE_CHECKING:
    from kvinstall.kube.apply import ApplyPlan
    from kvinstall.kube.client import Kube


@dataclass
class Live:
    """The cluster as observed, per ApplySet name (a component's name)."""

    sets: dict[str, ApplyPlan] = field(default_factory=dict)
    # Objects of kinds the cluster does not serve (e.g. their CRDs come from a later component, or
    # were removed): object -> reason. Those objects are missing.
    unserved: dict[str, dict[str, str]] = field(default_factory=dict)
    # Components not observed, and why (their upstream artifacts are not available here).
    unobserved: dict[str, str] = field(default_factory=dict)
    nodes: list[KubeObject] = field(default_factory=list)


def observe(
    kube: Kube,
    desired: DesiredState,
    *,
    prune_protected: bool = False,
    known: Sequence[str] = (),
) -> Live:
    """Compare every desired component with the live cluster; `known` names every component that may
    have members although the config no longer wants it (switched off: its members are to prune)."""
    from kvinstall.kube.apply import ApplyFailed, plan_apply
    from kvinstall.kube.inventory import ApplySetRef

    live = Live(nodes=kube.list("v1", "Node"))
    for comp in desired.components:
        if comp.unavailable:
            live.unobserved[comp.name] = "not observed: upstream artifacts not available here: " + ", ".join(
                a.describe() for a in comp.unavailable
            )
            continue
        try:
            live.sets[comp.name] = plan_apply(
                kube, ApplySetRef(comp.name), comp.objects, prune_protected=prune_protected
            )
        except ApplyFailed as exc:
            live.unserved[comp.name] = dict(sorted(exc.failures.items()))
    for name in known:
        if desired.component(name) is None:
            off = plan_apply(kube, ApplySetRef(name), [], prune_protected=prune_protected)
            if off.prune or off.prune_blocked:
                live.sets[name] = off
    return live
