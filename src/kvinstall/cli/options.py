"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.output import Output

ConfigFile = Annotated[Path, typer.Option("--file", "-f", help="Configuration file.", show_default=False)]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for machines.")]
StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="Local state directory (default .kvinstall/<cluster>).")
]
KubeconfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", help="Use this cluster's kubeconfig.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (CI).")]
AcceptNewHostKeys = Annotated[
    bool, typer.Option("--accept-new-host-keys", help="Trust and record unknown (never changed) host keys.")
]
SkipChecks = Annotated[
    list[str] | None,
    typer.Option("--skip-check", help="Skip a preflight check by id (repeatable); shown as skipped."),
]
