"""`kvinstall plan -f FILE`: what apply would do, without changing anything (apply's phases, walked dry)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.options import ConfigFile, OutputOpt, Phases, PruneAll, StateDir
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command(
        "plan", help="Show what apply would change, phase by phase: hosts, KubeOne, components, workspaces."
    )
    def plan_cmd(
        file: ConfigFile,
        out: OutputOpt = Format.text,
        kubeconfig: Annotated[
            Path | None,
            typer.Option("--kubeconfig", help="Observe this cluster (default: the state's kubeconfig)."),
        ] = None,
        state_dir: StateDir = None,
        detailed_exitcode: Annotated[
            bool, typer.Option("--detailed-exitcode", help="Exit 2 when the plan has changes, 0 when none.")
        ] = False,
        refresh_hosts: Annotated[
            bool,
            typer.Option("--refresh-hosts", help="Contact the hosts: facts, checks, untrusted host keys."),
        ] = False,
        only: Phases = None,
        skip: Phases = None,
        prune_all: PruneAll = False,
        show_unchanged: Annotated[
            bool, typer.Option("--show-unchanged", help="List unchanged objects too.")
        ] = False,
        show_manifest: Annotated[
            bool, typer.Option("--show-manifest/--hide-manifest", help="Print the KubeOne manifest.")
        ] = True,
    ) -> Result:
        from kvinstall.phases.context import Options
        from kvinstall.session import open_session

        session = open_session(file, state_override=state_dir)
        options = Options(
            only=frozenset(only or ()),
            skip=frozenset(skip or ()),
            prune_protected=prune_all,
            kubeconfig=kubeconfig,
        )
        ctx, plan = session.plan(options, observe_hosts=refresh_hosts)
        data = plan.to_dict()
        exit_code = 2 if detailed_exitcode and plan.has_changes else 0
        if out is Format.json:
            data["kubeoneManifest"] = ctx.desired.kubeone_manifest
            return Result(data=data, exit_code=exit_code)
        from kvinstall.kubeone.manifest import to_yaml
        from kvinstall.plan.text import render_text

        manifest = to_yaml(ctx.desired.kubeone_manifest) if show_manifest else None
        # The warnings are part of the text (once), as of the JSON.
        return Result(
            text=render_text(data, show_unchanged=show_unchanged, manifest=manifest), exit_code=exit_code
        )
