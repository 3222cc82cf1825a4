"""A strict, injection-safe Jinja2 environment for our YAML templates (package data kvinstall.templates).

Templates produce YAML. Every `{{ ... }}` must end in one of the quoting filters, otherwise rendering
fails (a `finalize` hook enforces it):

- `{{ value | q }}`      a scalar (or a whole structure) as one YAML flow node: strings double-quoted
                         with every non-printable or non-ASCII character escaped, so a value holding
                         newlines, `{{`, `: `, `---`, `#` or quotes stays one scalar and can never add
                         keys, list items or documents.
- `{{ value | tojson }}` the same, for whole structures (dicts, lists) - JSON-compatible flow YAML.

Build strings inside the expression: `{{ ("prefix-" ~ name) | q }}`. Only plain values are accepted
(str, int, float, bool, None, dict, list, tuple); a Secret must be revealed deliberately by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from kvinstall.model import KubeObject


class TemplateError(ValueError):
    """A template is broken (a bug in kvinstall, not a user error): undefined value, unquoted output."""


class _Quoted(str):
    """Output already made safe by a quoting filter."""

    __slots__ = ()


def _quote_str(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            # Everything else escaped: newlines, tabs, NEL, line separators, BOM, non-ASCII.
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def to_flow(value: Any) -> str:
    """A plain value as one YAML flow node (JSON-compatible except for \\U escapes of astral characters)."""
    if isinstance(value, jinja2.Undefined):
        try:
            str(value)  # StrictUndefined raises, naming what is missing
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined value: {exc}") from exc
        raise TemplateError("undefined value")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TemplateError(f"cannot render the float {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _quote_str(str(value))
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise TemplateError(f"mapping keys must be strings, got {type(k).__name__} {k!r}")
            items.append(f"{_quote_str(k)}: {to_flow(v)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_flow(v) for v in value) + "]"
    raise TemplateError(
        f"cannot render a {type(value).__name__} into YAML: pass plain values "
        "(reveal secrets explicitly, dump models with model_dump)"
    )


def _q(value: Any) -> _Quoted:
    return _Quoted(to_flow(value))


def _finalize(value: Any) -> Any:
    if isinstance(value, _Quoted):
        return value
    raise TemplateError(
        f"unquoted output {str(value)[:40]!r} in a template: every {{{{ }}}} must end with | q or | tojson"
    )


def _make_env(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["q"] = _q
    env.filters["tojson"] = _q
    return env


class _PackageLoader(jinja2.BaseLoader):
    """Loads templates from the package data kvinstall.templates with importlib.resources."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        node = resources.files("kvinstall.templates")
        for part in template.split("/"):
            if part in ("", ".", ".."):
                raise jinja2.TemplateNotFound(template)
            node = node.joinpath(part)
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), None, lambda: True


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared environment for templates/ (package data kvinstall.templates)."""
    return _make_env(_PackageLoader())


def parse_documents(text: str, *, where: str) -> list[KubeObject]:
    """Every non-empty YAML document of `text` (machine-written: libyaml, see fastyaml); each must
    be a mapping."""
    from kvinstall import fastyaml

    out: list[KubeObject] = []
    try:
        docs = fastyaml.load_all(text)
    except fastyaml.YAMLError as exc:
        raise TemplateError(f"{where}: the output is not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise TemplateError(f"{where}: document {i} is a {type(doc).__name__}, not a mapping")
        out.append(doc)
    return out


def _render(template: jinja2.Template, name: str, values: dict[str, Any]) -> list[KubeObject]:
    try:
        text = template.render(**values)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc
    return parse_documents(text, where=f"template {name}")


def render_template(name: str, **values: Any) -> list[KubeObject]:
    """Render templates/NAME with `values` and parse every document (empty ones dropped)."""
    try:
        template = environment().get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {name} is not in kvinstall.templates") from exc
    return _render(template, name, values)


def render_string(source: str, **values: Any) -> list[KubeObject]:
    """Render a template given as text, with the same rules (for tests and small inline templates)."""
    return _render(_make_env(jinja2.BaseLoader()).from_string(source), "<string>", values)


def load_manifest(path: str) -> list[KubeObject]:
    """The documents of a static YAML file of the package data kvinstall.manifests ("policies/x.yaml")."""
    node = resources.files("kvinstall.manifests")
    for part in path.split("/"):
        node = node.joinpath(part)
    return parse_documents(node.read_text(encoding="utf-8"), where=f"manifests/{path}")
