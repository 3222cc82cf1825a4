"""The Kubermatic Virtualization documentation's own configs (kubev_corpus/, each naming its source page
and docs version): each is accepted, or refused only for what kvinstall does not provide, with a message
that says so. An accepted one plans exactly as its `convert` output does.

Plans are made in-process and contact nothing: the state directory holds no kubeconfig (no cluster
is observed), hosts are not refreshed, and artifacts come from no cache (as `plan` on a fresh machine).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kvinstall.catalog import load_catalog
from kvinstall.components import kubeovn
from kvinstall.components.cdi import cdi_config
from kvinstall.config.checks import run_checks
from kvinstall.config.convert import convert_file
from kvinstall.config.kubev import UNSUPPORTED
from kvinstall.config.loader import load_file
from kvinstall.config.positions import walk
from kvinstall.errors import ConfigError
from kvinstall.kubeone.manifest import registries_auth
from kvinstall.phases.context import Options
from kvinstall.session import open_session

CORPUS = sorted((Path(__file__).parent / "kubev_corpus").glob("*.yaml"))
_SOURCE = re.compile(
    r"^# source: kubermatic/docs content/kubermatic-virtualization/(?P<path>\S+) "
    r"\(docs version (?P<version>main|v\d+\.\d+\.\d+)\), section \"(?P<section>[^\"]+)\"$"
)


def header(path: Path) -> tuple[re.Match[str], str]:
    lines = path.read_text().splitlines()
    source = _SOURCE.match(lines[0])
    assert source, f"{path.name}: the first line must name the source page"
    expect = next(line for line in lines if line.startswith("# expect: "))
    return source, expect.removeprefix("# expect: ")


def test_the_corpus_is_large_and_names_its_sources() -> None:
    assert len(CORPUS) >= 40
    versions = {header(p)[0]["version"] for p in CORPUS}
    assert {"main", "v1.1.0", "v1.2.0"} <= versions
    accepted = [p for p in CORPUS if header(p)[1] == "accepted"]
    assert len(accepted) >= 30
    for path in CORPUS:
        source, expect = header(path)
        assert source["path"].endswith(".md")
        assert expect == "accepted" or expect.startswith("refused: ")


@pytest.mark.parametrize("path", [p for p in CORPUS if header(p)[1] != "accepted"], ids=lambda p: p.stem)
def test_refused_only_for_what_kvinstall_does_not_provide(path: Path) -> None:
    wanted = [w.strip() for w in header(path)[1].removeprefix("refused: ").split("|")]
    with pytest.raises(ConfigError) as info:
        load_file(path)
    errors = [p for p in info.value.problems if p.severity == "error"]
    assert errors
    tree = YAML(typ="rt").load(path.read_text())
    for p in errors:
        assert p.code == UNSUPPORTED, str(p)
        assert p.message.startswith("refused: kvinstall "), str(p)
        # On the KubeV file's own line, named with its own field path.
        assert p.file == str(path) and p.line is not None
        assert walk(tree, p.loc) is not None or p.loc[-1] in (walk(tree, p.loc[:-1]) or {}), str(p)
    for want in wanted:
        assert any(want in p.message for p in errors), f"no refusal mentions {want!r}"


def _files_referenced(node: Any) -> list[str]:
    """Every `valueFrom: {file: PATH}` in a config, sorted."""
    if isinstance(node, dict):
        if set(node) == {"valueFrom"} and "file" in node["valueFrom"]:
            return [node["valueFrom"]["file"]]
        return sorted(f for v in node.values() for f in _files_referenced(v))
    if isinstance(node, list):
        return sorted(f for v in node for f in _files_referenced(v))
    return []


def _plan_view(path: Path, state: Path) -> dict[str, Any]:
    """Everything apply would act on: the plan (its warnings name the file: left out), the KubeOne
    manifest and credentials file, every rendered object (secrets resolved), the Kube-OVN chart values,
    the CDI config, and the clear value of every secret."""
    session = open_session(path, state_override=state)
    ctx, result = session.plan(Options())
    config = session.config
    catalog = load_catalog()
    plan = result.to_dict()
    plan.pop("warnings")
    release = catalog.component("kubeovn", config.components.kube_ovn.version)
    return {
        "plan": plan,
        "kubeone": ctx.desired.kubeone_manifest,
        "kubeoneCredentials": registries_auth(config),
        "objects": [o for c in ctx.desired.components for o in c.objects],
        "kubeovnValues": kubeovn.chart_values(config, release),
        "cdi": cdi_config(config, catalog),
        "secrets": {path: secret.reveal() for path, secret in config.secrets()},
        "offline": config.offline.model_dump(exclude={"credentials", "charts"}),
    }


@pytest.mark.parametrize("path", [p for p in CORPUS if header(p)[1] == "accepted"], ids=lambda p: p.stem)
def test_accepted_and_plans_like_its_conversion(path: Path, tmp_path: Path) -> None:
    loaded = load_file(path)
    assert loaded.converted_from == "KubeVCluster"
    assert all(w.line is not None and w.file == str(path) for w in loaded.warnings)
    out = tmp_path / "out" / "cluster.yaml"
    out.parent.mkdir()
    conversion = convert_file(path, out)
    out.write_text(conversion.text)
    assert "<redacted>" not in conversion.text and "redacted" not in conversion.text.lower()
    referenced = _files_referenced(YAML(typ="safe").load(conversion.text))
    assert referenced == sorted(str(s.path) for s in conversion.secrets)
    for secret in conversion.secrets:
        assert stat.S_IMODE(secret.path.stat().st_mode) == 0o600
        value = secret.path.read_text().rstrip("\n")
        assert value and value not in conversion.text
    state = tmp_path / "state"  # one state: Dex's generated admin login is the same for both
    kubev_view = _plan_view(path, state)
    converted_view = _plan_view(out, state)
    assert kubev_view == converted_view
    assert kubev_view["plan"]["observed"]["cluster"] is False


def _kubev_options(path: Path) -> tuple[Any, bool]:
    tree = YAML(typ="safe").load(path.read_text())
    metallb = (tree.get("loadBalancer") or {}).get("metallb")
    return metallb, "longhorn" in (tree.get("storage") or {})


LB_OR_STORAGE = [p for p in CORPUS if header(p)[1] == "accepted" and any(_kubev_options(p))]


def test_the_corpus_has_metallb_and_longhorn_examples() -> None:
    assert sum(1 for p in LB_OR_STORAGE if _kubev_options(p)[0]) >= 4
    assert sum(1 for p in LB_OR_STORAGE if _kubev_options(p)[1]) >= 4


@pytest.mark.parametrize("path", LB_OR_STORAGE, ids=lambda p: p.stem)
def test_metallb_and_longhorn_examples_plan_those_components(path: Path, tmp_path: Path) -> None:
    """KubeV's `loadBalancer.metallb {ipRange}` plans MetalLB with that range as its one pool announced
    on the hosts' network, and `storage.longhorn {}` plans Longhorn, whose ReadWriteMany class makes
    the live-migration warning go away."""
    metallb, longhorn = _kubev_options(path)
    session = open_session(path, state_override=tmp_path / "state")
    ctx, plan = session.plan(Options())
    config = session.config
    phases = {p["name"]: p for p in plan.to_dict()["phases"]}
    planned = {c.name for c in ctx.desired.components}
    lb = config.components.metallb
    if metallb:
        assert "metallb" in planned and "component/metallb" in phases
        assert [(p.name, list(p.addresses)) for p in lb.pools] == [("default", [metallb["ipRange"].strip()])]
        assert lb.l2 and not lb.bgp_peers
    else:
        assert "metallb" not in planned
    if longhorn:
        assert "longhorn" in planned and "component/longhorn" in phases
        assert config.rwx_storage_class() == "longhorn-rwx"
        assert "migration-rwx" not in {p.code for p in run_checks(config, load_catalog())}
        # Each host is checked for what Longhorn needs.
        checks = {c for a in phases["preflight"]["actions"] for c in a["details"]["checks"]}
        assert {"longhorn.iscsi", "longhorn.nfs", "longhorn.data-path", "longhorn.multipath"} <= checks
    else:
        assert "longhorn" not in planned
        assert "migration-rwx" in {p.code for p in run_checks(config, load_catalog())}
