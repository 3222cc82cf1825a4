"""The corpus of broken configs: each is rejected with the right location and message (exit code 3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvinstall.config.loader import load_file
from kvinstall.errors import ConfigError, exit_code

CORPUS = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (?P<line>\d+)(?::(?P<col>\d+))? (?P<text>.+)$")


def _expectation(path: Path) -> tuple[str, str]:
    m = _EXPECT.match(path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '# expect: LINE[:COL] TEXT'"
    where = f"{path}:{m['line']}:" + (f"{m['col']}:" if m["col"] else "")
    return where, m["text"]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_config_is_rejected_with_location(path: Path) -> None:
    where, text = _expectation(path)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert info.value.exit_code == exit_code("config") == 3
    rendered = [str(p) for p in info.value.problems]
    # The message parts of the expectation must all appear, in the problem at the expected place.
    parts = [s.strip() for s in text.split(": ", 1)] if ": " in text else [text]
    matches = [r for r in rendered if r.startswith(where) and all(part in r for part in parts)]
    assert matches, f"expected {where} ... {text!r}, got:\n" + "\n".join(rendered)
