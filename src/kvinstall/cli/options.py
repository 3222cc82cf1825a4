"""Options shared by several commands, declared once.

One convention for `-o`: it is `--output FORMAT` (text or json) on every command. Where a command
writes a file or a directory, that path is `--out PATH`. The older spellings still work and are
documented as aliases: `render -o DIR` and `--out-dir DIR`, `mirror create -o FILE`, `init -o FILE`,
`convert -o FILE` (an `-o` value other than text or json is taken as the path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli.output import Format, Invocation
from kvinstall.errors import UsageError


def _remember(ctx: typer.Context, value: str | list[str] | None) -> str | list[str] | None:
    """The chosen format goes to the invocation, so that errors come out in it too."""
    inv = ctx.find_root().obj
    for v in [value] if isinstance(value, str) else value or []:
        if isinstance(inv, Invocation) and v in tuple(Format):
            inv.format = Format(v)
    return value


ConfigFile = Annotated[Path, typer.Option("--file", "-f", help="Configuration file.", show_default=False)]
OutputOpt = Annotated[
    Format, typer.Option("--output", "-o", help="text for people, json for machines.", callback=_remember)
]
# Commands that write a path (--out): `-o` is the format, and the path where `-o PATH` was the old
# spelling. Repeatable, so that the old `-o PATH --output json` still means both.
OutputOrPath = Annotated[
    list[str] | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="text for people, json for machines. (Older spelling: `-o PATH` for --out PATH.)",
        callback=_remember,
    ),
]
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
Phases = Annotated[
    list[str] | None, typer.Option(help="Phase names (repeatable), e.g. preflight, kubeone, kubevirt.")
]
PruneAll = Annotated[
    bool, typer.Option("--prune-all", help="Also prune CRDs and namespaces that left the configuration.")
]


def format_and_path(
    output: list[str] | None, out: Path | None, *, what: str, required: bool = True
) -> tuple[Format, Path | None]:
    """(format, path) from `-o/--output` (repeatable) and `--out`, accepting the old spelling `-o PATH`."""
    fmt = Format.text
    paths = [] if out is None else [out]
    for value in output or []:
        if value in tuple(Format):
            fmt = Format(value)
        elif Path(value) not in paths:
            paths.append(Path(value))
    if len(paths) > 1:
        raise UsageError(f"more than one {what}: {', '.join(map(str, paths))}")
    if not paths and required:
        raise UsageError(f"no {what}: pass --out PATH")
    return fmt, (paths[0] if paths else None)
