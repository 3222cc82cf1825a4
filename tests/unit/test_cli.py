"""The CLI as users run it (subprocess), for commands that need no servers.

Commands that load an example run inside an empty network namespace (`unshare -n`): the examples
name private addresses that do not exist here, and nothing may try to reach them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kvinstall.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]


def kv(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["unshare", "-n", sys.executable, "-m", "kvinstall", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=120
    )


def test_help_lists_every_exit_code() -> None:
    res = kv("--help")
    assert res.returncode == 0
    for e in EXIT_CODES:
        assert e.meaning[:30] in " ".join(res.stdout.split()), e


def test_exit_code_doc_matches_the_table() -> None:
    doc = (ROOT / "docs/exit-codes.md").read_text()
    for e in EXIT_CODES:
        assert f"| {e.code} | `{e.name}` | {e.meaning} |" in doc


def test_validate_ok_and_json() -> None:
    res = kv("validate", "-f", "examples/minimal.yaml")
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout
    res = kv("validate", "-f", "examples/ha-gpu.yaml", "--output", "json")
    data = json.loads(res.stdout)
    assert data["valid"] is True
    assert [w["code"] for w in data["warnings"]] == ["secret-unresolved"]


def test_validate_error_exit_code_and_json(tmp_path: Path) -> None:
    res = kv("validate", "-f", "tests/unit/broken/16-unknown-gate.yaml")
    assert res.returncode == 3
    assert "16-unknown-gate.yaml:14:9: components.kubevirt.featureGates[0]" in res.stderr
    assert "Traceback" not in res.stderr
    res = kv("validate", "-f", "tests/unit/broken/16-unknown-gate.yaml", "-o", "json")
    data = json.loads(res.stdout)
    assert data["exitCode"] == 3
    errors = [p for p in data["problems"] if p["severity"] == "error"]
    assert errors[0]["line"] == 14 and errors[0]["path"] == "components.kubevirt.featureGates[0]"


def test_missing_file_and_usage_errors() -> None:
    res = kv("validate", "-f", "does/not/exist.yaml")
    assert res.returncode == 13
    assert "does/not/exist.yaml: configuration file not found" in res.stderr
    assert kv("validate", "--no-such-flag").returncode == 64


def test_schema_is_json_with_id() -> None:
    res = kv("schema")
    schema = json.loads(res.stdout)
    assert schema["$id"].endswith("virtualizationcluster.json")
    assert "hosts" in schema["properties"]


def test_convert_writes_a_valid_file(tmp_path: Path) -> None:
    out = tmp_path / "converted.yaml"
    res = kv("convert", "-f", "examples/kubev.yaml", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert kv("validate", "-f", str(out)).returncode == 0


def test_debug_prints_the_error_with_its_cause() -> None:
    plain = kv("validate", "-f", "does/not/exist.yaml")
    assert plain.returncode == 13 and "Traceback" not in plain.stderr
    res = kv("validate", "-f", "does/not/exist.yaml", env={"KVINSTALL_DEBUG": "1"})
    assert res.returncode == 13  # the same exit code, the same message, then the chain
    assert "does/not/exist.yaml: configuration file not found" in res.stderr
    assert "FileNotFoundError" in res.stderr
    assert "The above exception was the direct cause of the following exception" in res.stderr


def test_output_is_one_option_on_every_command(tmp_path: Path) -> None:
    """-o is the output format everywhere; the paths are --out, and the old `-o PATH` still works."""
    res = kv("version", "-o", "json")
    assert json.loads(res.stdout)["kvinstall"]
    out = tmp_path / "converted.yaml"
    res = kv("convert", "-f", "examples/kubev.yaml", "--out", str(out), "-o", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["file"] == str(out) and out.is_file()
    rendered = tmp_path / "rendered"
    res = kv("render", "-f", "examples/minimal.yaml", "-o", str(rendered), "--output", "json",
             env={"KVINSTALL_STATE_DIR": str(tmp_path / "state")})  # the old spelling, with the format  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["directory"] == str(rendered) and (rendered / "kubeone.yaml").is_file()
    res = kv("render", "-f", "examples/minimal.yaml", "--out", str(rendered), "-o", str(tmp_path / "elsewhere"))
    assert res.returncode == 64 and "more than one output directory" in res.stderr
    for command in (["plan", "--help"], ["render", "--help"], ["mirror", "create", "--help"], ["init", "--help"]):
        text = " ".join(kv(*command).stdout.split())
        assert "-o, --output" in text, command
