"""`kvinstall plan -f FILE`: what apply would do, without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, OutputOpt, StateDir
from kvinstall.cli.output import Output


def register(app: typer.Typer) -> None:
    @app.command("plan", help="Show what apply would change: hosts, KubeOne, components, workspaces.")
    def plan_cmd(
        file: ConfigFile,
        out: OutputOpt = Output.text,
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
        show_unchanged: Annotated[
            bool, typer.Option("--show-unchanged", help="List unchanged objects too.")
        ] = False,
        show_manifest: Annotated[
            bool, typer.Option("--show-manifest/--hide-manifest", help="Print the KubeOne manifest.")
        ] = True,
    ) -> None:
        from kvinstall.plan.make import make_plan

        output.set_mode(out)
        result = make_plan(file, kubeconfig=kubeconfig, state_override=state_dir, refresh_hosts=refresh_hosts)
        data = result.plan.to_dict()
        if out is Output.json:
            data["kubeoneManifest"] = result.desired.kubeone_manifest
            output.emit_json(data)
        else:
            from kvinstall.kubeone.manifest import to_yaml
            from kvinstall.plan.text import render_text

            for w in result.warnings:
                output.err(str(w))
            manifest = to_yaml(result.desired.kubeone_manifest) if show_manifest else None
            output.echo(render_text(data, show_unchanged=show_unchanged, manifest=manifest))
        if detailed_exitcode and result.plan.has_changes:
            raise typer.Exit(2)
