"""A problem found in a configuration: where (file:line:col and field path), what, and a hint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
Loc = tuple[str | int, ...]


def format_path(loc: Loc) -> str:
    """('hosts', 0, 'address') -> 'hosts[0].address'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_path(path: str) -> Loc:
    """'hosts[0].address' -> ('hosts', 0, 'address'): the inverse of format_path."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    return tuple(int(p) if p.isdigit() else p for p in parts if p)


@dataclass(frozen=True)
class Problem:
    message: str
    loc: Loc = ()
    severity: Severity = "error"
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    code: str = field(default="invalid")

    @property
    def path(self) -> str:
        return format_path(self.loc)

    def where(self) -> str:
        parts = [self.file or "<config>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        text = f"{self.where()}: {prefix}{self.path}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }
