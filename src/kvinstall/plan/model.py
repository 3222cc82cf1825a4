"""The Plan: actions grouped by phase, with a versioned JSON form (the text form is rendered from it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PLAN_API_VERSION = "kvinstall.io/plan/v1"

ActionKind = Literal["create", "update", "delete", "unchanged", "run", "skip"]
CHANGE_KINDS = ("create", "update", "delete", "run")
# Phases whose "run" only checks (hosts, the site registry, the cluster after apply): they run on
# every apply and change nothing.
CHECK_PHASES = frozenset({"gate", "preflight", "verify"})


@dataclass(frozen=True)
class Action:
    action: ActionKind
    target: str  # human name: "Deployment kubevirt/virt-operator", "host cp-1 (192.0.2.10)"
    # An object's identity as apply's events name it ("Deployment.apps/kubevirt/virt-operator").
    object: str | None = None
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    reason: str | None = None
    diff: tuple[dict[str, Any], ...] = ()  # update: [{"path": "spec.replicas", "live": 0, "desired": 2}]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["apiVersion"] = d.pop("api_version")
        d["diff"] = list(self.diff)
        return {k: v for k, v in d.items() if v not in (None, [], {})}


@dataclass
class PhasePlan:
    """What one phase of apply would do (its dry run)."""

    name: str  # "gate", "preflight", "kubeone", "bootstrap", "component/kubevirt", "workspaces", "prune", "verify"
    title: str
    actions: list[Action] = field(default_factory=list)
    version: str | None = None
    images: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        """The phase will not run (its one action is a skip)."""
        return bool(self.actions) and all(a.action == "skip" for a in self.actions)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.action] = out.get(a.action, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "title": self.title}
        if self.version:
            d["version"] = self.version
        d["actions"] = [a.to_dict() for a in self.actions]
        if self.images:
            d["images"] = self.images
        if self.artifacts:
            d["artifacts"] = self.artifacts
        if self.notes:
            d["notes"] = self.notes
        return d


@dataclass
class Observed:
    """What the plan looked at; everything not observed is shown as 'to create' or 'to run'."""

    cluster: bool = False
    hosts: bool = False
    registry: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    cluster: str
    phases: list[PhasePlan]
    observed: Observed
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        total = dict.fromkeys(("create", "update", "delete", "unchanged", "run", "skip"), 0)
        for ph in self.phases:
            for k, v in ph.counts().items():
                total[k] += v
        return total

    @property
    def has_changes(self) -> bool:
        """Objects to create, update or delete, or a KubeOne run: what `--detailed-exitcode` reports
        as 2. The checks every apply runs (host preflight, the offline gate) are not changes."""
        return any(
            a.action in CHANGE_KINDS and not (a.action == "run" and ph.name in CHECK_PHASES)
            for ph in self.phases
            for a in ph.actions
        )

    def phase(self, name: str) -> PhasePlan | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": PLAN_API_VERSION,
            "cluster": self.cluster,
            "observed": asdict(self.observed),
            "summary": self.summary(),
            "hasChanges": self.has_changes,
            "phases": [p.to_dict() for p in self.phases],
            "warnings": self.warnings,
        }
