"""Plan and execute a server-side apply of a set of objects, kept in an ApplySet.

`plan_apply` only reads (plus dry-run applies where a plain comparison cannot decide): it lists
the ApplySet's members per kind with the part-of label selector, compares each desired object with
its live counterpart exactly (see drift.py) and lists members that left the set. `execute` writes
only what the plan says changed, in order: CRDs (then Established), Namespaces, the other objects
concurrently, custom resources last; then prunes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from kvinstall.errors import ClusterError, KvError
from kvinstall.kube import drift
from kvinstall.kube.client import (
    DeletedKey,
    Kube,
    Resource,
    deleted_key,
    describe,
    describe_obj,
    split_api_version,
)
from kvinstall.kube.inventory import (
    PART_OF_LABEL,
    ApplySetRef,
    group_kind,
    parent_is_current,
    parent_object,
    recorded,
    resolve_group_kind,
)
from kvinstall.kube.wait import wait_ready
from kvinstall.model import OWN_ANNOTATION, KubeObject, ReadinessRule

Action = Literal["create", "update", "unchanged"]
Phase = Literal["crd", "namespace", "object", "custom"]
PHASES: tuple[Phase, ...] = ("crd", "namespace", "object", "custom")
PROTECTED_KINDS = frozenset({"CustomResourceDefinition.apiextensions.k8s.io", "Namespace"})
# Groups served by kube-apiserver itself; objects of any other group are custom resources.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)

Event = dict[str, Any]


@dataclass
class PlanItem:
    obj: KubeObject  # exactly what will be applied (part-of label added; spec only for operator CRs)
    action: Action
    phase: Phase
    force: bool  # only for objects kvinstall owns (or creates)
    spec_only: bool = False
    changes: list[drift.FieldChange] = field(default_factory=list)
    decided_by: Literal["compare", "dry-run", "absent"] = "compare"

    @property
    def ref(self) -> str:
        return describe_obj(self.obj)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.ref,
            "action": self.action,
            "specOnly": self.spec_only,
            "decidedBy": self.decided_by,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class PruneItem:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @property
    def ref(self) -> str:
        return describe(self.api_version, self.kind, self.name, self.namespace)

    @property
    def group_kind(self) -> str:
        group, _ = split_api_version(self.api_version)
        return f"{self.kind}.{group}" if group else self.kind


@dataclass
class ApplyPlan:
    applyset: ApplySetRef
    items: list[PlanItem]
    prune: list[PruneItem]
    # Members that left the set but are CRDs or Namespaces, kept without the explicit flag.
    prune_blocked: list[PruneItem]
    parent_live: KubeObject | None
    group_kinds: set[str]
    namespaces: set[str]

    @property
    def changed(self) -> list[PlanItem]:
        return [i for i in self.items if i.action != "unchanged"]

    @property
    def has_changes(self) -> bool:
        return bool(self.changed or self.prune)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applyset": {
                "name": self.applyset.name,
                "namespace": self.applyset.namespace,
                "kind": self.applyset.kind,
                "id": self.applyset.id,
            },
            "objects": [i.to_dict() for i in self.items],
            "prune": [p.ref for p in self.prune],
            "pruneBlocked": [p.ref for p in self.prune_blocked],
        }


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    writes: int = 0  # write requests this execution sent


class ApplyFailed(ClusterError):
    """Some objects failed; `failures` maps each object to the server's message. The others were applied."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = "\n  ".join(f"{ref}: {msg}" for ref, msg in sorted(failures.items()))
        super().__init__(
            f"{len(failures)} object(s) failed:\n  {lines}",
            where=next(iter(failures)) if len(failures) == 1 else None,
        )


def _key(gk: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return gk, namespace or "", name


def _crd_resources(objects: Iterable[KubeObject]) -> dict[str, tuple[str, bool]]:
    """group kind -> (plural, namespaced) for the CRDs in the desired set (their kinds may not be
    served yet when planning)."""
    out: dict[str, tuple[str, bool]] = {}
    for o in objects:
        if o.get("kind") == "CustomResourceDefinition":
            spec = o.get("spec") or {}
            names = spec.get("names") or {}
            if names.get("kind") and spec.get("group"):
                out[f"{names['kind']}.{spec['group']}"] = (
                    names.get("plural", ""),
                    spec.get("scope") == "Namespaced",
                )
    return out


def _phase(obj: KubeObject, crd_kinds: set[str]) -> Phase:
    gk = group_kind(obj)
    if gk == "CustomResourceDefinition.apiextensions.k8s.io":
        return "crd"
    if gk == "Namespace":
        return "namespace"
    group, _ = split_api_version(obj["apiVersion"])
    return "custom" if gk in crd_kinds or group not in BUILTIN_GROUPS else "object"


def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="kvinstall-apply")


