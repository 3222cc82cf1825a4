"""`kvinstall convert -f KUBEV.yaml -o OUT.yaml`: write the kvinstall equivalent of a KubeV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile


def register(app: typer.Typer) -> None:
    @app.command(
        "convert", help="Convert a Kubermatic Virtualization (KubeVCluster) file to a kvinstall file."
    )
    def convert_cmd(
        file: ConfigFile,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here (default: stdout).")] = None,
    ) -> None:
        from kvinstall.config.convert import convert_file

        text, dropped = convert_file(file)
        for p in dropped:
            output.err(f"dropped: {p}")
        if out is None:
            output.echo(text.rstrip("\n"))
        else:
            from kvinstall.fsutil import write_atomic

            write_atomic(out, text)
            output.err(
                f"wrote {out}" + (f" ({len(dropped)} field(s) dropped, listed above)" if dropped else "")
            )
