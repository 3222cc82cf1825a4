"""The strict, injection-safe template environment (kvinstall.render.env)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvinstall.render.env import TemplateError, render_string, to_flow

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name | q }}
  labels:
    app: {{ label | q }}
data:
  key: {{ value | q }}
  list: {{ items | tojson }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: second
data:
  nested: {{ nested | tojson }}
"""

# Characters that break naive YAML templating.
NASTY = [
    "\n",
    "\r\n",
    "{{",
    "}}",
    ": ",
    "---",
    "...",
    '"',
    "'",
    "#",
    "- ",
    "\\",
    "\t",
    "\u2028",
    "\x85",
    "&a",
    "*a",
    "!!python/object",
    "%YAML",
    "@",
    "`",
    "|",
    ">",
    "\ufeff",
    "😀",
    "\x00",
]


def config_like_text() -> st.SearchStrategy[str]:
    pieces = st.sampled_from(NASTY) | st.text(alphabet=string.printable, max_size=8) | st.text(max_size=4)
    return st.lists(pieces, max_size=10).map("".join)


def render(**values: object) -> list[dict]:
    return render_string(TEMPLATE, **values)


@settings(max_examples=300, deadline=None)
@given(
    name=config_like_text(),
    label=config_like_text(),
    value=config_like_text(),
    items=st.lists(config_like_text(), max_size=4),
    nested=st.dictionaries(
        config_like_text(), config_like_text() | st.integers() | st.booleans(), max_size=4
    ),
)
def test_values_cannot_add_keys_or_documents(
    name: str, label: str, value: str, items: list[str], nested: dict[str, object]
) -> None:
    docs = render(name=name, label=label, value=value, items=items, nested=nested)
    assert len(docs) == 2
    first, second = docs
    assert set(first) == {"apiVersion", "kind", "metadata", "data"}
    assert set(first["metadata"]) == {"name", "labels"}
    assert first["metadata"] == {"name": name, "labels": {"app": label}}
    assert first["data"] == {"key": value, "list": items}
    assert second["data"] == {"nested": nested}


def test_unquoted_output_is_refused() -> None:
    with pytest.raises(TemplateError, match="must end with"):
        render_string("a: {{ x }}\n", x="b\nc: d")


def test_concatenation_loses_quoting_and_is_refused() -> None:
    with pytest.raises(TemplateError, match="unquoted"):
        render_string("a: {{ 'p-' ~ (x | q) }}\n", x="y")
    assert render_string("a: {{ ('p-' ~ x) | q }}\n", x="y: z") == [{"a": "p-y: z"}]


def test_undefined_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render_string("a: {{ missing | q }}\n")


def test_secret_like_objects_must_be_revealed_explicitly() -> None:
    class Opaque:
        pass

    with pytest.raises(TemplateError, match="cannot render"):
        render_string("a: {{ x | q }}\n", x=Opaque())


def test_scalars_keep_their_types() -> None:
    assert render_string(
        "a: {{ a | q }}\nb: {{ b | q }}\nc: {{ c | q }}\nd: {{ d | q }}\ne: {{ e | q }}\n",
        a=1,
        b=True,
        c=None,
        d="true",
        e=1.5,
    ) == [{"a": 1, "b": True, "c": None, "d": "true", "e": 1.5}]


def test_empty_documents_are_dropped() -> None:
    assert render_string("---\n---\na: {{ x | q }}\n---\n# only a comment\n", x="1") == [{"a": "1"}]


def test_flow_refuses_nan_and_non_string_keys() -> None:
    with pytest.raises(TemplateError):
        to_flow(float("nan"))
    with pytest.raises(TemplateError):
        to_flow({1: "a"})
