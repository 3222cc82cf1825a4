"""`apply`: plan first (shown, confirmed), then the phases; `reset`: the reverse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvinstall.errors import KvError
from kvinstall.plan.build import KubeOneDecision, build_plan
from kvinstall.plan.model import Observed, Plan
from kvinstall.plan.observe import observe_cluster
from kvinstall.run.context import Context
from kvinstall.run.manager import run_phases
from kvinstall.run.phases import KubeOnePhase, apply_phases, nodes_ready_at_version, remove_component


@dataclass
class Outcome:
    phases: list[tuple[str, str]]
    summaries: dict[str, str]
    credentials_file: str | None = None


def preview(ctx: Context) -> Plan:
    """The plan shown before confirmation, from the live cluster when one is reachable."""
    observed = Observed()
    kube = ctx.try_kube()
    cluster = None
    decision = None
    if kube is not None:
        try:
            cluster = observe_cluster(kube, ctx.desired, prune_protected=ctx.options.prune_protected)
            observed.cluster = True
            run, reason = KubeOnePhase().should_run(ctx)
            decision = KubeOneDecision(skip=not run, reason=reason)
        except KvError as exc:
            observed.notes.append(f"cluster: not observed ({exc.message})")
    else:
        observed.notes.append("cluster: not created yet (no kubeconfig in the state directory)")
    observed.notes.append("hosts: checked by the preflight phase")
    return build_plan(ctx.desired, observed=observed, cluster=cluster, kubeone=decision)


def run_apply(ctx: Context, *, confirm: Callable[[Plan], None]) -> Outcome:
    plan = preview(ctx)
    confirm(plan)
    try:
        phases = run_phases(ctx, apply_phases(ctx), command="apply")
    except KvError as exc:
        ctx.events.emit("run.end", status="failed", message=str(exc).splitlines()[0], exitCode=exc.exit_code)
        raise
    creds = None
    if ctx.config.auth.mode == "basic" and ctx.config.auth.basic.password is None:
        from kvinstall.components.dex import ensure_admin_credentials

        path, _ = ensure_admin_credentials(ctx.state, ctx.config)
        creds = str(path)
        ctx.events.emit("log", message=f"Dex admin credentials (mode 0600): {creds}")
    ctx.events.emit(
        "run.end",
        status="ok",
        message=f"cluster {ctx.config.name} matches {ctx.config_file}",
        exitCode=0,
        phases=dict(phases),
    )
    return Outcome(phases=phases, summaries=dict(ctx.summaries), credentials_file=creds)


def run_reset(ctx: Context, *, confirm: Callable[[str], None], kubeone_reset: bool) -> list[str]:
    """Remove workspaces and components in reverse install order (each in its safe order)."""
    from kvinstall.plan.observe import KNOWN_COMPONENTS

    confirm(
        f"Remove every component and workspace of cluster {ctx.config.name}"
        + (" and reset the Kubernetes cluster with KubeOne" if kubeone_reset else "")
        + "?"
    )
    removed = []
    ctx.events.emit("phase.start", phase="reset", title="Remove components")
    for name in reversed(KNOWN_COMPONENTS):
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
        from kvinstall.hosts.kubeone_view import kubeone_host_keys, require_all
        from kvinstall.kubeone.manifest import render_manifest, to_yaml
        from kvinstall.kubeone.runner import reset as kubeone_reset_run

        keys, missing = kubeone_host_keys(
            ctx.config, ctx.state / "known_hosts", user_known_hosts=ctx.options.user_known_hosts
        )
        require_all(missing)
        kubeone_reset_run(
            to_yaml(render_manifest(ctx.config, host_keys=keys)),
            ctx.state,
            binary=ctx.config.kubeone.binary,
            on_line=lambda line: ctx.events.emit("log", phase="kubeone", message=line),
            env=ctx.options.kubeone_env,
        )
        ctx.journal.kubeone_manifest = None
        ctx.journal.start_over()
    ctx.events.emit("run.end", status="ok", message=f"removed: {', '.join(removed) or 'nothing'}", exitCode=0)
    return removed


def node_health(ctx: Context) -> tuple[bool, str]:
    kube = ctx.try_kube()
    return nodes_ready_at_version(kube, ctx.config) if kube else (False, "no kubeconfig")
