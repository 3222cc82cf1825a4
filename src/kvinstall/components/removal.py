"""Small steps component removal hooks share, over the `Cluster` slice of the apply engine.

They do what Helm hooks and upstream uninstall scripts would have done: clear finalizers whose
controller is gone, delete every object of a kind, delete workloads and wait until they are gone.
A kind the cluster does not serve (its CRD already removed, or never installed) counts as empty.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kvinstall.components.base import Cluster
from kvinstall.errors import ClusterError, ReadinessTimeout
from kvinstall.model import KubeObject


def _not_served(exc: ClusterError) -> bool:
    return getattr(exc, "status", None) == 404


def list_served(
    cluster: Cluster, api_version: str, kind: str, namespace: str | None = None
) -> list[KubeObject]:
    """The objects of a kind; [] when the cluster does not serve the kind."""
    try:
        return cluster.list(api_version, kind, namespace)
    except ClusterError as exc:
        if _not_served(exc):
            return []
        raise


def _ident(obj: KubeObject) -> tuple[str, str | None]:
    meta = obj.get("metadata") or {}
    return str(meta.get("name")), meta.get("namespace")


def clear_finalizers(cluster: Cluster, api_version: str, kind: str) -> int:
    """Remove the finalizers of every object of a kind (their controller is gone); returns how many."""
    count = 0
    for obj in list_served(cluster, api_version, kind):
        if (obj.get("metadata") or {}).get("finalizers"):
            name, namespace = _ident(obj)
            try:
                cluster.patch_merge(api_version, kind, name, {"metadata": {"finalizers": None}}, namespace)
            except ClusterError as exc:
                if not _not_served(exc):
                    raise
            count += 1
    return count


def delete_every(cluster: Cluster, api_version: str, kinds: Sequence[str], *, timeout: float = 120) -> None:
    """Delete every object of each kind, kind by kind in the order given, waiting for each kind to
    be gone. One deadline covers all kinds: objects still held by a finalizer after it (their
    controller no longer runs) get their finalizers cleared instead of waiting again."""
    deadline = time.monotonic() + timeout
    for kind in kinds:
        objs = list_served(cluster, api_version, kind)
        for obj in objs:
            name, namespace = _ident(obj)
            cluster.delete(api_version, kind, name, namespace)
        for obj in objs:
            name, namespace = _ident(obj)
            try:
                cluster.wait_deleted(
                    api_version, kind, name, namespace, timeout=max(0.0, deadline - time.monotonic())
                )
            except ReadinessTimeout:
                try:
                    cluster.patch_merge(
                        api_version, kind, name, {"metadata": {"finalizers": None}}, namespace
                    )
                except ClusterError as exc:
                    if getattr(exc, "status", None) != 404:  # gone in the meantime
                        raise
                cluster.wait_deleted(api_version, kind, name, namespace, timeout=30)


def delete_and_wait(
    cluster: Cluster, objects: Sequence[tuple[str, str, str, str | None]], *, timeout: float = 300
) -> None:
    """Delete the named objects (api_version, kind, name, namespace), then wait for each to be gone."""
    for api_version, kind, name, namespace in objects:
        try:
            cluster.delete(api_version, kind, name, namespace)
        except ClusterError as exc:
            if not _not_served(exc):
                raise
    for api_version, kind, name, namespace in objects:
        try:
            cluster.wait_deleted(api_version, kind, name, namespace, timeout=timeout)
        except ClusterError as exc:
            if not _not_served(exc):
                raise


def remove_annotations(cluster: Cluster, kind: str, prefix: str) -> None:
    """Drop every annotation starting with `prefix` from all objects of a core kind (Node, Namespace)."""
    for obj in list_served(cluster, "v1", kind):
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        gone = {k: None for k in annotations if k.startswith(prefix)}
        if gone:
            name, namespace = _ident(obj)
            cluster.patch_merge("v1", kind, name, {"metadata": {"annotations": gone}}, namespace)
