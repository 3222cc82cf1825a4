"""The offline completeness gate against a real docker-registry: a site registry that holds every image
`mirror list` names for a config with MetalLB, Longhorn, cert-manager and Multus, except a few of
theirs, is refused with exactly those named, including the images a controller only learns from a
flag (longhorn-manager's instance manager, cert-manager's ACME solver). Each image at the site is the
same small test image under the listed repository and tag (the gate looks references up by tag)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kvinstall.imageref import parse_reference
from kvinstall.mirror import RegistryClient, check_complete
from kvinstall.mirror.items import needed
from kvinstall.phases.context import Options
from kvinstall.phases.gate import required_refs_split
from kvinstall.render.images import normalize_image, rewrite_image
from kvinstall.session import open_session
from substrate.oci_images import build_image, push_image
from substrate.registries import Registry
from unit.test_airgap_images import services_config
from upstream_pack import PackSource

pytestmark = pytest.mark.integration

MISSING = {
    "docker.io/longhornio/longhorn-instance-manager:v1.9.1",
    "quay.io/jetstack/cert-manager-acmesolver:v1.18.5",
    "quay.io/metallb/speaker:v0.15.3",
    "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.3-thick",
}


def test_gate_refuses_a_site_registry_missing_images_of_the_platform_services(
    registry_factory: Callable[..., Registry], tmp_path: Path
) -> None:
    mirror = registry_factory("site-services")
    site = mirror.host
    session = open_session(services_config(tmp_path, frr_k8s=False, plugin="thick", site=site),
                           state_override=tmp_path / "state")  # fmt: skip
    source = PackSource()
    listed = {normalize_image(n.reference) for n in needed(session.desire(source, upstream=True)) if n.kind == "image"}
    assert listed >= MISSING
    image = build_image({"kvinstall-test": b"one small image for every listed reference\n"})
    for ref in sorted(listed - MISSING):
        at_site = parse_reference(rewrite_image(ref, site))
        assert at_site.tag is not None and at_site.digest is None, ref  # every listed image is by tag
        push_image(mirror, at_site.repository, at_site.tag, image)

    images, _ = required_refs_split(session.context(Options(), source=source))
    with RegistryClient(mirror.host, insecure=True) as client:
        missing = check_complete(client, images)
    named = {m.split(": ", 1)[0] for m in missing}
    assert named == {rewrite_image(ref, site) for ref in MISSING}, missing
    assert all("not in " + mirror.host in m for m in missing)