def _prepare(
    obj: KubeObject, namespaced: bool, ref: ApplySetRef, spec_only_kinds: frozenset[str]
) -> tuple[KubeObject, bool]:
    """The object as it will be applied, and whether kvinstall owns only its spec."""
    o = drift.fold_string_data(drift.strip_server_fields(obj))
    meta = o.setdefault("metadata", {})
    if meta.get("creationTimestamp") is None:
        meta.pop("creationTimestamp", None)
    annotations = meta.get("annotations") or {}
    own = annotations.pop(OWN_ANNOTATION, None)
    if "annotations" in meta and not annotations:
        meta.pop("annotations")
    is_spec_only = own == "spec" or group_kind(o) in spec_only_kinds
    if namespaced:
        meta.setdefault("namespace", "default")
    else:
        meta.pop("namespace", None)
    meta.setdefault("labels", {})[PART_OF_LABEL] = ref.id
    if is_spec_only:
        o = drift.spec_only(o)
    return o, is_spec_only


def plan_apply(
    kube: Kube,
    applyset: ApplySetRef,
    objects: list[KubeObject],
    *,
    prune: bool = True,
    prune_protected: bool = False,
    spec_only_kinds: Iterable[str] = (),
    concurrency: int = 8,
) -> ApplyPlan:
    """Observe the live cluster and decide, per object, create / update (with a field-level diff,
    Secret data redacted) / unchanged, and which ApplySet members to prune."""
    sok = frozenset(spec_only_kinds)
    crds = _crd_resources(objects)
    errors: dict[str, str] = {}
    prepared: list[tuple[KubeObject, bool, Resource | None]] = []
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        try:
            api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        except (KeyError, TypeError) as exc:
            raise ClusterError(
                "object without apiVersion, kind or metadata.name", where=str(obj)[:120]
            ) from exc
        gk = group_kind(obj)
        res = kube.try_resource(api_version, kind)
        if res is None and gk not in crds:
            errors[describe_obj(obj)] = f"the cluster does not serve kind {kind} in {api_version}"
            continue
        namespaced = res.namespaced if res is not None else crds[gk][1]
        o, so = _prepare(obj, namespaced, applyset, sok)
        k = _key(gk, o["metadata"].get("namespace"), name)
        if k in seen:
            errors[describe_obj(o)] = "appears twice in the desired objects"
            continue
        seen.add(k)
        prepared.append((o, so, res))
    if errors:
        raise ApplyFailed(errors)

    parent_live = kube.get("v1", applyset.kind, applyset.name, applyset.namespace)
    rec_gks, _ = recorded(parent_live)
    desired_gks = {group_kind(o) for o, _, _ in prepared}
    desired_ns = {o["metadata"]["namespace"] for o, _, _ in prepared if o["metadata"].get("namespace")}

    # One LIST per kind (all namespaces, part-of selector) instead of a GET per object.
    to_list: dict[str, Resource] = {}
    for o, _, res in prepared:
        if res is not None:
            to_list[group_kind(o)] = res
    with _pool(concurrency) as pool:
        if prune:
            extra = sorted(rec_gks - set(to_list))
            for gk, r in zip(extra, pool.map(lambda g: resolve_group_kind(kube, g), extra), strict=True):
                if r is not None:
                    to_list[gk] = r
        selector = f"{PART_OF_LABEL}={applyset.id}"
        listed = list(
            pool.map(lambda r: kube.list(r.api_version, r.kind, label_selector=selector), to_list.values())
        )
    live: dict[tuple[str, str, str], KubeObject] = {}
    for gk, members in zip(to_list, listed, strict=True):
        for it in members:
            m = it["metadata"]
            live[_key(gk, m.get("namespace"), m["name"])] = it

    # Desired objects that are not members yet may still exist (adopted, or their label removed).
    # Where many are missing in one namespace (a first apply), one unfiltered LIST beats a GET each.
    missing: dict[tuple[str, str], list[Resource]] = {}
    for o, _, res in prepared:
        m = o["metadata"]
        if res is not None and _key(group_kind(o), m.get("namespace"), m["name"]) not in live:
            missing.setdefault((group_kind(o), m.get("namespace") or ""), []).append(res)
    bulk = [(gk, ns, rs[0]) for (gk, ns), rs in missing.items() if len(rs) > 3]
    with _pool(concurrency) as pool:
        found = list(pool.map(lambda b: kube.list(b[2].api_version, b[2].kind, b[1] or None), bulk))
    absent: set[tuple[str, str, str]] = set()
    for (gk, ns, _), objs in zip(bulk, found, strict=True):
        names = {it["metadata"]["name"]: it for it in objs}
        for o, _, _ in prepared:
            m = o["metadata"]
            if group_kind(o) == gk and (m.get("namespace") or "") == ns:
                k = _key(gk, m.get("namespace"), m["name"])
                if k in live:
                    continue
                if m["name"] in names:
                    live[k] = names[m["name"]]
                else:
                    absent.add(k)

    crd_kinds = set(crds)

    def decide(entry: tuple[KubeObject, bool, Resource | None]) -> PlanItem:
        o, so, res = entry
        meta = o["metadata"]
        k = _key(group_kind(o), meta.get("namespace"), meta["name"])
        phase = _phase(o, crd_kinds)
        cur = live.get(k)
        if cur is None and res is not None and k not in absent:
            # Not a member (yet): it may still exist, e.g. its part-of label was removed.
            cur = kube.get(o["apiVersion"], o["kind"], meta["name"], meta.get("namespace"))
        if cur is None:
            return PlanItem(o, "create", phase, force=True, spec_only=so, decided_by="absent")
        labels = (cur.get("metadata") or {}).get("labels") or {}
        owned = labels.get(PART_OF_LABEL) == applyset.id or drift.managed_fieldset(cur) is not None
        cmp = drift.compare(o, cur, builtin=phase != "custom")
        by: Literal["compare", "dry-run"] = "compare"
        if cmp.verdict == "uncertain":
            result = kube.apply(o, force=owned, dry_run=True)
            cmp = drift.compare_dry_run(result, cur)
            by = "dry-run"
        action: Action = "unchanged" if cmp.verdict == "unchanged" else "update"
        return PlanItem(
            o,
            action,
            phase,
            force=owned,
            spec_only=so,
            changes=drift.redact(o["kind"], cmp.changes),
            decided_by=by,
        )

    failures: dict[str, str] = {}
    items: list[PlanItem] = []
    with _pool(concurrency) as pool:
        futures = [(o, pool.submit(decide, (o, so, res))) for o, so, res in prepared]
        for o, fut in futures:
            try:
                items.append(fut.result())
            except KvError as e:
                failures[describe_obj(o)] = e.message
    if failures:
        raise ApplyFailed(failures)

    wanted = {
        _key(group_kind(i.obj), i.obj["metadata"].get("namespace"), i.obj["metadata"]["name"]) for i in items
    }
    to_prune: list[PruneItem] = []
    blocked: list[PruneItem] = []
    if prune:
        for k, cur in sorted(live.items()):
            if k in wanted:
                continue
            m = cur["metadata"]
            if m.get("deletionTimestamp"):
                continue  # already being deleted (finalizers pending): a second DELETE changes nothing
            p = PruneItem(cur["apiVersion"], cur["kind"], m["name"], m.get("namespace"))
            (blocked if p.group_kind in PROTECTED_KINDS and not prune_protected else to_prune).append(p)
    return ApplyPlan(
        applyset=applyset,
        items=items,
        prune=to_prune,
        prune_blocked=blocked,
        parent_live=parent_live,
        group_kinds=desired_gks | {p.group_kind for p in blocked},
        namespaces=desired_ns | {p.namespace for p in blocked if p.namespace},
    )


