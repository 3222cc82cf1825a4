"""`kvinstall status -f FILE`: nodes, components (version, ready), workspaces, drift summary."""

from __future__ import annotations

from typing import Any

import typer

from kvinstall.cli.options import ConfigFile, KubeconfigOpt, OutputOpt, StateDir
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command("status", help="Show nodes, components (version, ready), workspaces and drift.")
    def status_cmd(
        file: ConfigFile,
        out: OutputOpt = Format.text,
        kubeconfig: KubeconfigOpt = None,
        state_dir: StateDir = None,
    ) -> Result:
        from kvinstall.phases.context import Options
        from kvinstall.plan.status import collect_status
        from kvinstall.session import open_session

        session = open_session(file, state_override=state_dir)
        ctx = session.context(Options(kubeconfig=kubeconfig))
        status = collect_status(ctx.kube(), ctx.desired, [w.name for w in session.config.workspaces])
        return Result(data=status, text=status_text(status))


def status_text(status: dict[str, Any]) -> str:
    lines = [f"Cluster {status['cluster']}", "Nodes:"]
    for n in status["nodes"]:
        lines.append(
            f"  {n['name']:<24} {'Ready' if n['ready'] else 'NotReady':<9} {n.get('version') or '-'}"
        )
    lines.append("Components:")
    for c in status["components"]:
        state = "ready" if c["ready"] else f"not ready: {c['why']}"
        drift = f", {c['drift']} drifted" if c["drift"] else ""
        lines.append(f"  {c['title']:<24} {c['version']:<10} {state}{drift}")
        lines += [f"    note: {n}" for n in c.get("notes", [])]
    lines.append("Workspaces: " + (", ".join(status["workspaces"]) or "none"))
    lines.append(
        f"Drift: {status['driftTotal']} object(s) differ from the file"
        + (" (run `kvinstall apply` to repair)" if status["driftTotal"] else "")
    )
    return "\n".join(lines)
