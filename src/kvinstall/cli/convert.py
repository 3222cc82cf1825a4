"""`kvinstall convert -f KUBEV.yaml --out OUT.yaml`: write the kvinstall equivalent of a KubeV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kvinstall.cli.options import ConfigFile, OutputOrPath, format_and_path
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command(
        "convert",
        help="Convert a Kubermatic Virtualization (KubeVCluster) file to a kvinstall file. Its clear-text "
        "secrets go to 0600 files next to the output, which reads them from there.",
    )
    def convert_cmd(
        file: ConfigFile,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", help="Write here (default: stdout; older spelling: -o FILE).", show_default=False
            ),
        ] = None,
        output: OutputOrPath = None,
        drop_unsupported: Annotated[
            bool,
            typer.Option(
                "--drop-unsupported",
                help="Leave out what kvinstall does not provide (each named) instead of refusing the file.",
            ),
        ] = False,
    ) -> Result:
        from kvinstall.config.convert import convert_file
        from kvinstall.config.kubev import INLINE_SECRET

        fmt, path = format_and_path(output, out, what="output file", required=False)
        result = convert_file(file, path, drop_unsupported=drop_unsupported)
        # Inline secrets are each written to a file, as the notes say.
        notes = [str(w) for w in result.warnings if w.code != INLINE_SECRET]
        notes += [
            f"wrote the secret of {s.source} to {s.path} (mode 0600); the output reads it from there"
            for s in result.secrets
        ]
        data: dict[str, Any] = {
            "warnings": [w.to_dict() for w in result.warnings],
            "secrets": [{"field": s.source, "file": str(s.path)} for s in result.secrets],
        }
        if path is None:
            return Result(data={**data, "yaml": result.text}, text=result.text.rstrip("\n"), notes=notes)
        from kvinstall.fsutil import write_atomic

        write_atomic(path, result.text)
        if fmt is Format.text:
            notes.append(f"wrote {path}")
        return Result(data={**data, "file": str(path)}, notes=notes)
