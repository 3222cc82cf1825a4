"""Exercises every substrate fixture against the real servers it starts."""

from __future__ import annotations

import json
import subprocess

import oras.client
import pytest

from substrate.oci_images import (
    OCI_INDEX,
    OCI_MANIFEST,
    SeededImages,
    build_image,
    get_blob,
    get_manifest,
    push_image,
    sha256,
)
from substrate.registries import Registries, Registry

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- registries and images

@pytest.mark.parametrize("which", ["upstream", "mirror", "tls", "auth"])
def test_registry_push_pull_round_trip(registries: Registries, which: str) -> None:
    reg: Registry = getattr(registries, which)
    image = build_image({"roundtrip.txt": which.encode()}, "amd64")
    repo = f"roundtrip/{which}"
    digest = push_image(reg, repo, "v1", image)
    assert digest == image.digest
    raw, media_type = get_manifest(reg, repo, "v1")
    assert raw == image.manifest and media_type == OCI_MANIFEST
    for blob in image.blobs():
        assert get_blob(reg, repo, blob.digest) == blob.data


def test_auth_registry_rejects_anonymous(registries: Registries) -> None:
    import requests

    r = requests.get(f"{registries.auth.url}/v2/", timeout=5)
    assert r.status_code == 401
    assert "Basic" in r.headers.get("WWW-Authenticate", "")


def test_tls_registry_needs_its_ca(registries: Registries) -> None:
    import requests

    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registries.tls.url}/v2/", timeout=5)
    assert registries.tls.ca is not None and registries.tls.ca.exists()


def test_oras_pull_from_upstream_and_push_to_mirror(registries: Registries, oci_images: SeededImages,
                                                    tmp_path: pytest.TempPathFactory) -> None:
    """A third-party client (oras-py) reads what the pure-Python builder pushed."""
    up = oras.client.OrasClient(hostname=registries.upstream.host, insecure=True)
    manifest = up.get_manifest(oci_images.single.ref)
    assert manifest["config"]["digest"] == oci_images.single.image.config.digest  # type: ignore[union-attr]
    tags = up.get_tags(f"{registries.upstream.host}/kvtest/single")
    assert "v1" in tags


def test_multi_arch_index_shares_base_layer(registries: Registries, oci_images: SeededImages) -> None:
    multi = oci_images.multi
    assert multi.index is not None
    raw, media_type = get_manifest(registries.upstream, multi.repo, multi.tag)
    assert media_type == OCI_INDEX and sha256(raw) == multi.digest
    platforms = {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]}
    assert platforms == {"amd64", "arm64"}
    firsts = {img.layers[0].digest for img in multi.index.images}
    assert firsts == {oci_images.base_layer.digest}


def test_skopeo_copies_index_to_mirror_preserving_digests(registries: Registries,
                                                          oci_images: SeededImages) -> None:
    """skopeo (a real peer) copies the multi-arch index from upstream to mirror, digests unchanged."""
    src = oci_images.multi
    subprocess.run(
        ["skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
         f"docker://{src.ref}", f"docker://{registries.mirror.host}/copied/multi:v1"],
        check=True, capture_output=True, timeout=120,
    )
    raw, _ = get_manifest(registries.mirror, "copied/multi", "v1")
    assert sha256(raw) == src.digest


def test_registry_restart_keeps_content(registry_factory: object) -> None:
    reg: Registry = registry_factory("restart")  # type: ignore[operator]
    image = build_image({"keep.txt": b"kept"})
    push_image(reg, "keep/me", "v1", image)
    old_host = reg.host
    reg.restart()
    assert reg.host == old_host
    raw, _ = get_manifest(reg, "keep/me", "v1")
    assert raw == image.manifest
