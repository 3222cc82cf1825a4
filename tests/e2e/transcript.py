"""The README's `apply` transcript, made from a real run of the e2e world (tests/e2e/test_apply.py).

The test renders its runs' events as the plain lines a CI log shows, shortens them by fixed rules, and
compares them with the README's transcript blocks. `KVINSTALL_WRITE_README=1` writes them into the README
instead (after a change of the output or of what apply does). Durations, addresses, temporary paths and
timestamps differ from run to run: they are compared as placeholders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
WIDTH = 116


def _cut(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def shorten_first(lines: list[str]) -> list[str]:
    """A phase's first two detail lines and its last, `...` for the rest; one warning of a kind."""
    out: list[str] = []
    details: list[str] = []

    def flush() -> None:
        out.extend(details if len(details) <= 3 else [*details[:2], "    ...", details[-1]])
        details.clear()

    for line in lines:
        if line.startswith("    "):
            details.append(line)
            continue
        flush()
        if line.startswith("warning: ") and out and (out[-1].startswith("warning: ") or out[-1] == "..."):
            if out[-1] != "...":
                out.append("...")  # a run of warnings: the first stands for them
            continue
        out.append(line)
    flush()
    return [_cut(x) for x in out]


def shorten_again(lines: list[str]) -> list[str]:
    """The second run: the KubeOne skip, the first two phase results, `...`, the last one."""
    skips = [x for x in lines if x.startswith("--- Kubernetes cluster")]
    ends = [x for x in lines if x.startswith("<== ")]
    return [_cut(x) for x in [*skips, *ends[:2], "...", ends[-1]]]


def anonymise(text: str, root: Path) -> str:
    """What the README shows of one run's temporary paths."""
    return text.replace(str(root), "...")


def _comparable(text: str) -> str:
    text = re.sub(r"\d+\.\d+s\b", "<t>", text)
    text = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b", "<ip>", text)
    return re.sub(r"-\d{8}T\d+Z\.log", "-<stamp>.log", text)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- BEGIN transcript: {name} -->\n```\n)(.*?)(```\n<!-- END transcript -->)", re.S)


def check_or_write(name: str, lines: list[str]) -> None:
    """Compare the README block `name` with these lines, or (KVINSTALL_WRITE_README=1) write them there."""
    text = README.read_text()
    pattern = _block(name)
    match = pattern.search(text)
    assert match is not None, f"README.md has no transcript block {name!r}"
    body = "\n".join(lines) + "\n"
    if os.environ.get("KVINSTALL_WRITE_README") == "1":
        README.write_text(pattern.sub(lambda m: m.group(1) + body + m.group(3), text))
        return
    assert _comparable(match.group(2)) == _comparable(body), (
        f"README.md's {name!r} transcript no longer matches a real run; regenerate it with "
        "KVINSTALL_WRITE_README=1 python -m pytest tests/e2e/test_apply.py\n" + body
    )
