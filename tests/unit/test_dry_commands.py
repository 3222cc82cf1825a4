"""Only apply writes: `plan`, `render` and `mirror list` on a config with `auth.mode: basic` (whose admin
credential apply would generate) leave an empty state directory empty; a secret whose source is not set
is "value unknown" to them, while apply still requires it and names the field.

The CLI runs as users run it, in an empty network namespace (the example's hosts do not exist here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvinstall.errors import exit_code

ROOT = Path(__file__).resolve().parents[2]


def kv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["unshare", "-n", sys.executable, "-m", "kvinstall", *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KVINSTALL_")}
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=cwd, env={**environ, **(env or {})}, timeout=120
    )


def basic_config(tmp_path: Path, *, extra: str = "") -> Path:
    """examples/minimal.yaml with login mode basic (a generated admin password)."""
    text = (ROOT / "examples/minimal.yaml").read_text()
    path = tmp_path / "basic.yaml"
    path.write_text(text + "auth:\n  mode: basic\n  issuer: https://dex.demo.example/dex\n" + extra)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["plan", "-o", "json"],
        ["plan"],
        ["render", "--out", "{out}"],
        ["render", "-o", "{out}", "--include-secrets"],
        ["mirror", "list"],
        ["mirror", "list", "-o", "json"],
        ["status"],  # fails (no cluster), but writes nothing either
    ],
)
def test_only_apply_writes_the_state_directory(tmp_path: Path, command: list[str]) -> None:
    config = basic_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    out = tmp_path / "out"
    args = [a.replace("{out}", str(out)) for a in command]
    env = {"KVINSTALL_CACHE_DIR": str(tmp_path / "cache"), "KVINSTALL_STATE_DIR": str(state)}
    res = kv(*args, "-f", str(config), cwd=tmp_path, env=env)
    if command[0] == "status":
        assert res.returncode == exit_code("cluster"), res.stdout + res.stderr
    else:
        assert res.returncode == 0, res.stdout + res.stderr
    assert list(state.iterdir()) == []
    assert not (tmp_path / ".kvinstall").exists()
    if command[0] == "plan" and "json" in command:
        plan = json.loads(res.stdout)
        dex = next(p for p in plan["phases"] if p["name"] == "component/dex")
        assert any("generated at apply" in n for n in dex["notes"]), dex["notes"]
        assert any(a["object"] == "Secret/dex/dex-admin" and a["action"] == "create" for a in dex["actions"])
    if command[0] == "render" and "--include-secrets" in command:
        admin = (out / "04-dex" / "Secret_dex_dex-admin.yaml").read_text()
        assert "PGdlbmVyYXRlZCBhdCBhcHBseT4=" in admin  # base64 of "<generated at apply>"


def test_unset_secret_reference_is_value_unknown_for_plan_and_required_by_apply(tmp_path: Path) -> None:
    extra = (
        "  staticClients:\n"
        "    - id: portal\n"
        "      name: Portal\n"
        "      redirectURIs: [https://portal.demo.example/callback]\n"
        "      secret: {valueFrom: {env: KVTEST_PORTAL_SECRET}}\n"
    )
    config = basic_config(tmp_path, extra=extra)
    state = tmp_path / "state"
    state.mkdir()
    env = {"KVINSTALL_CACHE_DIR": str(tmp_path / "cache")}

    res = kv("plan", "-f", str(config), "--state-dir", str(state), "-o", "json", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    plan = json.loads(res.stdout)
    unknown = [w for w in plan["warnings"] if "value unknown" in w]
    assert len(unknown) == 1 and unknown[0].startswith(
        "auth.staticClients[0].secret: value unknown (environment variable KVTEST_PORTAL_SECRET is not set)"
    )
    dex = next(p for p in plan["phases"] if p["name"] == "component/dex")
    assert any(a["object"] == "Secret/dex/dex-config" for a in dex["actions"])

    text = kv("plan", "-f", str(config), "--state-dir", str(state), cwd=tmp_path, env=env)
    assert text.returncode == 0 and "value unknown" in text.stdout, text.stdout + text.stderr

    res = kv("apply", "-f", str(config), "--state-dir", str(state), "--yes", "--skip", "preflight",
             cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == exit_code("config"), res.stdout + res.stderr
    assert "auth.staticClients[0].secret" in res.stderr and "KVTEST_PORTAL_SECRET" in res.stderr
    assert "Traceback" not in res.stderr
    assert list(state.iterdir()) == []  # refused before anything was written

    res = kv("plan", "-f", str(config), "--state-dir", str(state), "-o", "json", cwd=tmp_path,
             env={**env, "KVTEST_PORTAL_SECRET": "s3cr3t-portal-value"})  # fmt: skip
    assert res.returncode == 0
    assert not [w for w in json.loads(res.stdout)["warnings"] if "value unknown" in w]
    assert "s3cr3t-portal-value" not in res.stdout + res.stderr
