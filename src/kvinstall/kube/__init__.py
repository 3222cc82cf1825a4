"""The apply engine: server-side apply with an ApplySet inventory, exact live drift, readiness waits."""

from kvinstall.kube.apply import (
    ApplyFailed,
    ApplyPlan,
    ApplyResult,
    PlanItem,
    PruneItem,
    apply_objects,
    execute,
    plan_apply,
)
from kvinstall.kube.client import ApiError, Kube, Resource
from kvinstall.kube.inventory import ApplySetRef, applyset_id
from kvinstall.kube.wait import is_ready, wait_ready

__all__ = [
    "ApiError",
    "ApplyFailed",
    "ApplyPlan",
    "ApplyResult",
    "ApplySetRef",
    "Kube",
    "PlanItem",
    "PruneItem",
    "Resource",
    "apply_objects",
    "applyset_id",
    "execute",
    "is_ready",
    "plan_apply",
    "wait_ready",
]
