"""`kvinstall validate -f FILE`: load and check a configuration, reporting every problem at once."""

from __future__ import annotations

import typer

from kvinstall.cli.options import ConfigFile, OutputOpt
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command("validate", help="Check a configuration file: YAML, fields and cross-field rules.")
    def validate_cmd(file: ConfigFile, out: OutputOpt = Format.text) -> Result:
        from kvinstall.config.loader import load_file

        loaded = load_file(file)
        cfg = loaded.config
        note = f" (converted from {loaded.converted_from})" if loaded.converted_from else ""
        return Result(
            data={
                "valid": True,
                "file": str(file),
                "convertedFrom": loaded.converted_from,
                "warnings": [w.to_dict() for w in loaded.warnings],
            },
            text=(
                f"{file}: valid{note}: cluster {cfg.name}, {len(cfg.control_plane)} control plane, "
                f"{len(cfg.workers)} worker(s), {len(cfg.workspaces)} workspace(s)"
                + (f", {len(loaded.warnings)} warning(s)" if loaded.warnings else "")
            ),
            notes=[str(w) for w in loaded.warnings] if out is Format.text else [],
        )
