"""`mirror push -f FILE`: the site registry, CA, plain HTTP and login from the config's offline section,
with the command line taking precedence; a missing secret names its field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kvinstall.config.models import Config
from kvinstall.errors import ConfigError
from kvinstall.mirror.items import PushTarget, push_target


def offline(**creds: object) -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "x"},
        "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
        "offline": {"enabled": True, "registry": "reg.site:5000", "caFile": "/etc/ca.pem",
                    "credentials": {"username": "kv", "password": {"valueFrom": {"env": "KV_TEST_REG_PW"}}}, **creds},
    })  # fmt: skip


def test_config_gives_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_TEST_REG_PW", "s3cret-pw")
    target = push_target(offline(), override=PushTarget(""))
    assert (target.registry, target.ca_file, target.insecure, target.username) == (
        "reg.site:5000", "/etc/ca.pem", False, "kv",
    )  # fmt: skip
    assert target.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(target)


def test_command_line_wins_and_another_user_brings_its_own_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_TEST_REG_PW", "s3cret-pw")
    target = push_target(offline(), override=PushTarget("other:5001", None, False, "admin", None))
    assert (target.registry, target.username, target.password) == ("other:5001", "admin", None)


def test_missing_secret_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KV_TEST_REG_PW", raising=False)
    with pytest.raises(ConfigError) as err:
        push_target(offline(), override=PushTarget(""))
    assert "offline.credentials.password: secret not available: environment variable KV_TEST_REG_PW" in str(err.value)


def test_push_without_any_registry_is_a_usage_error(tmp_path: Path) -> None:
    res = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "kvinstall", "mirror", "push", "--bundle", str(tmp_path / "b.tar")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 64
    assert "no registry" in res.stderr


def test_skip_verify_comes_with_the_configs_own_registry_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_TEST_REG_PW", "s3cret-pw")
    cfg = offline(caFile=None, insecureSkipVerify=True)
    assert push_target(cfg, override=PushTarget("")).skip_verify
    assert push_target(cfg, override=PushTarget("reg.site:5000")).skip_verify
    assert not push_target(cfg, override=PushTarget("other:5001")).skip_verify
    assert not push_target(offline(), override=PushTarget("")).skip_verify
