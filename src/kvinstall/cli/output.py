"""How results reach the user. Every command returns a `Result`; `show` prints it, as text for people
(rich, no colour without a TTY or with NO_COLOR) or as JSON for machines, and errors are reported the
same way. The format a command was asked for lives in the invocation (`Invocation`, click's context
object), not in a module global."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kvinstall.errors import KvError


class Format(StrEnum):
    text = "text"
    json = "json"


@dataclass
class Invocation:
    """One run of the command line: the output format its `-o/--output` chose."""

    format: Format = Format.text
    # The command already wrote its JSON (a document, or the JSON Lines of apply): an error that
    # follows must keep stdout parseable.
    json_written: bool = False


@dataclass
class Result:
    """What a command returns.

    data: the JSON form (None: nothing to print as JSON, e.g. apply streamed its events already);
    text: the text form; table: a rich renderable printed before `text`; notes: lines for stderr in
    both forms; exit_code: the process's exit code when all went well (plan --detailed-exitcode: 2);
    error: raised once the result is shown (preflight: the report, then the failure)."""

    data: Any = None
    text: str | None = None
    table: Any = None
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0
    error: KvError | None = None


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR")) or not (sys.stderr if stderr else sys.stdout).isatty()
    return Console(
        stderr=stderr,
        no_color=no_color,
        highlight=False,
        soft_wrap=True,
        force_terminal=None if not no_color else False,
    )


def show(result: Result, inv: Invocation) -> int:
    """Print a result in the invocation's format; returns the exit code."""
    if emit(result, inv.format):
        inv.json_written = True
    if result.error is not None:
        raise result.error
    return result.exit_code


def emit(result: Result, fmt: Format) -> bool:
    """Print a result now (also while a command still runs, e.g. `mirror serve --foreground` once it
    serves); True when it wrote JSON."""
    for note in result.notes:
        err(note)
    if fmt is Format.json:
        if result.data is None:
            return False
        sys.stdout.write(json.dumps(result.data, indent=2, default=str) + "\n")
        sys.stdout.flush()
        return True
    if result.table is not None:
        console().print(result.table)
    if result.text is not None:
        sys.stdout.write(result.text + "\n")
        sys.stdout.flush()
    return False


def report_error(exc: KvError, inv: Invocation) -> None:
    """An error in the invocation's format. JSON: one line on stdout (after apply's JSON Lines the stream
    stays JSON Lines), or, when a JSON document is already there (preflight's report), text on stderr."""
    if inv.format is Format.json and not inv.json_written:
        data = exc.to_dict()
        problems = getattr(exc, "problems", None)
        if problems is not None:
            data["problems"] = [p.to_dict() for p in problems]
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        err(f"error: {exc}" if not getattr(exc, "problems", None) else str(exc))


def progress(label: str) -> Callable[[int, int], None]:
    """Transfer progress on stderr (bytes done of total), at most once a second."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if now - last[0] >= 1.0 or done == total:
            last[0] = now
            pct = 100.0 * done / total if total else 100.0
            sys.stderr.write(f"{label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({pct:.0f}%)\n")

    return report


def echo(text: str) -> None:
    """Text shown while a command still works (apply's plan before its question)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
