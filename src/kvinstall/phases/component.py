"""One component (or the workspaces): apply its objects (only what differs from the live cluster), prune
what left its set, then wait until it is ready."""

from __future__ import annotations

from typing import Any

from kvinstall.errors import ArtifactError
from kvinstall.model import DesiredComponent
from kvinstall.phases.base import report
from kvinstall.phases.context import Context
from kvinstall.plan.diff import component_phase
from kvinstall.plan.model import PhasePlan


class ComponentPhase:
    resumable = True

    def __init__(self, comp: DesiredComponent) -> None:
        self.comp = comp
        workspaces = comp.name == "workspaces"
        self.name = "workspaces" if workspaces else f"component/{comp.name}"
        self.title = "Workspaces" if workspaces else f"{comp.title} {comp.version}"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return self.comp.objects

    def plan(self, ctx: Context) -> PhasePlan:
        live = ctx.live()
        name = self.comp.name
        return component_phase(
            self.name,
            self.comp.title,
            self.comp,
            observed=live is not None,
            live=live.sets.get(name) if live is not None else None,
            unserved=live.unserved.get(name) if live is not None else None,
            unobserved=live.unobserved.get(name) if live is not None else None,
        )

    def run(self, ctx: Context) -> str:
        from kvinstall.kube.apply import execute, plan_apply
        from kvinstall.kube.inventory import ApplySetRef
        from kvinstall.kube.wait import rule_name, wait_ready

        kube = ctx.kube()
        if self.comp.unavailable:
            names = ", ".join(a.describe() for a in self.comp.unavailable)
            raise ArtifactError(f"upstream artifacts not available: {names}", where=self.comp.name)
        plan = plan_apply(
            kube, ApplySetRef(self.comp.name), self.comp.objects, prune_protected=ctx.options.prune_protected
        )
        report(ctx, self.name, plan)
        result = execute(kube, plan)
        rules = self.comp.readiness
        if rules:

            def progress(done: int, total: int) -> None:
                ctx.events.emit("progress", phase=self.name, what="ready", done=done, total=total)

            wait_ready(kube, rules, ctx.options.ready_timeout, on_progress=progress, cancel=ctx.stop)
            for r in rules:
                ctx.events.emit("ready", phase=self.name, object=rule_name(r))
        parts = [
            f"{len(result.created)} created",
            f"{len(result.updated)} updated",
            f"{result.unchanged} unchanged",
        ]
        if result.pruned:
            parts.append(f"{len(result.pruned)} pruned")
        return ", ".join(parts) + (f", {len(rules)} ready" if rules else "")
