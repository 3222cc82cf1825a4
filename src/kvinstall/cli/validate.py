"""`kvinstall validate -f FILE`: load and check a configuration, reporting every problem at once."""

from __future__ import annotations

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, OutputOpt
from kvinstall.cli.output import Output


def register(app: typer.Typer) -> None:
    @app.command("validate", help="Check a configuration file: YAML, fields and cross-field rules.")
    def validate_cmd(file: ConfigFile, out: OutputOpt = Output.text) -> None:
        from kvinstall.config.loader import load_file

        output.set_mode(out)
        loaded = load_file(file)
        if out is Output.json:
            output.emit_json(
                {
                    "valid": True,
                    "file": str(file),
                    "convertedFrom": loaded.converted_from,
                    "warnings": [w.to_dict() for w in loaded.warnings],
                }
            )
            return
        for w in loaded.warnings:
            output.err(str(w))
        note = f" (converted from {loaded.converted_from})" if loaded.converted_from else ""
        cfg = loaded.config
        output.echo(
            f"{file}: valid{note}: cluster {cfg.name}, {len(cfg.control_plane)} control plane, "
            f"{len(cfg.workers)} worker(s), {len(cfg.workspaces)} workspace(s)"
            + (f", {len(loaded.warnings)} warning(s)" if loaded.warnings else "")
        )
