"""`kvinstall status -f FILE`: nodes, components (version, ready), workspaces, drift summary."""

from __future__ import annotations

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, KubeconfigOpt, OutputOpt, StateDir
from kvinstall.cli.output import Output


def register(app: typer.Typer) -> None:
    @app.command("status", help="Show nodes, components (version, ready), workspaces and drift.")
    def status_cmd(
        file: ConfigFile,
        out: OutputOpt = Output.text,
        kubeconfig: KubeconfigOpt = None,
        state_dir: StateDir = None,
    ) -> None:
        from kvinstall.components.artifacts import NoFetch
        from kvinstall.phases.context import Options
        from kvinstall.plan.status import collect_status
        from kvinstall.session import open_session

        output.set_mode(out)
        ctx = open_session(
            file,
            Options(kubeconfig=kubeconfig),
            command="status",
            display="none",
            state_override=state_dir,
            source=NoFetch(),
        )
        try:
            status = collect_status(ctx)
        finally:
            ctx.events.close()
        if out is Output.json:
            output.emit_json(status)
            return
        output.echo(f"Cluster {status['cluster']}")
        output.echo("Nodes:")
        for n in status["nodes"]:
            output.echo(
                f"  {n['name']:<24} {'Ready' if n['ready'] else 'NotReady':<9} {n.get('version') or '-'}"
            )
        output.echo("Components:")
        for c in status["components"]:
            state = "ready" if c["ready"] else f"not ready: {c['why']}"
            drift = f", {c['drift']} drifted" if c["drift"] else ""
            output.echo(f"  {c['title']:<24} {c['version']:<10} {state}{drift}")
        output.echo("Workspaces: " + (", ".join(status["workspaces"]) or "none"))
        output.echo(
            f"Drift: {status['driftTotal']} object(s) differ from the file"
            + (" (run `kvinstall apply` to repair)" if status["driftTotal"] else "")
        )
