"""Load a configuration file: YAML with positions -> validated Config, reporting ALL problems at once.

Each problem carries FILE:LINE:COL, the field path and, for misspelt keys, a did-you-mean hint.
KubeV files (`virtualization.k8c.io/v1alpha1`, `KubeVCluster`) are converted on the way in.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kvinstall.catalog import Catalog, load_catalog
from kvinstall.config import kubev
from kvinstall.config.checks import run_checks
from kvinstall.config.models import API_VERSION, KIND, Config
from kvinstall.config.positions import position, value_position, walk
from kvinstall.config.problems import Loc, Problem, parse_path
from kvinstall.errors import ConfigError, LocalIOError


@dataclass
class Loaded:
    config: Config
    warnings: list[Problem] = field(default_factory=list)
    source: str = "<config>"
    converted_from: str | None = None  # "KubeVCluster" when converted


def load_file(path: str | Path, catalog: Catalog | None = None) -> Loaded:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LocalIOError("configuration file not found", where=str(p)) from exc
    except IsADirectoryError as exc:
        raise LocalIOError("is a directory, not a configuration file", where=str(p)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalIOError(f"cannot read the configuration: {exc}", where=str(p)) from exc
    return load_text(text, source=str(p), catalog=catalog)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> ruamel round-trip tree; malformed YAML raises ConfigError pointing at the line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = [d for d in yaml.load_all(text) if d is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "malformed YAML"
        raise ConfigError(
            [Problem(f"malformed YAML: {msg}", file=source, line=line, column=col, code="yaml")]
        ) from exc
    except YAMLError as exc:
        raise ConfigError([Problem(f"malformed YAML: {exc}", file=source, code="yaml")]) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError([Problem(f"malformed YAML: {exc}", file=source, code="yaml")]) from exc
    if not docs:
        raise ConfigError([Problem("the file is empty", file=source, line=1, column=1, code="empty")])
    if len(docs) > 1:
        raise ConfigError(
            [
                Problem(
                    "the file holds several YAML documents; give exactly one", file=source, code="multi-doc"
                )
            ]
        )
    return docs[0]


def load_text(text: str, *, source: str = "<config>", catalog: Catalog | None = None) -> Loaded:
    catalog = catalog or load_catalog()
    tree = parse_yaml(text, source)
    if not isinstance(tree, dict):
        raise ConfigError(
            [Problem(f"expected a mapping at the top, found {_kind_of(tree)}", file=source, line=1, column=1)]
        )
    return load_tree(tree, source=source, catalog=catalog)


def _kind_of(node: Any) -> str:
    if isinstance(node, list):
        return "a list"
    if isinstance(node, str):
        return "a string"
    return f"a {type(node).__name__}"


def load_tree(tree: Any, *, source: str, catalog: Catalog, drop_unsupported: bool = False) -> Loaded:
    """Validate a parsed tree. A KubeV tree is converted first; its problems (found in KubeV terms)
    come first, and kvinstall's own are mapped back to the KubeV file's lines and field names.
    drop_unsupported: KubeV fields kvinstall does not provide are dropped with a warning instead of
    refused (`convert --drop-unsupported`)."""
    converted_from = None
    pre_problems: list[Problem] = []
    pathmap: dict[Loc, Loc] = {}
    rename: Callable[[str | None], str | None] = lambda text: text  # noqa: E731
    data: Any = tree
    if kubev.is_kubev(tree):
        result = kubev.convert(tree, drop_unsupported=drop_unsupported)
        data, pathmap, rename = result.data, result.pathmap, result.rename
        pre_problems = [_place(p, tree, source, {}, kubev_file=True) for p in result.problems]
        converted_from = kubev.KIND
    elif (
        isinstance(tree, dict)
        and (tree.get("apiVersion"), tree.get("kind")) != (API_VERSION, KIND)
        and "apiVersion" in tree
        and "kind" in tree
    ):
        pre_problems.append(
            Problem(
                f"unsupported apiVersion/kind {tree.get('apiVersion')}/{tree.get('kind')}",
                loc=("apiVersion",),
                hint=f"expected {API_VERSION} {KIND} (or a KubeV file: {kubev.API_VERSION} {kubev.KIND})",
                code="kind",
            )
        )

    problems = [
        p if p.file else _place(p, tree, source, pathmap) for p in pre_problems
    ]  # KubeV's are placed already
    found: list[Problem] = []
    config: Config | None = None
    plain = _plain(data)
    try:
        config = Config.model_validate(plain)
    except ValidationError as exc:
        field_problems = _from_pydantic(exc)
        found += field_problems
        # Report the cross-field problems too, in the same run: check the config without the
        # fields that failed (they fall back to their defaults), where that still makes one.
        partial = _without(plain, [p.loc for p in field_problems])
        if partial is not None:
            bad = [p.loc for p in field_problems]
            found += [
                p
                for p in run_checks(partial, catalog)
                if p.severity == "error" and not any(_overlaps(p.loc, b) for b in bad)
            ]
    if config is not None:
        found += run_checks(config, catalog)
    if converted_from:
        # A warning about kvinstall settings a KubeV file cannot hold is no use to its author.
        found = [p for p in found if p.severity == "error" or _map_loc(p.loc, pathmap) != p.loc]
    kv = converted_from is not None
    placed = [_renamed(_place(p, tree, source, pathmap, kubev_file=kv), rename) for p in found]
    if config is not None:
        placed += [_renamed(p, rename) for p in _unresolvable_secrets(config, tree, source, pathmap)]
    # Where a KubeV field is already reported, what kvinstall found there follows from it: not repeated.
    reported = [p.loc for p in problems if p.severity == "error"]
    problems += [p for p in placed if not any(_overlaps(p.loc, r) for r in reported)]
    errors = [p for p in problems if p.severity == "error"]
    if errors or config is None:
        # Warnings ride along so the user sees everything in one go.
        raise ConfigError(_sorted(problems))
    return Loaded(config=config, warnings=_sorted(problems), source=source, converted_from=converted_from)


def _without(data: Any, locs: list[Loc]) -> Config | None:
    """The config with the fields at `locs` removed, or None when that is no valid config either."""
    import copy

    pruned = copy.deepcopy(data)
    for loc in locs:
        parent = walk(pruned, loc[:-1]) if loc else None
        if isinstance(parent, dict) and loc[-1] in parent:
            del parent[loc[-1]]
    try:
        return Config.model_validate(pruned)
    except ValidationError:
        return None


def _overlaps(a: Loc, b: Loc) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _unresolvable_secrets(config: Config, tree: Any, source: str, pathmap: dict[Loc, Loc]) -> list[Problem]:
    # An unset env var is a warning at validate time: CI may set it only for apply.
    out = []
    for path, secret in config.secrets():
        reason = secret.is_resolvable()
        if reason is not None:
            loc = parse_path(path)
            out.append(
                _place(
                    Problem(
                        f"secret not available: {reason}",
                        loc=loc,
                        severity="warning",
                        code="secret-unresolved",
                    ),
                    tree,
                    source,
                    pathmap,
                )
            )
    return out


def _renamed(p: Problem, rename: Callable[[str | None], str | None]) -> Problem:
    from dataclasses import replace

    return replace(p, message=rename(p.message) or p.message, hint=rename(p.hint))


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.path))


def _plain(node: Any) -> Any:
    """ruamel containers -> plain dict/list/str (pydantic and the checks want plain values)."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _place(
    p: Problem, tree: Any, source: str, pathmap: dict[Loc, Loc], *, kubev_file: bool = False
) -> Problem:
    if p.line is not None:
        return p
    loc = _map_loc(p.loc, pathmap)
    # Scalars point at the value (what is wrong), containers at their key (where to look).
    pos = (
        value_position(tree, loc)
        if _is_scalar_at(tree, loc) and p.code != "unknown-field"
        else position(tree, loc)
    )
    if kubev_file and loc and isinstance(tree, dict) and loc[0] not in tree:
        pos = None  # a missing top-level section has no line of its own (the first line is not it)
    line, col = pos if pos else (None, None)
    from dataclasses import replace

    # A converted (KubeV) file: name the field as the user wrote it.
    return replace(p, file=source, line=line, column=col, loc=loc)


