"""The inventory of applied objects, kept with the Kubernetes ApplySet convention (KEP-3659), so
objects that left the desired set can be found and pruned, and any tool (kubectl included) can
read which objects kvinstall manages.

The parent is a Secret (or ConfigMap) carrying the label `applyset.kubernetes.io/id` and the
annotations `applyset.kubernetes.io/tooling`, `.../contains-group-kinds` and
`.../additional-namespaces`; every member carries the label `applyset.kubernetes.io/part-of: <id>`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvinstall import __version__

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube, Resource

ID_LABEL = "applyset.kubernetes.io/id"
PART_OF_LABEL = "applyset.kubernetes.io/part-of"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
GROUP_KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOLING = f"kvinstall/{__version__}"
DEFAULT_NAMESPACE = "kvinstall-system"


@dataclass(frozen=True)
class ApplySetRef:
    """Names the ApplySet parent object. One ApplySet per component (name = component name)."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    kind: str = "Secret"  # or "ConfigMap"; both core/v1

    @property
    def id(self) -> str:
        return applyset_id(self.name, self.namespace, self.kind, "")


def applyset_id(name: str, namespace: str, kind: str, group: str) -> str:
    """The ApplySet id of KEP-3659: applyset-<base64url(sha256(name.namespace.kind.group))>-v1."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"


def group_kind(obj: dict[str, Any]) -> str:
    """ "Kind.group", or "Kind" for the core group: the form of contains-group-kinds."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{obj['kind']}.{group}" if group else str(obj["kind"])


def split_group_kind(gk: str) -> tuple[str, str]:
    kind, _, group = gk.partition(".")
    return group, kind


def parse_list(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def parent_object(ref: ApplySetRef, group_kinds: set[str], namespaces: set[str]) -> dict[str, Any]:
    """The desired parent object (what kvinstall applies) for these members."""
    return {
        "apiVersion": "v1",
        "kind": ref.kind,
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": {ID_LABEL: ref.id},
            "annotations": {
                TOOLING_ANNOTATION: TOOLING,
                GROUP_KINDS_ANNOTATION: ",".join(sorted(group_kinds)),
                NAMESPACES_ANNOTATION: ",".join(sorted(namespaces - {ref.namespace})),
            },
        },
    }


def parent_is_current(live: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """True when the live parent already carries exactly the desired label and annotations."""
    if live is None:
        return False
    lmeta, dmeta = live.get("metadata") or {}, desired["metadata"]
    labels, annotations = lmeta.get("labels") or {}, lmeta.get("annotations") or {}
    return all(labels.get(k) == v for k, v in dmeta["labels"].items()) and all(
        annotations.get(k, "") == v for k, v in dmeta["annotations"].items()
    )


def recorded(live_parent: dict[str, Any] | None) -> tuple[set[str], set[str]]:
    """(group kinds, additional namespaces) the live parent records."""
    if live_parent is None:
        return set(), set()
    ann = (live_parent.get("metadata") or {}).get("annotations") or {}
    return parse_list(ann.get(GROUP_KINDS_ANNOTATION)), parse_list(ann.get(NAMESPACES_ANNOTATION))


def resolve_group_kind(kube: Kube, gk: str) -> Resource | None:
    """The preferred served resource for a group kind, or None when the cluster no longer serves it
    (e.g. its CRD was deleted: then there are no members of it left to prune)."""
    group, kind = split_group_kind(gk)
    if not group:
        return kube.try_resource("v1", kind)
    resp = kube.request("GET", f"/apis/{group}", allow=(404,), where=f"discovery {group}")
    if resp.status_code == 404:
        return None
    body = resp.json()
    versions = [body.get("preferredVersion", {}).get("groupVersion")] + [
        v.get("groupVersion") for v in body.get("versions") or []
    ]
    for gv in versions:
        if gv and (res := kube.try_resource(gv, kind)) is not None:
            return res
    return None
