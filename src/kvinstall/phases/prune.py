"""Components switched off in the config: removed in their safe order, in reverse install order. Also
what `reset` uses to remove every component."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvinstall.phases.base import report
from kvinstall.phases.context import Context
from kvinstall.plan.diff import blocked_notes, set_actions
from kvinstall.plan.model import PhasePlan

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube


def install_order() -> list[str]:
    from kvinstall.components import all_components

    return [c.name for c in all_components()]


class PrunePhase:
    name = "prune"
    title = "Prune removed components"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return sorted(c.name for c in ctx.desired.components)

    def removed(self, ctx: Context) -> list[str]:
        return [n for n in reversed(install_order()) if ctx.desired.component(n) is None]

    def plan(self, ctx: Context) -> PhasePlan:
        phase = PhasePlan(self.name, self.title)
        live = ctx.live()
        if live is None:
            return phase
        for name in self.removed(ctx):
            members = live.sets.get(name)
            if members is not None:
                phase.actions += set_actions([], members, removed=True)
                phase.notes += blocked_notes(members)
        return phase

    def run(self, ctx: Context) -> str:
        done = [name for name in self.removed(ctx) if remove_component(ctx, name, phase=self.name)]
        return f"removed {', '.join(done)}" if done else "nothing to prune"


def remove_component(ctx: Context, name: str, *, phase: str) -> bool:
    """Delete every member of a component's ApplySet, in the component's safe order. True if any."""
    from kvinstall.components import component
    from kvinstall.kube.apply import execute, plan_apply
    from kvinstall.kube.inventory import ApplySetRef

    kube = ctx.kube()
    plan = plan_apply(kube, ApplySetRef(name), [], prune_protected=ctx.options.prune_protected)
    if not plan.prune:
        return False
    report(ctx, phase, plan)
    comp = component(name)

    def hook(k: Kube, items: list[Any], delete_rest: Any) -> None:
        comp.remove(ctx.config, ctx.catalog, k, delete_rest)

    execute(kube, plan, prune_hook=hook)
    return True
