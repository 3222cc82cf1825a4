"""Loading: examples, schema, docs, secrets, KubeV import and a fuzz test of the loader."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvinstall.config.docs import render_markdown
from kvinstall.config.loader import load_file, load_text
from kvinstall.config.models import Config
from kvinstall.config.schema import MODELINE, json_schema
from kvinstall.config.writer import to_yaml
from kvinstall.errors import ConfigError, KvError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_load_and_start_with_the_modeline(path: Path) -> None:
    assert path.read_text().splitlines()[0] == MODELINE
    loaded = load_file(path)
    assert loaded.config.hosts


def test_examples_cover_the_documented_shapes() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"minimal", "ha-gpu", "airgapped", "kubev"} <= names
    ha = load_file(ROOT / "examples/ha-gpu.yaml").config
    assert len(ha.control_plane) == 3
    assert ha.components.kubevirt.permitted_host_devices.pci_host_devices
    assert ha.components.kubevirt.permitted_host_devices.mediated_devices
    assert load_file(ROOT / "examples/airgapped.yaml").config.offline.enabled


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem != "kubev"], ids=lambda p: p.stem)
def test_examples_validate_against_the_json_schema(path: Path) -> None:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(path.read_text())
    jsonschema.validate(data, json_schema())


def test_docs_config_md_is_current() -> None:
    current = (ROOT / "docs/config.md").read_text()
    assert current == render_markdown(), (
        "docs/config.md is stale: run python -m kvinstall.config.docs > docs/config.md"
    )


def test_writer_round_trips_and_keeps_secrets_out(tmp_path: Path) -> None:
    cfg = load_file(ROOT / "examples/ha-gpu.yaml").config
    text = to_yaml(cfg)
    assert text.startswith(MODELINE)
    again = load_text(text, source="written").config
    assert again == cfg


def test_inline_secret_is_never_serialised() -> None:
    base = (ROOT / "examples/minimal.yaml").read_text()
    text = (
        base
        + "offline:\n  registry: r.example.com\n  credentials:\n    username: u\n    password: hunter2-secret\n"
    )
    cfg = load_text(text).config
    assert cfg.offline.credentials is not None
    assert cfg.offline.credentials.password.reveal() == "hunter2-secret"
    dumped = json.dumps(cfg.model_dump(mode="json", by_alias=True))
    assert "hunter2-secret" not in dumped
    assert "hunter2-secret" not in repr(cfg)
    # A file would hold a placeholder where the value was: the writer refuses instead.
    with pytest.raises(ValueError, match=r"offline\.credentials\.password"):
        to_yaml(cfg)


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    base = (ROOT / "examples/minimal.yaml").read_text()
    text = base + (
        "offline:\n  registry: r.example.com\n  credentials:\n    username: u\n"
        f"    password:\n      valueFrom: {{file: {secret_file}}}\n"
    )
    assert load_text(text).config.offline.credentials.password.reveal() == "from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("KV_TEST_PW", "from-env")
    text = text.replace(f"file: {secret_file}", "env: KV_TEST_PW")
    assert load_text(text).config.offline.credentials.password.reveal() == "from-env"  # type: ignore[union-attr]


def test_all_problems_are_reported_at_once() -> None:
    text = (
        (ROOT / "examples/minimal.yaml")
        .read_text()
        .replace("role: worker", "role: wrker")
        .replace("hostname: cp-1", "hostnam: cp-1")
    )
    with pytest.raises(ConfigError) as info:
        load_text(text, source="x.yaml")
    paths = {p.path for p in info.value.problems}
    assert {"hosts[0].hostnam", "hosts[1].role", "hosts[2].role"} <= paths


def test_field_and_cross_field_problems_are_reported_together() -> None:
    text = (ROOT / "examples/minimal.yaml").read_text()
    text = text.replace("hostname: cp-1", "hostnam: cp-1").replace("192.0.2.22", "192.0.2.21")
    with pytest.raises(ConfigError) as info:
        load_text(text, source="x.yaml")
    messages = [str(p) for p in info.value.problems]
    assert any("hosts[0].hostnam: unknown field" in m for m in messages)
    assert any("hosts[2].address: duplicate address '192.0.2.21'" in m for m in messages)


def test_warnings_are_distinct_from_errors() -> None:
    text = (ROOT / "examples/minimal.yaml").read_text()
    text = text.replace("role: worker\n    hostname: worker-1", "role: controlPlane\n    hostname: worker-1")
    loaded = load_text(text)
    assert [w.code for w in loaded.warnings] == ["even-cp"]
    assert all(w.severity == "warning" for w in loaded.warnings)


def test_help_and_validate_do_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from kvinstall.cli import main\n"
        "main._register()\n"
        "from kvinstall.config.loader import load_file\n"
        f"load_file({str(ROOT / 'examples/minimal.yaml')!r})\n"
        "heavy = [m for m in ('kubernetes', 'paramiko', 'oras', 'requests') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"kubernetes", "paramiko", "oras"}


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
config_keys = st.sampled_from([*Config.model_fields, "apiVersion", "metadata", "hosts", "network", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_loader_text_never_tracebacks(text: str) -> None:
    with contextlib.suppress(KvError):
        load_text(text, source="fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(config_keys, yaml_values, max_size=8))
def test_fuzz_loader_structures_never_traceback(data: dict[str, object]) -> None:
    text = json.dumps(
        {"apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", **data}, default=str
    )
    try:
        load_text(text, source="fuzz.yaml")
    except KvError as exc:
        assert exc.exit_code == 3
