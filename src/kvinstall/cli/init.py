"""`kvinstall init`: write a configuration file, by questions or (`--defaults`) without any."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.options import OutputOrPath, format_and_path
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command("init", help="Write a configuration file with an interactive wizard (or --defaults).")
    def init_cmd(
        out_file: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="File to write (default kvinstall.yaml; older spelling: -o FILE).",
                show_default=False,
            ),
        ] = None,
        output: OutputOrPath = None,
        from_file: Annotated[
            Path | None,
            typer.Option("--from", help="Edit this existing configuration (its values as defaults)."),
        ] = None,
        defaults: Annotated[
            bool, typer.Option("--defaults", help="Write a valid starter file without asking anything.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite the output file if it exists.")
        ] = False,
    ) -> Result:
        # questionary and paramiko load only here, so `kvinstall --help` stays fast.
        from kvinstall import wizard
        from kvinstall.catalog import load_catalog
        from kvinstall.config.writer import to_yaml
        from kvinstall.errors import DeclinedError, Interrupted, LocalIOError, UsageError
        from kvinstall.fsutil import write_atomic

        fmt, path = format_and_path(output, out_file, what="output file", required=False)
        out = path or Path("kvinstall.yaml")

        def refuse_overwrite() -> None:
            if out.exists() and not force and (from_file is None or out.resolve() != from_file.resolve()):
                raise LocalIOError(
                    "exists already; nothing written",
                    where=str(out),
                    hint="pass --force to overwrite it, or --out to write elsewhere",
                )

        if defaults and from_file is not None:
            raise UsageError("--defaults and --from exclude each other")
        refuse_overwrite()
        catalog = load_catalog()
        if defaults:
            config = wizard.starter_config(catalog)
            text = wizard.starter_yaml(catalog)
        else:
            if not sys.stdin.isatty():
                raise DeclinedError(
                    "the wizard asks questions and needs a terminal",
                    hint="use --defaults for a starter file without questions",
                )
            initial = None
            if from_file is not None:
                from kvinstall.config.loader import load_file

                initial = load_file(from_file, catalog).config
            try:
                config = wizard.run(wizard.Ctx(ui=wizard.QuestionaryUI(), catalog=catalog), initial)
            except KeyboardInterrupt as exc:
                # Said here: typer turns a KeyboardInterrupt into a bare exit 130 without a word.
                raise Interrupted("interrupted; nothing written", where=str(out)) from exc
            text = to_yaml(config, header=wizard.STARTER_HEADER)
            refuse_overwrite()  # the file may have appeared while the questions ran
        write_atomic(out, text)
        summary = f"{len(config.control_plane)} control plane, {len(config.workers)} worker(s)"
        return Result(
            data={
                "file": str(out),
                "cluster": config.name,
                "controlPlane": len(config.control_plane),
                "workers": len(config.workers),
            },
            notes=[
                f"wrote {out}: cluster {config.name}, {summary}; check it with `kvinstall validate -f {out}`"
            ]
            if fmt is Format.text
            else [],
        )