def _ensure_parent(
    kube: Kube, plan: ApplyPlan, gks: set[str], namespaces: set[str], live: KubeObject | None
) -> KubeObject | None:
    """Apply the parent when its label/annotations differ; returns the parent as it now is."""
    desired = parent_object(plan.applyset, gks, namespaces)
    if parent_is_current(live, desired):
        return live
    if live is None and kube.get("v1", "Namespace", plan.applyset.namespace) is None:
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.applyset.namespace}},
            force=True,
        )
    return kube.apply(desired, force=True)


def _wait_established(kube: Kube, crds: list[PlanItem], timeout: float) -> None:
    """Until every CRD is Established. The apiserver lists a CRD's kind in discovery exactly when it
    is (apiextensions' discovery controller skips the others), so discovery is polled: a few small
    lists, where GETs of the CRDs themselves (Kyverno's are megabytes each) would keep a busy
    apiserver from establishing them. On timeout the CRDs' own conditions say why."""
    if not crds:
        return
    pending: set[tuple[str, str]] = set()
    for i in crds:
        spec = i.obj.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind", "")
        for v in spec.get("versions") or []:
            if v.get("served", True):
                pending.add((f"{spec.get('group')}/{v.get('name')}", kind))
    end = time.monotonic() + timeout
    interval = 0.1
    while True:
        for api_version, kind in sorted(pending):
            kube.invalidate_discovery(api_version)
            if kube.try_resource(api_version, kind) is not None:
                pending.discard((api_version, kind))
        if not pending:
            return
        if time.monotonic() >= end:
            rules = [
                ReadinessRule("apiextensions.k8s.io/v1", "CustomResourceDefinition", i.obj["metadata"]["name"])
                for i in crds
            ]
            wait_ready(kube, rules, 0)  # names each CRD not Established and its condition
            return  # Established after all (discovery lagged behind the condition)
        time.sleep(min(interval, max(0.0, end - time.monotonic())))
        interval = min(interval * 1.5, 2.0)


