"""`kvinstall render -f FILE --out DIR`: write the KubeOne manifest and every rendered object as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.options import ConfigFile, OutputOrPath, StateDir, format_and_path
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command(
        "render", help="Write the KubeOne manifest and every rendered object to a directory (GitOps)."
    )
    def render_cmd(
        file: ConfigFile,
        out_dir: Annotated[
            Path | None,
            typer.Option(
                "--out",
                "--out-dir",
                help="Directory to write into (older spelling: -o DIR).",
                show_default=False,
            ),
        ] = None,
        output: OutputOrPath = None,
        state_dir: StateDir = None,
        include_secrets: Annotated[
            bool, typer.Option("--include-secrets", help="Write Secret data (files mode 0600).")
        ] = False,
    ) -> Result:
        from kvinstall.render.export import write_export
        from kvinstall.session import open_session

        fmt, directory = format_and_path(output, out_dir, what="output directory")
        assert directory is not None
        session = open_session(file, state_override=state_dir)
        desired = session.desire(session.source(fetch=False))
        written = write_export(desired, directory, include_secrets=include_secrets)
        missing = [a.describe() for c in desired.components for a in c.unavailable]
        # e.g. Dex's generated admin password: a placeholder here, made by apply
        notes = [f"note: {c.title}: {n}" for c in desired.components for n in c.notes]
        return Result(
            data={"directory": str(directory), "files": [str(p) for p in written], "notCached": missing},
            text="\n".join(
                [f"wrote {len(written)} files to {directory}"]
                + [
                    f"  not rendered (not in the local cache; `kvinstall apply` fetches it): {m}"
                    for m in missing
                ]
            ),
            notes=(session.warnings + notes) if fmt is Format.text else [],
        )
