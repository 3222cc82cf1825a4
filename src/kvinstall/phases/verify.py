"""Verify: observe the cluster again; every component must now match the file exactly."""

from __future__ import annotations

from typing import Any

from kvinstall.errors import ClusterError
from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan


class VerifyPhase:
    name = "verify"
    title = "Verify and report"
    resumable = False  # its input is the live cluster: never taken as done from an earlier run

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return None  # always re-verified

    def plan(self, ctx: Context) -> PhasePlan:
        action = Action(
            action="run",
            target="every object of the configuration",
            reason="after apply, observe the cluster again: nothing may still differ",
        )
        return PhasePlan(self.name, self.title, [action])

    def run(self, ctx: Context) -> str:
        from kvinstall.plan.observe import observe

        live = observe(ctx.kube(), ctx.desired, prune_protected=ctx.options.prune_protected)
        drifted = [i.ref for s in live.sets.values() for i in s.changed]
        drifted += [ref for failures in live.unserved.values() for ref in failures]
        if drifted:
            raise ClusterError(
                f"{len(drifted)} object(s) still differ from the configuration after apply: "
                + ", ".join(drifted[:10])
            )
        total = sum(len(s.items) for s in live.sets.values())
        return f"{total} objects match the configuration"
