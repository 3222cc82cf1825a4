"""`kvinstall reset -f FILE`: remove workspaces and components in reverse order (optionally the cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, OutputOpt
from kvinstall.cli.output import Output


def register(app: typer.Typer) -> None:
    @app.command(
        "reset", help="Remove workspaces and components (reverse order, each safely); --kubeone too."
    )
    def reset_cmd(
        file: ConfigFile,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
        kubeone: Annotated[bool, typer.Option("--kubeone", help="Also `kubeone reset` the cluster.")] = False,
        out: OutputOpt = Output.text,
        kubeconfig: Annotated[
            Path | None, typer.Option("--kubeconfig", help="Use this cluster's kubeconfig.")
        ] = None,
        state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Local state directory.")] = None,
    ) -> None:
        from kvinstall.run.apply import run_reset
        from kvinstall.run.context import Options
        from kvinstall.run.session import confirm, open_session, pick_display

        output.set_mode(out)
        ctx = open_session(
            file,
            Options(kubeconfig=kubeconfig, prune_protected=True),
            command="reset",
            display=pick_display(out is Output.json),
            state_override=state_dir,
        )
        try:
            run_reset(ctx, confirm=lambda q: confirm(q, yes=yes), kubeone_reset=kubeone)
        finally:
            ctx.events.close()
