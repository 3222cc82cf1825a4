"""The baseline VM policy set (manifests/policies/*.yaml), Kyverno ValidatingPolicy form.

The manifests are ours and static; this module only adjusts them structurally (never by text):
`validationActions` from `components.kyverno.policies.mode` (Audit -> [Audit], Enforce -> [Deny]),
and for the host-device policy the allowed namespaces join the excluded ones. A policy's id is its
metadata.name; ids in `components.kyverno.policies.disabled` are left out. docs/policies.md
documents each policy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import Cluster
from kvinstall.model import Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered
from kvinstall.render.env import load_manifest

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

POLICY_API = "policies.kyverno.io/v1"
POLICY_KIND = "ValidatingPolicy"
HOST_DEVICES_POLICY = "kvinstall-vm-host-devices"
ALWAYS_EXCLUDED = ("kube-system",)


@lru_cache(maxsize=1)
def baseline() -> tuple[KubeObject, ...]:
    """Every baseline policy as shipped, sorted by id."""
    folder = resources.files("kvinstall.manifests").joinpath("policies")
    found: list[KubeObject] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            found.extend(load_manifest(f"policies/{entry.name}"))
    return tuple(sorted(found, key=lambda p: str(p["metadata"]["name"])))


def policy_ids() -> list[str]:
    return [str(p["metadata"]["name"]) for p in baseline()]


def _exclude_namespaces(policy: KubeObject, namespaces: list[str]) -> None:
    selector = policy["spec"]["matchConstraints"].setdefault("namespaceSelector", {})
    exprs: list[dict[str, Any]] = selector.setdefault("matchExpressions", [])
    for expr in exprs:
        if expr.get("key") == "kubernetes.io/metadata.name" and expr.get("operator") == "NotIn":
            expr["values"] = sorted(set(expr.get("values", [])) | set(namespaces))
            return
    exprs.append(
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(set(namespaces))}
    )


def render_policies(config: Config) -> list[KubeObject]:
    """The policies to apply for this config (pure)."""
    settings = config.components.kyverno.policies
    actions = ["Deny"] if settings.mode == "Enforce" else ["Audit"]
    disabled = set(settings.disabled)
    out: list[KubeObject] = []
    for shipped in baseline():
        if shipped["metadata"]["name"] in disabled:
            continue
        policy = copy.deepcopy(shipped)
        policy["spec"]["validationActions"] = list(actions)
        excluded = list(ALWAYS_EXCLUDED)
        if policy["metadata"]["name"] == HOST_DEVICES_POLICY:
            excluded += settings.host_devices_namespaces
        _exclude_namespaces(policy, excluded)
        out.append(policy)
    return out


class Policies:
    name = "policies"
    title = "Baseline VM policies"
    namespace: str | None = None

    def enabled(self, config: Config) -> bool:
        return config.components.kyverno.enabled

    def version(self, config: Config) -> str:
        # Versioned with kvinstall itself: the manifests ship in the package.
        from kvinstall import __version__

        return str(__version__)

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]:
        return []

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        return []

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        unknown = sorted(set(config.components.kyverno.policies.disabled) - set(policy_ids()))
        notes = (
            [f"unknown policy ids in components.kyverno.policies.disabled: {', '.join(unknown)}"]
            if unknown
            else []
        )
        return Rendered(objects=render_policies(config), notes=notes)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        # Kyverno reports a policy ready (compiled and enforced) in .status.conditionStatus.ready.
        return [
            ReadinessRule(
                POLICY_API,
                POLICY_KIND,
                str(p["metadata"]["name"]),
                fields=(("status.conditionStatus.ready", True),),
            )
            for p in render_policies(config)
        ]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        delete_all()


COMPONENT = Policies()
