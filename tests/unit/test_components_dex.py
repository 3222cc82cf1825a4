"""Dex and the three auth modes; the admin credential of mode basic (file, stability, secrecy)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.dex import (
    CREDENTIALS_FILE,
    AdminCredentialsFile,
    DexComponent,
    ensure_admin_credentials,
    load_admin_credentials,
)
from kvinstall.config.models import Config
from kvinstall.errors import ConfigError, LocalIOError
from kvinstall.model import KubeObject
from kvinstall.render.images import images_in, images_outside

CATALOG = load_catalog()
ISSUER = "https://dex.example.test/dex"


def cfg(auth: dict[str, Any], **extra: Any) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "auth": auth,
            **extra,
        }
    )


BASIC = {"mode": "basic", "issuer": ISSUER}


def render(config: Config, state_dir: Path) -> list[KubeObject]:
    return DexComponent(AdminCredentialsFile(state_dir)).render(config, CATALOG, _NoArtifacts()).objects


class _NoArtifacts:
    def get(self, artifact: object) -> bytes | None:
        raise AssertionError("Dex is rendered from our templates: no upstream artifact")


def find(objects: list[KubeObject], kind: str, name: str) -> KubeObject:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def dex_conf(objects: list[KubeObject]) -> dict[str, Any]:
    data = find(objects, "Secret", "dex-config")["data"]["config.yaml"]
    loaded: dict[str, Any] = json.loads(base64.b64decode(data))
    return loaded


def without_secret_data(objects: list[KubeObject]) -> str:
    stripped = [{k: v for k, v in o.items() if not (o["kind"] == "Secret" and k == "data")} for o in objects]
    return json.dumps(stripped)


def test_mode_none_deploys_nothing(tmp_path: Path) -> None:
    config = cfg({"mode": "none"})
    comp = DexComponent()
    assert not comp.enabled(config)
    assert comp.render(config, CATALOG, _NoArtifacts()).objects == []
    assert not any(tmp_path.iterdir())


def test_basic_generates_once_stable_and_0600(tmp_path: Path) -> None:
    config = cfg(BASIC)
    path, password = ensure_admin_credentials(tmp_path, config)
    assert path == tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(password) >= 20
    first = render(config, tmp_path)
    # A re-run (new process, same state dir) renders byte-identical objects: no churn in the plan.
    assert render(config, tmp_path) == first
    assert ensure_admin_credentials(tmp_path, config) == (path, password)
    conf = dex_conf(first)
    (static,) = conf["staticPasswords"]
    assert static["email"] == "admin@kvinstall.local"
    assert bcrypt.checkpw(password.encode(), static["hash"].encode())
    assert conf["enablePasswordDB"] is True
    assert conf["oauth2"]["passwordConnector"] == "local"


def test_generated_password_only_in_secret_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = cfg(BASIC)
    _, password = ensure_admin_credentials(tmp_path, config)
    objects = render(config, tmp_path)
    b64 = base64.b64encode(password.encode()).decode()
    text = without_secret_data(objects)
    assert password not in text and b64 not in text
    # Not in Dex's config either (only its bcrypt hash), but in the admin Secret.
    assert password not in json.dumps(dex_conf(objects))
    admin = find(objects, "Secret", "dex-admin")
    assert base64.b64decode(admin["data"]["password"]).decode() == password
    assert not [o for o in objects if o["kind"] == "ConfigMap"]
    out = capsys.readouterr()
    assert password not in out.out and password not in out.err
    creds = load_admin_credentials(tmp_path, config)
    assert password not in repr(creds) and password not in str(creds)


def test_configured_password_reuses_hash_until_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVTEST_ADMIN_PW", "first-secret-value")
    config = cfg({**BASIC, "basic": {"password": {"valueFrom": {"env": "KVTEST_ADMIN_PW"}}}})
    one = load_admin_credentials(tmp_path, config)
    assert one.password == "first-secret-value"
    assert load_admin_credentials(tmp_path, config).bcrypt_hash == one.bcrypt_hash
    monkeypatch.setenv("KVTEST_ADMIN_PW", "second-secret-value")
    two = load_admin_credentials(tmp_path, config)
    assert two.bcrypt_hash != one.bcrypt_hash
    assert bcrypt.checkpw(b"second-secret-value", two.bcrypt_hash.encode())
    stored = json.loads((tmp_path / CREDENTIALS_FILE).read_text())
    assert stored["password"] == "second-secret-value" and stored["bcryptHash"] == two.bcrypt_hash


def test_unset_configured_password_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVTEST_ABSENT", raising=False)
    config = cfg({**BASIC, "basic": {"password": {"valueFrom": {"env": "KVTEST_ABSENT"}}}})
    with pytest.raises(ConfigError) as err:
        load_admin_credentials(tmp_path, config)
    assert "auth.basic.password" in str(err.value.problems[0].path)


def test_loose_file_mode_is_tightened(tmp_path: Path) -> None:
    config = cfg(BASIC)
    path, _ = ensure_admin_credentials(tmp_path, config)
    path.chmod(0o644)
    ensure_admin_credentials(tmp_path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path, _ = ensure_admin_credentials(tmp_path / "state", cfg(BASIC))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_corrupt_credentials_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / CREDENTIALS_FILE).write_text("{not json")
    with pytest.raises(LocalIOError) as err:
        ensure_admin_credentials(tmp_path, cfg(BASIC))
    assert str(tmp_path / CREDENTIALS_FILE) in str(err.value)


def test_dex_config_basics(tmp_path: Path) -> None:
    objects = render(cfg({**BASIC, "clientId": "kube"}), tmp_path)
    conf = dex_conf(objects)
    assert conf["issuer"] == ISSUER
    assert conf["storage"] == {"type": "kubernetes", "config": {"inCluster": True}}
    assert conf["web"] == {"http": "0.0.0.0:5556"}
    assert conf["oauth2"]["skipApprovalScreen"] is True
    assert [c["id"] for c in conf["staticClients"]] == ["kube"]
    assert [o["kind"] for o in objects] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "Secret", "Secret", "Service", "Deployment",
    ]  # fmt: skip
    assert all(o["metadata"].get("namespace") in (None, "dex") for o in objects)


def test_issuer_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        render(cfg({"mode": "basic"}), tmp_path)
    assert err.value.problems[0].path == "auth.issuer"


def test_oidc_connectors_and_static_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVTEST_GH_SECRET", "gh-client-secret")
    monkeypatch.setenv("KVTEST_LDAP_PW", "ldap-bind-pw")
    monkeypatch.setenv("KVTEST_UI_SECRET", "ui-secret")
    config = cfg(
        {
            "mode": "oidc",
            "issuer": ISSUER,
            "namespace": "identity",
            "oidc": {
                "connectors": [
                    {
                        "type": "github",
                        "id": "github",
                        "name": "GitHub",
                        "config": {"clientID": "abc", "orgs": [{"name": "acme"}]},
                        "clientSecret": {"valueFrom": {"env": "KVTEST_GH_SECRET"}},
                    },
                    {
                        "type": "ldap",
                        "id": "corp",
                        "name": "Corp",
                        "config": {
                            "host": "ldap.example.test:636",
                            "bindPW": {"valueFrom": {"env": "KVTEST_LDAP_PW"}},
                        },
                    },
                ]
            },
            "staticClients": [
                {
                    "id": "ui",
                    "name": "Console",
                    "secret": {"valueFrom": {"env": "KVTEST_UI_SECRET"}},
                    "redirectURIs": ["https://console.example.test/callback"],
                }
            ],
        }
    )
    comp = DexComponent()  # no credentials provider needed outside mode basic
    objects = comp.render(config, CATALOG, _NoArtifacts()).objects
    conf = dex_conf(objects)
    assert conf["enablePasswordDB"] is False and "staticPasswords" not in conf
    github, ldap = conf["connectors"]
    assert github == {
        "type": "github",
        "id": "github",
        "name": "GitHub",
        "config": {"clientID": "abc", "orgs": [{"name": "acme"}], "clientSecret": "gh-client-secret"},
    }
    assert ldap["config"]["bindPW"] == "ldap-bind-pw"
    assert [c["id"] for c in conf["staticClients"]] == ["kubernetes", "ui"]
    assert conf["staticClients"][0]["public"] is True
    assert conf["staticClients"][1]["secret"] == "ui-secret"
    text = without_secret_data(objects)
    for value in ("gh-client-secret", "ldap-bind-pw", "ui-secret"):
        assert value not in text
    assert {o["metadata"].get("namespace") for o in objects} == {None, "identity"}
    assert comp.readiness(config, CATALOG)[0].namespace == "identity"


def test_unresolvable_connector_secret_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVTEST_NOPE", raising=False)
    config = cfg(
        {
            "mode": "oidc",
            "issuer": ISSUER,
            "oidc": {"connectors": [{"type": "oidc", "id": "x", "name": "X",
                                     "clientSecret": {"valueFrom": {"env": "KVTEST_NOPE"}}}]},
        }
    )  # fmt: skip
    with pytest.raises(ConfigError) as err:
        DexComponent().render(config, CATALOG, _NoArtifacts())
    assert err.value.problems[0].path == "auth.oidc.connectors[0].clientSecret"


def test_config_change_rolls_the_pods(tmp_path: Path) -> None:
    def checksum(objects: list[KubeObject]) -> str:
        return str(find(objects, "Deployment", "dex")["spec"]["template"]["metadata"]["annotations"])

    a = render(cfg(BASIC), tmp_path)
    b = render(cfg({**BASIC, "issuer": "https://other.example.test/dex"}), tmp_path)
    assert checksum(a) != checksum(b)


def test_offline_rewrites_the_dex_image(tmp_path: Path) -> None:
    site = "reg.site.test:5443"
    objects = render(cfg(BASIC, offline={"enabled": True, "registry": site}), tmp_path)
    assert images_in(objects) == {f"{site}/dexidp/dex:v2.44.0"}
    assert images_outside(objects, site) == set()
    assert images_in(render(cfg(BASIC), tmp_path)) == {"ghcr.io/dexidp/dex:v2.44.0"}
