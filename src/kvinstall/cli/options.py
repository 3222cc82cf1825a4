"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.output import Output

ConfigFile = Annotated[Path, typer.Option("--file", "-f", help="Configuration file.", show_default=False)]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for machines.")]
