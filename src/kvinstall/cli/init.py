"""`kvinstall init`: write a configuration file, by questions or (`--defaults`) without any."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output


def register(app: typer.Typer) -> None:
    @app.command("init", help="Write a configuration file with an interactive wizard (or --defaults).")
    def init_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")] = Path("kvinstall.yaml"),
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
    ) -> None:
        # questionary and paramiko load only here, so `kvinstall --help` stays fast.
        from kvinstall import wizard
        from kvinstall.catalog import load_catalog
        from kvinstall.config.writer import to_yaml
        from kvinstall.errors import DeclinedError, Interrupted, LocalIOError, UsageError
        from kvinstall.fsutil import write_atomic

        def refuse_overwrite() -> None:
            if out.exists() and not force and (from_file is None or out.resolve() != from_file.resolve()):
                raise LocalIOError(
                    "exists already; nothing written",
                    where=str(out),
                    hint="pass --force to overwrite it, or -o to write elsewhere",
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
            except KeyboardInterrupt:
                # Said here: typer turns a KeyboardInterrupt into a bare exit 130 without a word.
                raise Interrupted("interrupted; nothing written", where=str(out)) from None
            text = to_yaml(config, header=wizard.STARTER_HEADER)
            refuse_overwrite()  # the file may have appeared while the questions ran
        write_atomic(out, text)
        output.err(
            f"wrote {out}: cluster {config.name}, {len(config.control_plane)} control plane, "
            f"{len(config.workers)} worker(s); check it with `kvinstall validate -f {out}`"
        )
