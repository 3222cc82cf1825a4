"""`apply`: the dry run first (shown, confirmed), then the phases; `reset`: the reverse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvinstall.errors import KvError
from kvinstall.phases.context import Context
from kvinstall.phases.manager import apply_phases, dry_run, run_phases
from kvinstall.phases.prune import install_order, remove_component
from kvinstall.plan.model import Plan


@dataclass
class Outcome:
    phases: list[tuple[str, str]]
    summaries: dict[str, str]
    credentials_file: str | None = None
    plan: Plan | None = None


@dataclass
class ApplySteps:
    """What apply does around the phases, given by the caller: show the plan and ask, then write what
    must exist before anything is applied (e.g. Dex's generated admin credential)."""

    confirm: Callable[[Plan], None]
    before_run: Callable[[], None] = lambda: None


def preview(ctx: Context) -> Plan:
    """The plan apply shows before it asks: the dry run of its own phases. A cluster that cannot be
    observed is a note here; the phases that need it report it again."""
    ctx.unobservable_ok = True
    return dry_run(ctx, apply_phases(ctx))


def run_apply(ctx: Context, steps: ApplySteps) -> Outcome:
    plan = preview(ctx)
    steps.confirm(plan)
    try:
        steps.before_run()
        phases = run_phases(ctx, apply_phases(ctx), command="apply")
    except KvError as exc:
        ctx.events.emit("run.end", status="failed", message=str(exc).splitlines()[0], exitCode=exc.exit_code)
        raise
    creds = None
    if ctx.config.auth.mode == "basic" and ctx.config.auth.basic.password is None:
        from kvinstall.components.dex import credentials_path

        creds = str(credentials_path(ctx.state))
        ctx.events.emit("log", message=f"Dex admin credentials (mode 0600): {creds}")
    ctx.events.emit(
        "run.end",
        status="ok",
        message=f"cluster {ctx.config.name} matches {ctx.config_file}",
        exitCode=0,
        phases=dict(phases),
    )
    return Outcome(phases=phases, summaries=dict(ctx.summaries), credentials_file=creds, plan=plan)


def run_reset(ctx: Context, *, confirm: Callable[[str], None], kubeone_reset: bool) -> list[str]:
    """Remove workspaces and components in reverse install order (each in its safe order)."""
    confirm(
        f"Remove every component and workspace of cluster {ctx.config.name}"
        + (" and reset the Kubernetes cluster with KubeOne" if kubeone_reset else "")
        + "?"
    )
    removed = []
    ctx.events.emit("phase.start", phase="reset", title="Remove components")
    for name in reversed(install_order()):
        if ctx.stop.is_set():
            break
        if remove_component(ctx, name, phase="reset"):
            removed.append(name)
            ctx.events.emit("log", phase="reset", message=f"removed {name}")
    ctx.events.emit(
        "phase.end",
        phase="reset",
        title="Remove components",
        status="ok",
        seconds=0,
        summary=", ".join(removed) or "nothing installed",
    )
    if kubeone_reset:
        from kvinstall.kubeone.manifest import to_yaml

        ctx.edges.kubeone_reset(
            to_yaml(ctx.desired.kubeone_manifest),
            ctx.state,
            binary=ctx.config.kubeone.binary,
            on_line=lambda line: ctx.events.emit("log", phase="kubeone", message=line),
        )
        ctx.journal.kubeone_manifest = None
        ctx.journal.start_over()
    ctx.events.emit("run.end", status="ok", message=f"removed: {', '.join(removed) or 'nothing'}", exitCode=0)
    return removed
