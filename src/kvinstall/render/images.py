"""Image references in rendered objects: find them all, and point them at the site registry (pure).

Where images live: the containers, initContainers and ephemeralContainers of every pod template
(Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob, Pod), env vars whose name ends with
`_IMAGE` (operators such as virt-operator and cdi-operator read their operand images from those),
command-line flags named `--<something>-image` (`--engine-image IMG`, `--acme-http01-solver-image=IMG`:
how longhorn-manager and cert-manager learn the images they deploy), and a few known fields
(Kube-OVN's ConfigMap `ovn-vpc-nat-config` `.data.image`).

The rewrite keeps the repository path, tag and digest and drops the upstream host, the same mapping
the mirror uses when it pushes a bundle: docker.io/kubeovn/kube-ovn:v1.16.2 -> SITE/kubeovn/kube-ovn:v1.16.2,
nginx -> SITE/library/nginx.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

from kvinstall.imageref import ReferenceError_, parse_reference, rewrite_image
from kvinstall.model import KubeObject

__all__ = ["ImageRefError", "images_in", "normalize_image", "rewrite_image", "rewrite_objects"]

_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# ConfigMaps whose data holds an image: (name, key).
_CONFIGMAP_IMAGES = {("ovn-vpc-nat-config", "image")}
# A flag that takes an image: `--engine-image IMG` or `--acme-http01-solver-image=IMG`.
_IMAGE_FLAG = re.compile(r"^--[a-z0-9][a-z0-9-]*-image$")


# One parser for image references in the whole tool: the mirror's (the same mapping push uses).
ImageRefError = ReferenceError_


def normalize_image(ref: str) -> str:
    """The fully qualified form: nginx -> docker.io/library/nginx."""
    return str(parse_reference(ref))


def image_registry(ref: str) -> str:
    return parse_reference(ref).registry


def _pod_spec(obj: KubeObject) -> dict[str, Any] | None:
    path = _POD_SPEC_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None


def _visit(obj: KubeObject, fn: Callable[[str], str]) -> None:
    """Call fn on every image reference of obj, in place (fn's result replaces the reference)."""
    spec = _pod_spec(obj)
    if spec is not None:
        for list_name in _CONTAINER_LISTS:
            for container in spec.get(list_name) or []:
                if not isinstance(container, dict):
                    continue
                if isinstance(container.get("image"), str):
                    container["image"] = fn(container["image"])
                _visit_flags(container, fn)
                for env in container.get("env") or []:
                    if (
                        isinstance(env, dict)
                        and str(env.get("name", "")).endswith("_IMAGE")
                        and isinstance(env.get("value"), str)
                        and env["value"]
                    ):
                        env["value"] = fn(env["value"])
    if obj.get("kind") == "ConfigMap":
        name = (obj.get("metadata") or {}).get("name")
        data = obj.get("data") or {}
        for cm_name, key in _CONFIGMAP_IMAGES:
            if name == cm_name and isinstance(data.get(key), str):
                data[key] = fn(data[key])


def _visit_flags(container: dict[str, Any], fn: Callable[[str], str]) -> None:
    for key in ("command", "args"):
        items = container.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, str):
                continue
            flag, eq, value = item.partition("=")
            if eq and value and _IMAGE_FLAG.match(flag):
                items[i] = f"{flag}={fn(value)}"
            elif _IMAGE_FLAG.match(item) and i + 1 < len(items):
                following = items[i + 1]
                if isinstance(following, str) and following and not following.startswith("-"):
                    items[i + 1] = fn(following)


def _iter_images(objects: list[KubeObject]) -> Iterator[str]:
    found: list[str] = []

    def record(ref: str) -> str:
        found.append(ref)
        return ref

    for obj in objects:
        _visit(obj, record)
    yield from found


def images_in(objects: list[KubeObject]) -> set[str]:
    """Every image reference in the objects, as written."""
    return set(_iter_images(objects))


def rewrite_objects(objects: list[KubeObject], site_registry: str) -> list[KubeObject]:
    """Copies of the objects with every image reference pointing at the site registry."""
    out = copy.deepcopy(objects)
    for obj in out:
        _visit(obj, lambda ref: rewrite_image(ref, site_registry))
    return out


def images_outside(objects: list[KubeObject], site_registry: str) -> set[str]:
    """Image references not served by the site registry (empty when an offline render is complete)."""
    site = site_registry.strip().rstrip("/")
    return {ref for ref in images_in(objects) if image_registry(ref) != site}
