"""Pure parts of the artifact cache: where artifacts live in the site registry, and the offline source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvinstall.components.artifacts import (
    ArtifactCache,
    NoFetch,
    default_cache_dir,
    offline_registry,
    source_for,
)
from kvinstall.config.models import Config
from kvinstall.errors import ConfigError
from kvinstall.mirror.model import artifact_oci_ref, artifact_tag
from kvinstall.model import Artifact


def config(offline: dict[str, Any]) -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "x"},
        "hosts": [{"address": "10.0.0.1", "role": "controlPlane"}], "offline": offline,
    })  # fmt: skip


def test_site_registry_location() -> None:
    art = Artifact(
        name="kube-ovn-chart", kind="chart", source="https://x/", version="v1.16.2", chart="kube-ovn"
    )
    assert (
        artifact_oci_ref(art, "reg.site:5000/") == "reg.site:5000/kvinstall/artifacts/kube-ovn-chart:v1.16.2"
    )
    odd = Artifact(name="a", kind="url", source="https://x/a", version="+build/1")
    assert artifact_tag(odd) == "_build_1"  # OCI tags may start with "_", not "." or "-"


def test_offline_source_reads_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config({"enabled": True, "registry": "reg.site:5000", "caFile": "/etc/ca.pem",
                  "credentials": {"username": "u", "password": {"valueFrom": {"env": "KVT_REG_PW"}}}})  # fmt: skip
    with pytest.raises(ConfigError, match="KVT_REG_PW"):
        offline_registry(cfg)
    monkeypatch.setenv("KVT_REG_PW", "s3cret")
    reg = offline_registry(cfg)
    assert reg is not None and reg.host == "reg.site:5000" and reg.password == "s3cret"
    assert "s3cret" not in repr(reg)
    assert source_for(cfg, cache_dir="/tmp/x").offline_registry == reg


def test_online_source_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert offline_registry(config({"enabled": False})) is None
    monkeypatch.setenv("KVINSTALL_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert ArtifactCache().cache_dir == tmp_path / "c"
    assert NoFetch().fetch is False
    monkeypatch.delenv("KVINSTALL_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "kvinstall" / "artifacts"
