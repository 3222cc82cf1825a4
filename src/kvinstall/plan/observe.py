"""observe (I/O): what is live. Each source is optional; what was not observed is said so."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kvinstall.components import COMPONENT_MODULES
from kvinstall.plan.desired import DesiredState
from kvinstall.plan.model import Observed

if TYPE_CHECKING:
    from kvinstall.kube.apply import ApplyPlan
    from kvinstall.kube.client import Kube

# Components whose ApplySets may exist although they are not desired now (switched off): every
# component kvinstall knows, in install order (each module is named after its component).
KNOWN_COMPONENTS = COMPONENT_MODULES


def observe_cluster(
    kube: Kube, desired: DesiredState, *, prune_protected: bool = False
) -> dict[str, ApplyPlan]:
    """Per component, the engine's comparison of the desired objects with the live ones."""
    from kvinstall.kube.apply import plan_apply
    from kvinstall.kube.inventory import ApplySetRef

    plans: dict[str, ApplyPlan] = {}
    for comp in desired.components:
        if comp.unavailable:
            # Without the upstream objects the prune list would be wrong: observe nothing here.
            continue
        plans[comp.name] = plan_apply(
            kube, ApplySetRef(comp.name), comp.objects, prune_protected=prune_protected
        )
    for name in KNOWN_COMPONENTS:
        if desired.component(name) is None:
            off = plan_apply(kube, ApplySetRef(name), [], prune_protected=prune_protected)
            if off.prune or off.prune_blocked:
                plans[name] = off
    return plans


def cluster_client(kubeconfig: Path | None, observed: Observed) -> Kube | None:
    """A client when a kubeconfig was given or is in the state; otherwise None, and a note."""
    if kubeconfig is None or not kubeconfig.exists():
        observed.notes.append("cluster: no kubeconfig in the state directory and none given (--kubeconfig)")
        return None
    from kvinstall.kube.client import Kube

    return Kube.from_kubeconfig(kubeconfig)
