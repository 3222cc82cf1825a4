"""`kvinstall schema`: the JSON Schema of the configuration (for editors and CI)."""

from __future__ import annotations

import json

import typer

from kvinstall.cli.output import Result


def register(app: typer.Typer) -> None:
    @app.command("schema", help="Print the JSON Schema of the configuration file.")
    def schema_cmd() -> Result:
        from kvinstall.config.schema import json_schema

        schema = json_schema()
        return Result(data=schema, text=json.dumps(schema, indent=2))  # JSON either way