def _is_scalar_at(tree: Any, loc: Loc) -> bool:
    return bool(loc) and walk(tree, loc) is not None and not isinstance(walk(tree, loc), (dict, list))


def _map_loc(loc: Loc, pathmap: dict[Loc, Loc]) -> Loc:
    """Converted files: map a kvinstall path back to where it came from in the KubeV file."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in pathmap:
            # What lies below a mapped field is named alike in both formats (lists, maps).
            return pathmap[loc[:n]] + loc[n:]
    return loc


_TYPE_ERRORS = (
    "_type",
    "_parsing",
    "literal_error",
    "enum",
    "bool",
    "int",
    "float",
    "string",
    "dict",
    "list",
)


def _from_pydantic(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after", "function-before"))
        )
        etype = err["type"]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        hint = None
        code = "invalid"
        if etype == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            allowed = _allowed_keys(parent)
            msg = f"unknown field {key!r}"
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or [
                a for a in allowed if a.lower() == key.lower()
            ]
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif allowed:
                hint = f"allowed here: {', '.join(sorted(allowed))}"
            code = "unknown-field"
        elif etype == "missing":
            msg = "required field is missing"
            code = "missing"
        elif etype == "literal_error":
            code = "type"
            msg = f"{msg}, got {err.get('input')!r}"
        elif any(t in etype for t in _TYPE_ERRORS):
            code = "type"
        problems.append(Problem(msg, loc=loc, hint=hint, code=code))
    return problems


def _allowed_keys(loc: Loc) -> list[str]:
    """The YAML keys allowed in the mapping at `loc` (for did-you-mean)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        target = None
        for name, info in model.model_fields.items():
            if part in (info.alias, name):
                target = info.annotation
                break
        if target is None:
            return []
        model = _unwrap(target)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Optional[X] / list[X] / Annotated[X, ...] -> X (the model a nested key lives in)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else args[0]
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            return tp
