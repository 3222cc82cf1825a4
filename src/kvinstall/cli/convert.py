"""`kvinstall convert -f KUBEV.yaml -o OUT.yaml`: write the kvinstall equivalent of a KubeV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile


def register(app: typer.Typer) -> None:
    @app.command(
        "convert",
        help="Convert a Kubermatic Virtualization (KubeVCluster) file to a kvinstall file. Its clear-text "
        "secrets go to 0600 files next to the output, which reads them from there.",
    )
    def convert_cmd(
        file: ConfigFile,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here (default: stdout).")] = None,
        drop_unsupported: Annotated[
            bool,
            typer.Option(
                "--drop-unsupported",
                help="Leave out what kvinstall does not provide (each named) instead of refusing the file.",
            ),
        ] = False,
    ) -> None:
        from kvinstall.config.convert import convert_file

        result = convert_file(file, out, drop_unsupported=drop_unsupported)
        from kvinstall.config.kubev import INLINE_SECRET

        for w in result.warnings:
            if w.code != INLINE_SECRET:  # each is written to a file, as said below
                output.err(str(w))
        for s in result.secrets:
            output.err(
                f"wrote the secret of {s.source} to {s.path} (mode 0600); the output reads it from there"
            )
        if out is None:
            output.echo(result.text.rstrip("\n"))
        else:
            from kvinstall.fsutil import write_atomic

            write_atomic(out, result.text)
            output.err(f"wrote {out}")
