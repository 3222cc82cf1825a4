"""Answer validators (pure): every answer is checked while it is typed, field by field with the pydantic
models, and across fields with the same `run_checks` that `kvinstall validate` uses, run on the partial
config. An answer is refused only for errors that it introduces itself (errors of fields not asked yet,
such as "oidc needs a connector" right after choosing oidc, would otherwise block the flow). Also the
helpers that read and write the answers (a plain dict in the YAML shape of the config)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from kvinstall.catalog import Catalog
from kvinstall.config.checks import run_checks
from kvinstall.config.models import API_VERSION, KIND, Config, Metadata
from kvinstall.config.problems import Loc, Problem, format_path
from kvinstall.wizard.prompts import Check

Data = dict[str, Any]


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def field_problem(model: type[BaseModel], key: str, value: Any, base: Data | None = None) -> str | None:
    """The model's own complaint about `key: value` (a YAML key), or None; other fields are ignored."""
    info_name = next((n for n, i in model.model_fields.items() if key in (i.alias, n)), key)
    try:
        model.model_validate({**(base or {}), key: value})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["loc"] and err["loc"][0] in (key, info_name):
                msg = str(err["msg"])
                return msg.removeprefix("Value error, ")
    return None


def _draft_config(data: Data) -> Config | None:
    """The partial config as a Config, with placeholders for what is not asked yet."""
    d = copy.deepcopy(data)
    d.setdefault("apiVersion", API_VERSION)
    d.setdefault("kind", KIND)
    d.setdefault("metadata", {"name": "draft"})
    if not d.get("hosts"):
        d["hosts"] = [{"address": "draft.invalid", "role": "controlPlane"}]
    for h in d["hosts"]:  # the hosts step's explicit "none" markers (see effective())
        for key in ("privateKeyFile", "bastion"):
            if h.get(key) in ("", {}):
                h.pop(key)
    try:
        return Config.model_validate(d)
    except ValidationError:
        return None


def problems_of(data: Data, catalog: Catalog) -> list[Problem]:
    """All problems of a (possibly partial) config; pydantic errors included."""
    d = copy.deepcopy(data)
    d.setdefault("apiVersion", API_VERSION)
    d.setdefault("kind", KIND)
    try:
        cfg = Config.model_validate(d)
    except ValidationError as exc:
        return [
            Problem(str(e["msg"]).removeprefix("Value error, "), loc=tuple(e["loc"]))
            for e in exc.errors(include_url=False)
        ]
    return run_checks(cfg, catalog)


def _key(p: Problem) -> tuple[Loc, str]:
    return (p.loc, p.message)


def new_problems(before: Data, after: Data, catalog: Catalog, locs: Sequence[Loc],
                 severity: str = "error") -> list[Problem]:
    """Problems of `after` not in `before` that concern one of `locs` (at or under it, or naming it)."""
    a = _draft_config(after)
    if a is None:
        return []
    b = _draft_config(before)
    old = {_key(p) for p in run_checks(b, catalog)} if b is not None else set()
    out = []
    for p in run_checks(a, catalog):
        if p.severity != severity or _key(p) in old:
            continue
        if any(p.loc[: len(loc)] == loc or f"({format_path(loc)})" in p.message for loc in locs):
            out.append(p)
    return out


def cross_check(catalog: Catalog, data: Data, apply: Callable[[Data, str], None], *locs: Loc) -> Check:
    """A validator that puts the answer into a copy of `data` and runs the cross-field checks."""

    def check(answer: str) -> str | None:
        after = copy.deepcopy(data)
        try:
            apply(after, answer)
        except (ValueError, TypeError):
            return None  # the field check reports it
        found = new_problems(data, after, catalog, locs)
        if not found:
            return None
        p = found[0]
        return p.message + (f" ({p.hint})" if p.hint else "")

    return check


def all_of(*checks: Check) -> Check:
    def check(answer: str) -> str | None:
        for c in checks:
            problem = c(answer)
            if problem is not None:
                return problem
        return None

    return check


def optional(check: Check) -> Check:
    """An empty answer means 'not set' and is always fine."""
    return lambda answer: None if not answer.strip() else check(answer.strip())


def field_check(model: type[BaseModel], key: str, base: Data | None = None,
                convert: Callable[[str], Any] = str) -> Check:
    def check(answer: str) -> str | None:
        try:
            value = convert(answer.strip())
        except ValueError:
            return f"{answer!r} is not a number"
        return field_problem(model, key, value, base)

    return check


def port_number(answer: str) -> int:
    return int(answer.strip())


def check_env_name(answer: str) -> str | None:
    if not _ENV_NAME.match(answer.strip()):
        return "an environment variable name: letters, digits and '_', not starting with a digit"
    return None


def check_nonempty(answer: str) -> str | None:
    return None if answer.strip() else "an answer is needed"


def check_https(answer: str) -> str | None:
    return None if re.match(r"^https://[^\s/]+", answer.strip()) else "an https:// URL"


def split_list(answer: str) -> list[str]:
    return [part.strip() for part in answer.split(",") if part.strip()]


def list_check(check: Check) -> Check:
    def each(answer: str) -> str | None:
        for part in split_list(answer):
            problem = check(part)
            if problem is not None:
                return f"{part}: {problem}"
        return None

    return each


def check_dns_label(answer: str) -> str | None:
    return field_problem(Metadata, "name", answer)


def set_in(d: Data, path: Sequence[str], value: Any) -> None:
    """Set a nested key; None removes it (unset = the default)."""
    for part in path[:-1]:
        d = d.setdefault(part, {})
    if value is None or value == "":
        d.pop(path[-1], None)
    else:
        d[path[-1]] = value


def get_in(d: Data, path: Sequence[str], default: Any = None) -> Any:
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def tidy(d: Data, path: Sequence[str]) -> None:
    """Drop empty mappings along path (bottom up), so an untouched section is not written."""
    for n in range(len(path), 0, -1):
        parent = get_in(d, path[: n - 1]) if n > 1 else d
        if isinstance(parent, dict) and parent.get(path[n - 1]) in ({}, None):
            parent.pop(path[n - 1], None)

