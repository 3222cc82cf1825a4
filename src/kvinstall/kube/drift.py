"""Exact drift detection: would a server-side apply of the desired object change the live one?

Pure functions over plain dicts. The decision uses the live object and kvinstall's own entry in
its managedFields (the set of fields kvinstall owns):

- every field of the desired object equals the live value, and
- kvinstall owns exactly the fields of the desired object (no more: an apply would remove the
  extra ones; no less: another manager took a field over, e.g. `kubectl edit` or `kubectl scale`,
  and the apply would take it back).

When both hold, the apply would change nothing: the object is unchanged and is not written.
Where a plain comparison cannot decide (the server may have normalised or defaulted a value:
"0.5" CPU is stored as "500m"), the verdict is "uncertain" and the caller asks the server with a
dry-run apply, then compares that result with the live object ignoring server-managed fields.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

MANAGER = "kvinstall"
REDACTED = "(redacted)"
# Set by the server on every write; never a difference kvinstall could cause or repair.
SERVER_METADATA = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp", "selfLink")
IDENTITY = ("apiVersion", "kind")


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()
# Marks "inside a field kvinstall owns atomically": the whole value is replaced on apply.
_ATOMIC: Any = object()
# Defaults the server fills into atomic structs of built-in kinds, by the struct's field name:
# an env var's `valueFrom.fieldRef` (ObjectFieldSelector) is stored with apiVersion v1.
_ATOMIC_DEFAULTS: dict[str, dict[str, Any]] = {"fieldRef": {"apiVersion": "v1"}}
# Defaults the server fills into each element of an atomic list of built-in kinds, by the list's
# path: a webhook rule's `scope` ("*") in admission webhook configurations.
_ATOMIC_ITEM_DEFAULTS: tuple[tuple[re.Pattern[str], dict[str, Any]], ...] = (
    (re.compile(r"(^|\.)webhooks\[[^\]]*\]\.rules$"), {"scope": "*"}),
)


@dataclass(frozen=True)
class FieldChange:
    """One field-level difference: `before` is the live value, `after` what the apply makes it."""

    path: str
    op: Literal["add", "remove", "change", "owner"]
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "op": self.op}
        if self.op in ("remove", "change"):
            d["before"] = self.before
        if self.op in ("add", "change"):
            d["after"] = self.after
        return d


@dataclass
class Comparison:
    verdict: Literal["unchanged", "changed", "uncertain"]
    changes: list[FieldChange] = field(default_factory=list)


# ---- managedFields ----------------------------------------------------------------------------


def managed_fieldset(live: dict[str, Any], manager: str = MANAGER) -> dict[str, Any] | None:
    """The union of the field sets `manager` owns through Apply on the main resource, or None."""
    found: dict[str, Any] | None = None
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply" or entry.get("subresource"):
            continue
        found = _merge_sets(found or {}, entry.get("fieldsV1") or {})
    return found


def _merge_sets(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_sets(out[k], v) if k in out else v
    return out


# ---- preparing objects ------------------------------------------------------------------------


def strip_server_fields(obj: dict[str, Any], *, keep_status: bool = False) -> dict[str, Any]:
    """A copy without the fields the server manages (and without status, unless asked)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for k in SERVER_METADATA:
        meta.pop(k, None)
    if not keep_status:
        out.pop("status", None)
    return out


def spec_only(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an operator's custom resource kvinstall owns: identity, labels/annotations, spec."""
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta},
    }
    if "spec" in obj:
        out["spec"] = copy.deepcopy(obj["spec"])
    return out


