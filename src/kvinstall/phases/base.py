"""What every phase of apply is: a name (the same in the plan, the events, the journal and
--only/--skip), a title, `should_run` (with the reason when not), `inputs` (hashed into the journal for
--resume), `plan` (its dry run: what it would do, as a phase of the Plan) and `run` (does it; returns a
summary). `kvinstall plan` walks the same list of phases as apply, dry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from kvinstall.phases.context import Context
from kvinstall.plan.model import PhasePlan

if TYPE_CHECKING:
    from kvinstall.kube.apply import ApplyPlan


class Phase(Protocol):
    name: str
    title: str
    resumable: bool  # may --resume take it as done from an earlier run with the same inputs?

    def should_run(self, ctx: Context) -> tuple[bool, str]: ...

    def inputs(self, ctx: Context) -> Any: ...

    def plan(self, ctx: Context) -> PhasePlan: ...

    def run(self, ctx: Context) -> str: ...


def report(ctx: Context, phase: str, plan: ApplyPlan) -> None:
    """An `object` event per object the engine is about to write or delete (what the plan listed)."""
    for item in plan.items:
        if item.action != "unchanged":
            changes = [c.to_dict() for c in item.changes]
            ctx.events.emit("object", phase=phase, action=item.action, object=item.ref, changes=changes)
    for p in plan.prune:
        ctx.events.emit("object", phase=phase, action="delete", object=p.ref)
