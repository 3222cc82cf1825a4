"""`kvinstall init` as a command (subprocess, no terminal): --defaults, overwrite rules, usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kvinstall import wizard
from kvinstall.catalog import load_catalog
from kvinstall.config.loader import load_file

pytestmark = pytest.mark.timeout(120)

KVINSTALL = str(Path(sys.executable).parent / "kvinstall")


def kv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KVINSTALL, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_defaults_writes_a_valid_commented_starter(tmp_path: Path) -> None:
    r = kv("init", "--defaults", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "kvinstall.yaml"
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "# documentation address: put the control-plane machine here" in text
    assert "# More settings" in text
    assert load_file(out).config == wizard.starter_config(load_catalog())
    v = kv("validate", "-f", str(out), cwd=tmp_path)
    assert v.returncode == 0 and "1 control plane, 2 worker(s)" in v.stdout


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "mine.yaml"
    out.write_text("precious: true\n")
    r = kv("init", "--defaults", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 13
    assert "exists already" in r.stderr and "--force" in r.stderr
    assert out.read_text() == "precious: true\n"
    r = kv("init", "--defaults", "-o", str(out), "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_file(out).config.name == "my-cluster"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]  # no temp file left


def test_wizard_needs_a_terminal(tmp_path: Path) -> None:
    r = kv("init", cwd=tmp_path)
    assert r.returncode == 4
    assert "needs a terminal" in r.stderr and "--defaults" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_defaults_and_from_exclude_each_other(tmp_path: Path) -> None:
    src = tmp_path / "a.yaml"
    src.write_text(wizard.starter_yaml(load_catalog()))
    r = kv("init", "--defaults", "--from", str(src), "-o", str(tmp_path / "b.yaml"), cwd=tmp_path)
    assert r.returncode == 64
    assert not (tmp_path / "b.yaml").exists()


def test_help_does_not_import_questionary_or_paramiko(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['kvinstall', '--help']\n"
        "from kvinstall.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'questionary', 'paramiko', 'prompt_toolkit'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert "init" in r.stdout
