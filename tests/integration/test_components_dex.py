"""Dex on the real apiserver in each auth mode, through the apply engine: basic (generated admin
credential), oidc (connectors), none (everything pruned). The generated password never reaches the
plan (JSON form), stdout or logs; the credentials file is 0600; re-runs plan no change. Dex itself
cannot run here (no kubelet): operator_sim marks its Deployment Available."""

from __future__ import annotations

import base64
import json
import logging
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.dex import CREDENTIALS_FILE, ensure_admin_credentials, for_state_dir
from kvinstall.config.models import Config
from kvinstall.errors import ReadinessTimeout
from kvinstall.kube import ApplySetRef, Kube, execute, plan_apply, wait_ready

pytestmark = pytest.mark.integration
CATALOG = load_catalog()
ISSUER = "https://dex.example.test/dex"


class _NoArtifacts:
    def get(self, artifact: object) -> bytes | None:
        raise AssertionError("Dex is rendered from our templates: no upstream artifact")


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


def cfg(ns: str, auth: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "kvinstall.io/v1alpha1",
            "kind": "VirtualizationCluster",
            "metadata": {"name": "lab"},
            "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
            "auth": {"namespace": ns, "issuer": ISSUER, **auth},
        }
    )


def secret_value(kube: Kube, ns: str, name: str, key: str) -> str:
    obj = kube.get("v1", "Secret", name, ns)
    assert obj is not None
    return base64.b64decode(obj["data"][key]).decode()


def test_auth_modes_apply_converge_and_keep_the_password_secret(
    kube: Kube,
    operator_sim: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ns = f"dex-{uuid.uuid4().hex[:6]}"
    ref = ApplySetRef(f"dex-{ns}")
    state = tmp_path / "state"

    # --- basic: Dex with the password DB and a generated admin credential (apply makes it first).
    basic = cfg(ns, {"mode": "basic"})
    path, password = ensure_admin_credentials(state, basic)
    objects = for_state_dir(state).render(basic, CATALOG, _NoArtifacts()).objects
    assert path == state / CREDENTIALS_FILE and stat.S_IMODE(path.stat().st_mode) == 0o600
    plan = plan_apply(kube, ref, objects)
    plan_json = json.dumps(plan.to_dict())
    assert password not in plan_json
    assert base64.b64encode(password.encode()).decode() not in plan_json
    execute(kube, plan)
    assert secret_value(kube, ns, "dex-admin", "password") == password
    live_conf = json.loads(secret_value(kube, ns, "dex-config", "config.yaml"))
    assert live_conf["staticPasswords"][0]["hash"].startswith("$2")
    assert password not in json.dumps(live_conf)
    # A re-run (a fresh component, same state dir) renders the same hash: nothing to do.
    again = for_state_dir(state).render(basic, CATALOG, _NoArtifacts()).objects
    assert not plan_apply(kube, ref, again).has_changes

    rules = for_state_dir(state).readiness(basic, CATALOG)
    with pytest.raises(ReadinessTimeout) as err:
        wait_ready(kube, rules, timeout=2, interval=0.5)
    assert f"Deployment.apps/{ns}/dex" in str(err.value)
    operator_sim.deployment_available(ns, "dex")
    wait_ready(kube, rules, timeout=30, interval=0.5)

    # --- oidc: connectors replace the password DB; the admin Secret is pruned.
    monkeypatch.setenv("KVTEST_DEX_CONNECTOR_SECRET", "connector-secret-value")
    oidc = cfg(ns, {"mode": "oidc", "oidc": {"connectors": [{
        "type": "oidc", "id": "corp", "name": "Corp",
        "config": {"issuer": "https://idp.example.test", "clientID": "kv",
                   "redirectURI": f"{ISSUER}/callback"},
        "clientSecret": {"valueFrom": {"env": "KVTEST_DEX_CONNECTOR_SECRET"}},
    }]}})  # fmt: skip
    plan = plan_apply(kube, ref, for_state_dir(state).render(oidc, CATALOG, _NoArtifacts()).objects)
    assert "connector-secret-value" not in json.dumps(plan.to_dict())
    assert [p.ref for p in plan.prune] == [f"Secret/{ns}/dex-admin"]
    execute(kube, plan)
    live_conf = json.loads(secret_value(kube, ns, "dex-config", "config.yaml"))
    assert live_conf["connectors"][0]["config"]["clientSecret"] == "connector-secret-value"
    assert live_conf["enablePasswordDB"] is False
    assert kube.get("v1", "Secret", "dex-admin", ns) is None

    # --- none: Dex is disabled; everything it had is pruned (the namespace only with the flag).
    none = cfg(ns, {"mode": "none"})
    comp = for_state_dir(state)
    assert not comp.enabled(none)
    plan = plan_apply(kube, ref, comp.render(none, CATALOG, _NoArtifacts()).objects)
    assert f"Deployment.apps/{ns}/dex" in {p.ref for p in plan.prune}
    assert [p.ref for p in plan.prune_blocked] == [f"Namespace/{ns}"]
    execute(kube, plan, prune_hook=lambda k, items, rest: comp.remove(none, CATALOG, k, rest))
    assert kube.get("apps/v1", "Deployment", "dex", ns) is None
    assert kube.get("v1", "Secret", "dex-config", ns) is None
    assert kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", "kvinstall:dex") is None

    out = capsys.readouterr()
    for leak in (password, "connector-secret-value"):
        assert leak not in out.out and leak not in out.err and leak not in caplog.text