def execute(
    kube: Kube,
    plan: ApplyPlan,
    *,
    on_event: Callable[[Event], None] | None = None,
    prune_hook: Callable[[Kube, list[PruneItem], Callable[[], None]], None] | None = None,
    concurrency: int = 8,
    crd_timeout: float = 300.0,  # large CRDs (Kyverno's) take a busy apiserver a while
) -> ApplyResult:
    """Apply what the plan says changed (nothing else), in order, then prune.

    `prune_hook(kube, items, delete_rest)` lets a component remove members in its safe order; it
    calls `delete_rest()` for whatever is left (called again afterwards in any case, harmlessly)."""
    emit = on_event or (lambda e: None)
    lock = threading.Lock()
    writes_before = kube.write_count()
    result = ApplyResult(unchanged=sum(1 for i in plan.items if i.action == "unchanged"))
    failures: dict[str, str] = {}

    rec_gks, rec_ns = recorded(plan.parent_live)
    # Before any member is written the parent must already name every kind and namespace in use.
    parent = _ensure_parent(
        kube, plan, plan.group_kinds | rec_gks, plan.namespaces | rec_ns, plan.parent_live
    )

    def apply_one(item: PlanItem) -> None:
        try:
            if item.phase == "custom":
                kube.resource(item.obj["apiVersion"], item.obj["kind"], wait=30)
            kube.apply(item.obj, force=item.force)
        except KvError as e:
            with lock:
                failures[item.ref] = e.message
            emit({"event": "failed", "object": item.ref, "message": e.message})
            return
        with lock:
            (result.created if item.action == "create" else result.updated).append(item.ref)
        emit({"event": item.action, "object": item.ref})

    with _pool(concurrency) as pool:
        for phase in PHASES:
            wave = [i for i in plan.items if i.phase == phase and i.action != "unchanged"]
            if not wave:
                continue
            emit({"event": "wave", "phase": phase, "count": len(wave)})
            list(pool.map(apply_one, wave))
            if phase == "crd":
                applied = [i for i in wave if i.ref not in failures]
                try:
                    _wait_established(kube, applied, crd_timeout)
                except KvError as e:
                    failures["CustomResourceDefinitions"] = e.message
        if failures:
            raise ApplyFailed(failures)  # nothing is pruned after an incomplete apply

        if plan.prune:
            order = {"custom": 0, "object": 1, "namespace": 2, "crd": 3}

            def prune_phase(p: PruneItem) -> int:
                if p.group_kind == "Namespace":
                    return order["namespace"]
                if p.group_kind == "CustomResourceDefinition.apiextensions.k8s.io":
                    return order["crd"]
                return (
                    order["custom"]
                    if split_api_version(p.api_version)[0] not in BUILTIN_GROUPS
                    else order["object"]
                )

            done: set[PruneItem] = set()
            taken: set[DeletedKey] = set()  # what the component's removal hook deleted itself

            def delete_one(p: PruneItem) -> None:
                if p in done:
                    return
                try:
                    # Never a second DELETE for what the hook already removed (it would 404).
                    if deleted_key(p.api_version, p.kind, p.name, p.namespace) not in taken:
                        kube.delete(p.api_version, p.kind, p.name, p.namespace)
                except KvError as e:
                    with lock:
                        failures[p.ref] = e.message
                    return
                with lock:
                    done.add(p)
                    result.pruned.append(p.ref)
                emit({"event": "pruned", "object": p.ref})

            def delete_rest() -> None:
                for n in sorted(set(order.values())):
                    list(pool.map(delete_one, [p for p in plan.prune if prune_phase(p) == n]))

            if prune_hook is not None:
                with kube.recording_deletes(taken):
                    prune_hook(kube, list(plan.prune), delete_rest)
            delete_rest()
            if failures:
                raise ApplyFailed(failures)

    # Shrink the parent to what is now in the set.
    _ensure_parent(kube, plan, plan.group_kinds, plan.namespaces, parent)
    result.writes = kube.write_count() - writes_before
    return result


def apply_objects(
    kube: Kube, applyset: ApplySetRef, objects: list[KubeObject], *, prune: bool = True, **kw: Any
) -> tuple[ApplyPlan, ApplyResult]:
    """plan_apply + execute in one call (tests, benchmarks, callers that need no confirmation)."""
    plan = plan_apply(kube, applyset, objects, prune=prune, **kw)
    return plan, execute(kube, plan)
