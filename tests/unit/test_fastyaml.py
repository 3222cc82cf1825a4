"""Machine-written YAML (kvinstall.fastyaml) against PyYAML, the reference YAML 1.1 reader:
the same values from every real upstream artifact and chart render, a written document reads back
as the data it was written from (by PyYAML too), for the real objects and for arbitrary data."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kvinstall import fastyaml
from kvinstall.catalog import load_catalog
from kvinstall.components import component
from kvinstall.config.models import Config
from upstream_pack import PackSource, pack_artifacts


class Reference(yaml.CSafeLoader):
    """PyYAML's YAML 1.1 reader, timestamps left as strings (as Kubernetes decodes them)."""


Reference.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def reference_load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=Reference))


def _real_texts() -> list[tuple[str, str]]:
    texts = [
        (f"{name} {release.version} {artifact.name}", path.read_text())
        for name, release, artifact, path in pack_artifacts()
        if artifact.kind == "url"
    ]
    cfg = Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "lab"},
        "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
    })  # fmt: skip
    for name in ("kubeovn", "kyverno"):
        objects = component(name).render(cfg, load_catalog(), PackSource()).objects
        texts.append((f"{name} render", yaml.dump_all(objects, Dumper=yaml.CSafeDumper)))
    return texts


REAL = _real_texts()


@pytest.mark.parametrize(("what", "text"), REAL, ids=[w for w, _ in REAL])
def test_reads_the_real_artifacts_as_pyyaml_does_and_writes_them_back(what: str, text: str) -> None:
    docs = fastyaml.load_all(text)
    assert docs == reference_load_all(text), what
    objects = [d for d in docs if d is not None]
    written = "".join("---\n" + fastyaml.dump(o) for o in objects)
    assert [d for d in reference_load_all(written) if d is not None] == objects
    assert [d for d in fastyaml.load_all(written) if d is not None] == objects


def test_yaml_1_1_rules_as_kubernetes_reads_them() -> None:
    (doc,) = fastyaml.load_all(
        "mode: 0444\non: yes\nflag: off\nnone: ~\nempty:\nwhen: 2001-12-14\nf: 1.5\nhex: 0x1f\ns: '0444'\n"
    )
    assert doc == {"mode": 0o444, True: True, "flag": False, "none": None, "empty": None,
                   "when": "2001-12-14", "f": 1.5, "hex": 31, "s": "0444"}  # fmt: skip


def test_anchors_aliases_and_merge_keys() -> None:
    (doc,) = fastyaml.load_all("base: &b {a: 1, b: 2}\nref: *b\nmerged:\n  <<: *b\n  b: 3\n")
    assert doc == {"base": {"a": 1, "b": 2}, "ref": {"a": 1, "b": 2}, "merged": {"a": 1, "b": 3}}


@pytest.mark.parametrize(
    "text",
    ["a: [unclosed\n", "a: !!python/object:os.system x\n", "a: *nowhere\n", "? [a, b]\n: c\n", "a: !custom {x: 1}\n"],
)
def test_broken_or_unsafe_yaml_is_an_error(text: str) -> None:
    with pytest.raises(fastyaml.YAMLError):
        fastyaml.load_all(text)


def test_documents_and_their_separators() -> None:
    assert fastyaml.load_all("") == []
    assert fastyaml.load_all("---\n---\na: 1\n...\n---\n- x\n") == [None, {"a": 1}, ["x"]]
    assert fastyaml.load("a: 1\n") == {"a": 1}
    with pytest.raises(fastyaml.YAMLError):
        fastyaml.load("a: 1\n---\nb: 2\n")


def test_writing_is_readable_yaml() -> None:
    doc = {"kind": "ConfigMap", "data": {"script": "#!/bin/sh\necho hi\n", "args": ["--port=8443", "-v"],
                                         "empty": {}, "none": [], "yes": "yes", "num": "1.0", "when": "2001-12-14"}}  # fmt: skip
    text = fastyaml.dump(doc)
    assert "script: |\n    #!/bin/sh\n    echo hi\n" in text  # a literal block
    assert "- --port=8443\n" in text and "\"yes\": \"yes\"" in text and "num: \"1.0\"" in text
    assert "when: \"2001-12-14\"" in text  # a timestamp to other YAML 1.1 readers: quoted
    assert yaml.safe_load(text) == doc


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["yes", "No", "on", "~", "null", "0444", "0x1F", "1_000", "12:30", ".inf", "- a", "a: b",
                       "a #b", "---", "...", "|", ">", "*a", "&a", "!a", "%a", "@a", "`a", "'a", '"a', "a\n",
                       "a\n\n", "\na", " a", "a ", "a\tb", "2001-12-14", "\x7f", "é", "\u2028", "\U0001f600"])
)
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text() | st.integers(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_data)
def test_any_data_reads_back_as_written(value: Any) -> None:
    text = fastyaml.dump(value)
    for read in (yaml.safe_load(text), fastyaml.load(text)):
        assert _same(read, value), text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