def fold_string_data(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret's write-only `stringData` folded into `data` (base64), as the server stores it, so the
    desired object compares with the live one."""
    if obj.get("kind") != "Secret" or not obj.get("stringData"):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for k, v in out.pop("stringData").items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    out["data"] = data
    return out


_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$"
)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
# Paths of built-in objects whose values are resource.Quantity: the server stores them canonically.
_QUANTITY_PATH = re.compile(
    r"(^|\.)(resources\.(requests|limits|claims)|spec\.(hard|limits\[[^]]*\]\.\w+)|overhead)\.[^.]+$"
)


def parse_quantity(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return Decimal(str(v))
    if not isinstance(v, str) or not (m := _QUANTITY.match(v)):
        return None
    try:
        num = Decimal(m.group(1))
        if m.group(2):
            return num * (Decimal(10) ** int(m.group(2)[1:]))
        return num * _SUFFIX[m.group(3) or ""]
    except (InvalidOperation, ValueError):
        return None


def same_quantity(path: str, a: Any, b: Any) -> bool:
    """True when `a` and `b` are the same quantity at a quantity path ("0.5" CPU is stored as "500m")."""
    if not _QUANTITY_PATH.search(path):
        return False
    qa, qb = parse_quantity(a), parse_quantity(b)
    return qa is not None and qa == qb


# ---- comparison -------------------------------------------------------------------------------


def _eq(a: Any, b: Any) -> bool:
    # JSON equality: bool is not a number (Python says True == 1), ints and floats compare by value.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _deep_eq(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_deep_eq(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_deep_eq(x, y) for x, y in zip(a, b, strict=True))
    return _eq(a, b)


def _subset(d: Any, live: Any) -> bool:
    """True when every field of `d` is present in `live` with an equal value."""
    if isinstance(d, dict):
        return isinstance(live, dict) and all(k in live and _subset(v, live[k]) for k, v in d.items())
    if isinstance(d, list):
        return (
            isinstance(live, list)
            and len(d) == len(live)
            and all(_subset(x, y) for x, y in zip(d, live, strict=True))
        )
    return _eq(d, live)


def _is_zero(v: Any) -> bool:
    return v is None or v is False or (not isinstance(v, bool) and v in (0, "")) or v == [] or v == {}


def _seg(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _idx(path: str, i: int, elem: Any) -> str:
    if isinstance(elem, dict) and isinstance(elem.get("name"), str):
        return f"{path}[name={elem['name']}]"
    return f"{path}[{i}]"


class _Walk:
    def __init__(self, typed: bool) -> None:
        self.changes: list[FieldChange] = []
        self.uncertain = False
        self.typed = typed  # a built-in kind: the server normalises quantities

    def differ(self, path: str, before: Any, after: Any, owned: bool = True) -> None:
        # A value differs. Where kvinstall owns the field this is real drift or the server's
        # normalisation of the same value: undecided. Where another manager took the field over,
        # the apply takes it back, a write in any case: decided.
        if owned:
            self.uncertain = True
        if before is MISSING and isinstance(after, dict) and after:
            self.changes.extend(diff_values(path, {}, after))  # one "add" per leaf
            return
        op: Literal["add", "change"] = "add" if before is MISSING else "change"
        self.changes.append(FieldChange(path, op, None if before is MISSING else before, after))

    def owner(self, path: str) -> None:
        self.changes.append(FieldChange(path, "owner"))

    def removed(self, path: str, before: Any) -> None:
        self.changes.append(FieldChange(path, "remove", None if before is MISSING else before))

    def node(self, path: str, d: Any, live: Any, f: Any, implied: frozenset[str] = frozenset()) -> None:
        """Compare desired `d` with `live` under field-set node `f` (None: kvinstall owns nothing here)."""
        if live is MISSING and f is not None and _is_zero(d):
            return  # the server omits zero values ([], {}, "", 0) it stores as "unset": nothing to write
        if f is _ATOMIC or (isinstance(f, dict) and not f and isinstance(d, dict | list) and d):
            # Owned as a whole: the apply replaces it, so it must be exactly equal (once the
            # server's defaults are in).
            defaults = _ATOMIC_DEFAULTS.get(path.rsplit(".", 1)[-1]) if self.typed else None
            if defaults and isinstance(d, dict):
                d = {**defaults, **d}
            if self.typed and isinstance(d, list):
                for pattern, item_defaults in _ATOMIC_ITEM_DEFAULTS:
                    if pattern.search(path):
                        d = [{**item_defaults, **x} if isinstance(x, dict) else x for x in d]
            if not _deep_eq(d, live):
                self.differ(path, live, d)
            return
        if isinstance(d, dict):
            self.map(path, d, live, f, implied)
        elif isinstance(d, list):
            self.list(path, d, live, f)
        else:
            if f is None:
                self.owner(path)
            if not _eq(d, live) and not (self.typed and same_quantity(path, d, live)):
                self.differ(path, live, d, owned=f is not None)

    def map(self, path: str, d: dict[str, Any], live: Any, f: Any, implied: frozenset[str]) -> None:
        if not isinstance(live, dict):
            if live is MISSING and f is not None and not d:
                return
            self.differ(path, live, d, owned=f is not None)
            if f is None:
                self.owner(path)
            return
        for k, v in d.items():
            sub = f.get("f:" + k) if isinstance(f, dict) else None
            self.node(_seg(path, k), v, live.get(k, MISSING), sub)
        if isinstance(f, dict):
            for fk in f:
                if not fk.startswith("f:"):
                    continue
                k = fk[2:]
                if k not in d and k not in implied:
                    # kvinstall owns a field it no longer wants: the apply removes it.
                    self.removed(_seg(path, k), live.get(k, MISSING))

    def list(self, path: str, d: list[Any], live: Any, f: Any) -> None:
        if not isinstance(live, list):
            self.differ(path, live, d, owned=f is not None)
            return
        pairs = _match(d, live)
        if pairs is None:
            self.differ(path, live, d, owned=f is not None)
            return
        if not isinstance(f, dict):
            if f is None:
                self.owner(path)
            for i, lj in pairs:
                self.node(_idx(path, i, d[i]), d[i], live[lj], None)
            return
        covered: set[int] = set()
        by_live = {lj: i for i, lj in pairs}
        for fk, sub in f.items():
            if fk == ".":
                continue
            if fk.startswith("k:"):
                keys = json.loads(fk[2:])
                j: int | None = next(
                    (
                        n
                        for n, e in enumerate(live)
                        if isinstance(e, dict) and all(_eq(e.get(k, MISSING), v) for k, v in keys.items())
                    ),
                    None,
                )
                if j is None or j not in by_live:
                    self.removed(f"{path}[{fk[2:]}]", live[j] if j is not None else MISSING)
                    continue
                i = by_live[j]
                covered.add(i)
                self.node(_idx(path, i, d[i]), d[i], live[j], sub, frozenset(keys))
            elif fk.startswith("v:"):
                value = json.loads(fk[2:])
                i2 = next((n for n, e in enumerate(d) if _deep_eq(e, value)), None)
                if i2 is None:
                    self.removed(f"{path}[{fk[2:]}]", value)
                else:
                    covered.add(i2)
            else:  # "i:N" positional ownership: rare; let the server decide
                self.uncertain = True
        for i in range(len(d)):
            if i not in covered:
                self.owner(_idx(path, i, d[i]))


def _match(d: list[Any], live: list[Any]) -> list[tuple[int, int]] | None:
    """Pair each desired element with a live one holding it (in order), or None when impossible."""
    if len(d) == len(live):
        # Same length: pair by position (apply keeps the order); the walk then checks each pair
        # exactly, and a reordered list only costs a dry-run.
        return [(i, i) for i in range(len(d))]
    pairs: list[tuple[int, int]] = []
    j = 0
    for i, x in enumerate(d):
        while j < len(live) and not _subset(x, live[j]):
            j += 1
        if j == len(live):
            return None
        pairs.append((i, j))
        j += 1
    return pairs


def compare(desired: dict[str, Any], live: dict[str, Any], *, builtin: bool = True) -> Comparison:
    """Would applying `desired` (as kvinstall) change `live`? See the module doc for the rules.
    `builtin`: the kind is served by kube-apiserver's own types (quantities are normalised);
    custom resources store values as sent."""
    fs = managed_fieldset(live)
    walk = _Walk(builtin)
    d = {k: v for k, v in desired.items() if k not in IDENTITY}
    dmeta = {k: v for k, v in (d.get("metadata") or {}).items() if k not in ("name", "namespace")}
    d["metadata"] = dmeta
    if fs is None:
        walk.owner("")  # kvinstall never applied this object: the apply adopts it
    lv = {k: v for k, v in live.items() if k not in IDENTITY}
    walk.map("", d, lv, fs, frozenset())
    if fs is None:  # one "adopt" entry says it all; drop the per-field ownership noise
        walk.changes = [c for c in walk.changes if c.op != "owner" or c.path == ""]
    if walk.uncertain:
        return Comparison("uncertain", walk.changes)
    if walk.changes:
        return Comparison("changed", walk.changes)
    return Comparison("unchanged")


def compare_dry_run(result: dict[str, Any], live: dict[str, Any]) -> Comparison:
    """Compare the server's dry-run apply result with the live object, ignoring server-managed
    fields and status; ownership differences (kvinstall's field set) count as a change."""
    changes = diff_values("", strip_server_fields(live), strip_server_fields(result))
    if not changes and managed_fieldset(result) != managed_fieldset(live):
        changes = [FieldChange("metadata.managedFields", "owner")]
    return Comparison("changed" if changes else "unchanged", changes)


def diff_values(path: str, before: Any, after: Any) -> list[FieldChange]:
    """Field-level differences between two plain values."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for k in sorted(set(before) | set(after), key=str):
            if k not in after:
                if isinstance(before[k], dict) and before[k]:  # one change per leaf, not per map
                    out.extend(diff_values(_seg(path, k), before[k], {}))
                else:
                    out.append(FieldChange(_seg(path, k), "remove", before[k]))
            elif k not in before:
                if isinstance(after[k], dict) and after[k]:
                    out.extend(diff_values(_seg(path, k), {}, after[k]))
                else:
                    out.append(FieldChange(_seg(path, k), "add", None, after[k]))
            else:
                out.extend(diff_values(_seg(path, k), before[k], after[k]))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out.extend(diff_values(_idx(path, i, a), b, a))
        return out
    return [] if _deep_eq(before, after) else [FieldChange(path, "change", before, after)]


def redact(kind: str, changes: list[FieldChange]) -> list[FieldChange]:
    """Secret values never reach a plan: data/stringData (and the last-applied annotation, which
    holds them too) keep their path and operation, not their values."""
    if kind != "Secret":
        return changes
    out = []
    for c in changes:
        p = c.path
        if (
            p in ("data", "stringData")
            or p.startswith(("data.", "stringData.", "data[", "stringData["))
            or "last-applied-configuration" in p
        ):
            out.append(
                FieldChange(
                    p,
                    c.op,
                    REDACTED if c.before is not None else None,
                    REDACTED if c.after is not None else None,
                )
            )
        else:
            out.append(c)
    return out
