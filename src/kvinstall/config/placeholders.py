"""A config whose unavailable secrets read as placeholders, for the commands that change nothing.

`plan`, `render`, `status` and `mirror` must work where a secret's source is not set (CI sets the
variable only for apply): every secret reference (`valueFrom` env or file) that cannot be read is
replaced by a visible placeholder ("<value unknown: ...>"), so the Secret data that holds it shows as
value unknown instead of failing. `apply` never uses this: it reads every secret and names the field of
a missing one (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from kvinstall.config.models import Config
from kvinstall.config.problems import Problem, parse_path
from kvinstall.config.secrets import Secret
from kvinstall.errors import ConfigError


def placeholder(reason: str) -> str:
    return f"<value unknown: {reason}>"


def with_unknown_secrets(config: Config) -> tuple[Config, list[tuple[str, str]]]:
    """(the config with placeholders, (field path, reason) of every secret that could not be read)."""
    unknown: list[tuple[str, str]] = []
    out = _walk(config, "", unknown)
    assert isinstance(out, Config)
    return out, unknown


def require_secrets(config: Config, *, placed: Sequence[Problem] = (), source: str | None = None) -> None:
    """Every secret readable, or one ConfigError naming each field that is not (apply). `placed`: the
    loader's warnings, whose positions (file:line:column) the errors take where they name the field."""
    _, unknown = with_unknown_secrets(config)
    if not unknown:
        return
    at = {p.path: p for p in placed}
    problems = []
    for path, reason in unknown:
        problem = Problem(
            f"secret not available: {reason}", loc=parse_path(path), hint="apply needs its value"
        )
        where = at.get(problem.path)
        problems.append(
            replace(problem, file=where.file, line=where.line, column=where.column)
            if where is not None
            else replace(problem, file=source)
        )
    raise ConfigError(problems)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, path: str, unknown: list[tuple[str, str]]) -> Any:
    if isinstance(value, Secret):
        reason = value.is_resolvable()
        if reason is None:
            return value
        unknown.append((path, reason))
        return Secret.model_validate({"value": placeholder(reason)})
    if isinstance(value, BaseModel):
        updates = {}
        for name, info in type(value).model_fields.items():
            old = getattr(value, name)
            new = _walk(old, _join(path, info.alias or name), unknown)
            if new is not old:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, list):
        items = [_walk(v, f"{path}[{i}]", unknown) for i, v in enumerate(value)]
        return items if any(n is not o for n, o in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        if set(value) == {"valueFrom"}:
            # A reference inside free-form settings (e.g. an OIDC connector's config).
            try:
                secret = Secret.model_validate(value)
            except ValueError:
                return value  # not a reference: rendering reports it
            reason = secret.is_resolvable()
            if reason is None:
                return value
            unknown.append((path, reason))
            return placeholder(reason)
        entries = {k: _walk(v, _join(path, str(k)), unknown) for k, v in value.items()}
        return entries if any(entries[k] is not value[k] for k in value) else value
    return value
