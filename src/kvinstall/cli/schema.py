"""`kvinstall schema`: the JSON Schema of the configuration (for editors and CI)."""

from __future__ import annotations

import typer

from kvinstall.cli import output


def register(app: typer.Typer) -> None:
    @app.command("schema", help="Print the JSON Schema of the configuration file.")
    def schema_cmd() -> None:
        from kvinstall.config.schema import json_schema

        output.emit_json(json_schema())
