"""`kvinstall apply -f FILE`: show the plan, confirm, then converge hosts, cluster and platform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kvinstall.cli.options import (
    AcceptNewHostKeys,
    ConfigFile,
    KubeconfigOpt,
    OutputOpt,
    Phases,
    PruneAll,
    SkipChecks,
    StateDir,
    Yes,
)
from kvinstall.cli.output import Format, Result, echo

if TYPE_CHECKING:
    from kvinstall.plan.model import Plan


def register(app: typer.Typer) -> None:
    @app.command(
        "apply", help="Converge the hosts, the cluster and the platform to the file (repairs drift)."
    )
    def apply_cmd(
        file: ConfigFile,
        yes: Yes = False,
        out: OutputOpt = Format.text,
        resume: Annotated[
            bool, typer.Option("--resume", help="Skip phases completed with the same inputs.")
        ] = False,
        only: Phases = None,
        skip: Phases = None,
        skip_check: SkipChecks = None,
        accept_new_host_keys: AcceptNewHostKeys = False,
        prune_all: PruneAll = False,
        kubeconfig: KubeconfigOpt = None,
        state_dir: StateDir = None,
        timeout: Annotated[
            float, typer.Option("--timeout", help="Seconds to wait for each component.")
        ] = 600,
    ) -> Result:
        from kvinstall.phases.context import Options
        from kvinstall.session import confirm, open_session, pick_display

        options = Options(
            resume=resume,
            only=frozenset(only or ()),
            skip=frozenset(skip or ()),
            skip_checks=frozenset(skip_check or ()),
            accept_new_host_keys=accept_new_host_keys,
            prune_protected=prune_all,
            kubeconfig=kubeconfig,
            ready_timeout=timeout,
        )
        session = open_session(file, state_override=state_dir, for_apply=True)
        ctx = session.start_run(options, command="apply", display=pick_display(out is Format.json))

        def show_and_confirm(plan: Plan) -> None:
            from kvinstall.plan.text import render_text

            if out is Format.json:
                ctx.events.emit("plan", plan=plan.to_dict())
            elif not yes:
                echo(render_text(plan.to_dict()))
            confirm("Apply this plan?", yes=yes)

        try:
            session.apply(ctx, show_and_confirm)  # the credentials file path is in the events
        finally:
            ctx.events.close()
        return Result()  # everything was said by the events
