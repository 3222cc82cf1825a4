"""Offline apply support: the completeness gate and the image reference rewrite."""

from __future__ import annotations

from collections.abc import Iterable

from kvinstall.errors import KvError
from kvinstall.mirror.copy import manifest_children
from kvinstall.mirror.refs import ReferenceError_, parse_reference, rewrite_image
from kvinstall.mirror.registry import RegistryClient

__all__ = ["check_complete", "rewrite_image"]


def check_complete(client: RegistryClient, refs: Iterable[str], *, deep: bool = False) -> list[str]:
    """The references (images or artifacts) the site registry cannot serve, each with the reason.

    A reference is looked up by its digest when it has one (a tag alone proves nothing about
    what it points to), else by its tag; the registry host in the reference is ignored (the
    client is the site registry). deep=True also proves every child manifest and blob is there.
    Registry failures other than "not found" raise RegistryError: unknown is not complete.
    """
    missing: list[str] = []
    for text in dict.fromkeys(refs):
        try:
            ref = parse_reference(text)
        except ReferenceError_ as exc:
            missing.append(f"{text}: {exc}")
            continue
        info = client.head_manifest(ref.repository, ref.ref)
        if info is None:
            missing.append(f"{text}: manifest {ref.ref} not in {client.host}/{ref.repository}")
            continue
        if ref.digest and ref.tag:
            tagged = client.head_manifest(ref.repository, ref.tag)
            if tagged is None:
                missing.append(f"{text}: tag {ref.tag} not in {client.host}/{ref.repository}")
                continue
        if deep:
            gap = _first_gap(client, ref.repository, ref.ref)
            if gap:
                missing.append(f"{text}: {gap}")
    return missing


def _first_gap(client: RegistryClient, repository: str, ref: str) -> str | None:
    try:
        data, media_type, _ = client.get_manifest(repository, ref)
    except KvError as exc:
        return exc.message
    children, blobs = manifest_children(data, media_type)
    for c in children:
        gap = _first_gap(client, repository, c["digest"])
        if gap:
            return gap
    for b in blobs:
        if client.blob_size(repository, b["digest"]) is None:
            return f"blob {b['digest']} not in {client.host}/{repository}"
    return None
