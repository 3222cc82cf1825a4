"""How results reach the user: rich text for people (no colour without a TTY or with NO_COLOR),
JSON for machines. Commands call these; they hold no logic of their own."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Any


class Output(StrEnum):
    text = "text"
    json = "json"


_mode = Output.text


def set_mode(mode: Output) -> None:
    global _mode
    _mode = mode


def mode() -> Output:
    return _mode


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


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def emit_json_line(data: Any) -> None:
    """One JSON object on one line: what may follow a JSON Lines event stream (`apply --output json`)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
