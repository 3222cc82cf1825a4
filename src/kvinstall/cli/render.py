"""`kvinstall render -f FILE -o DIR`: write the KubeOne manifest and every rendered object as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, StateDir
from kvinstall.cli.output import Output


def register(app: typer.Typer) -> None:
    @app.command(
        "render", help="Write the KubeOne manifest and every rendered object to a directory (GitOps)."
    )
    def render_cmd(
        file: ConfigFile,
        out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Directory to write into.")],
        out: Annotated[Output, typer.Option("--output", help="text or json.")] = Output.text,
        state_dir: StateDir = None,
        include_secrets: Annotated[
            bool, typer.Option("--include-secrets", help="Write Secret data (files mode 0600).")
        ] = False,
    ) -> None:
        from kvinstall.catalog import load_catalog
        from kvinstall.components import default_components
        from kvinstall.components.artifacts import NoFetch
        from kvinstall.config.loader import load_file
        from kvinstall.plan.desired import desire
        from kvinstall.render.export import write_export
        from kvinstall.state import state_dir as resolve_state

        output.set_mode(out)
        loaded = load_file(file)
        state = resolve_state(file, loaded.config.name, state_dir)
        desired = desire(loaded.config, load_catalog(), NoFetch(), components=default_components(state))
        written = write_export(desired, out_dir, include_secrets=include_secrets)
        missing = [a.describe() for c in desired.components for a in c.unavailable]
        if out is Output.json:
            output.emit_json(
                {"directory": str(out_dir), "files": [str(p) for p in written], "notCached": missing}
            )
            return
        for w in loaded.warnings:
            output.err(str(w))
        output.echo(f"wrote {len(written)} files to {out_dir}")
        for m in missing:
            output.echo(f"  not rendered (not in the local cache; `kvinstall apply` fetches it): {m}")
