"""`kvinstall reset -f FILE`: remove workspaces and components in reverse order (optionally the cluster)."""

from __future__ import annotations

from typing import Annotated

import typer

from kvinstall.cli.options import ConfigFile, KubeconfigOpt, OutputOpt, StateDir, Yes
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command(
        "reset", help="Remove workspaces and components (reverse order, each safely); --kubeone too."
    )
    def reset_cmd(
        file: ConfigFile,
        yes: Yes = False,
        kubeone: Annotated[bool, typer.Option("--kubeone", help="Also `kubeone reset` the cluster.")] = False,
        out: OutputOpt = Format.text,
        kubeconfig: KubeconfigOpt = None,
        state_dir: StateDir = None,
    ) -> Result:
        from kvinstall.phases.apply import run_reset
        from kvinstall.phases.context import Options
        from kvinstall.session import confirm, open_session, pick_display

        session = open_session(file, state_override=state_dir)
        ctx = session.start_run(
            Options(kubeconfig=kubeconfig, prune_protected=True),
            command="reset",
            display=pick_display(out is Format.json),
        )
        try:
            run_reset(ctx, confirm=lambda q: confirm(q, yes=yes), kubeone_reset=kubeone)
        finally:
            ctx.events.close()
        return Result()  # everything was said by the events
