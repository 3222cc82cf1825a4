"""One component (or the workspaces): apply its objects (only what differs from the live cluster), prune
what left its set, then wait until it is ready.

An upgrade of the component (ctx.upgrades, from the dry run's upgrade check) goes in two gated steps:
first everything but its custom resources (CRDs, the operator, workloads), then a wait until those
workloads are rolled out and ready; then the custom resources and the prune, then a wait until the
component is ready and reports the new version. The journal records the upgrade as started, and as
finished when the phase completes, so status shows a stopped upgrade and a re-run continues it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kvinstall.errors import ArtifactError
from kvinstall.model import DesiredComponent, ReadinessRule
from kvinstall.phases.base import report
from kvinstall.phases.context import Context
from kvinstall.plan.diff import component_phase
from kvinstall.plan.model import PhasePlan

# Kinds whose readiness is a rollout (the operator and workloads), waited for before custom resources.
BUILTIN_READY = frozenset({"CustomResourceDefinition", "Deployment", "DaemonSet", "StatefulSet"})


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
        rules = self.comp.readiness

        def progress(done: int, total: int) -> None:
            ctx.events.emit("progress", phase=self.name, what="ready", done=done, total=total)

        def wait(which: list[ReadinessRule]) -> None:
            wait_ready(kube, which, ctx.options.ready_timeout, on_progress=progress, cancel=ctx.stop)
            for r in which:
                ctx.events.emit("ready", phase=self.name, object=rule_name(r))

        upgrade = ctx.upgrades.get(self.comp.name)
        if upgrade is not None:
            ctx.journal.upgrade_started(self.comp.name, upgrade.from_version, upgrade.to_version)
            what = "downgrade" if upgrade.downgrade else "upgrade"
            ctx.events.emit(
                "log",
                phase=self.name,
                message=f"{what} {upgrade.title} {upgrade.from_version} -> {upgrade.to_version}: "
                "CRDs, operator and workloads first",
            )
            first = replace(plan, items=[i for i in plan.items if i.phase != "custom"], prune=[])
            result = execute(kube, first)
            workloads = [r for r in rules if r.kind in BUILTIN_READY]
            wait(workloads)
            ctx.events.emit(
                "log",
                phase=self.name,
                message=f"{what} {upgrade.title}: workloads ready; now its custom resources, then the "
                f"gate: {upgrade.steps[-1].removeprefix('gate: ')}",
            )
            second = replace(plan, items=[i for i in plan.items if i.phase == "custom"])
            rest = execute(kube, second)
            result.created += rest.created
            result.updated += rest.updated
            result.pruned += rest.pruned
            result.unchanged += rest.unchanged
            wait([r for r in rules if r not in workloads])
        else:
            result = execute(kube, plan)
            if rules:
                wait(rules)
        if self.comp.name != "workspaces":
            ctx.journal.reached(self.comp.name, self.comp.version)
        parts = [
            f"{len(result.created)} created",
            f"{len(result.updated)} updated",
            f"{result.unchanged} unchanged",
        ]
        if result.pruned:
            parts.append(f"{len(result.pruned)} pruned")
        return ", ".join(parts) + (f", {len(rules)} ready" if rules else "")
