"""Offline apply support: the completeness gate and the image reference rewrite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kvinstall.catalog.packages import PackageCatalog
from kvinstall.config.models import Config
from kvinstall.errors import KvError
from kvinstall.imageref import ReferenceError_, parse_reference, rewrite_image
from kvinstall.mirror.copy import manifest_children
from kvinstall.mirror.debian import Package, Spec
from kvinstall.mirror.packages import missing_packages
from kvinstall.mirror.registry import RegistryClient

__all__ = ["bundle_package_gaps", "check_complete", "check_host_packages", "missing_host_packages", "rewrite_image"]


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


def missing_host_packages(
    needed: Mapping[str, Sequence[Spec]], available: Mapping[str, Sequence[Package]]
) -> list[str]:
    """Per OS release, the needed packages (name and version pattern) that `available` lacks."""
    out: list[str] = []
    for dist, specs in needed.items():
        if dist not in available:
            out.append(f"{dist}: no packages for this OS release")
            continue
        out += [f"{dist}: {m}" for m in missing_packages(specs, available[dist])]
    return out


def check_host_packages(config: Config, catalog: PackageCatalog) -> tuple[int, list[str]]:
    """(how many host packages the config needs, those the site package repository lacks), read from
    the repository as the hosts' apt reads it (signature and digests checked). (0, []) when the
    config has no package repository (the hosts' own sources are used)."""
    from kvinstall.mirror.aptfetch import site_packages
    from kvinstall.mirror.packages import needed_packages

    repo = config.offline.package_repository
    if repo is None:
        return 0, []
    needs = needed_packages(config, catalog)
    available: dict[str, Sequence[Package]] = {}
    for dist in needs:
        served = site_packages(
            repo.url,
            dist,
            ca_file=repo.ca_file or config.offline.ca_file,
            signing_key=repo.signing_key,
            architecture=catalog.distributions[dist].architecture,
        )
        if served:
            available[dist] = served
    missing = [
        m.replace(": no packages for this OS release", f": no repository at {repo.url}/{m.split(':')[0]}")
        for m in missing_host_packages(needs, available)
    ]
    return sum(len(s) for s in needs.values()), missing


def bundle_package_gaps(bundle: Path, config: Config, catalog: PackageCatalog) -> list[str]:
    """The host packages `config` needs that the bundle lacks (the gate's check, made on a bundle
    before it is served or pushed)."""
    from kvinstall.mirror.bundle import BundleReader
    from kvinstall.mirror.packages import needed_packages, package_sets

    sets = {s.distribution: s.as_packages() for s in package_sets(BundleReader(bundle).lock())}
    return missing_host_packages(needed_packages(config, catalog), sets)
