"""Air-gap completeness on the real artifacts: for every example config and every combination of the
KubeVirt gates the catalog gives images to (each KubeVirt version), every image the rendered objects
reference and every image the operators deploy for those gates (tests/substrate/operators.py: what
virt-operator and cdi-operator create, from their source) is in `mirror list` (the desired state's
needed images, what `mirror create` bundles); offline, each of them is a reference into the site
registry that `mirror push` fills from that list. (tests/e2e/test_offline.py pushes a real bundle
and checks the images are there.)"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvinstall.catalog import load_catalog
from kvinstall.components import component, components_for
from kvinstall.components.dex import AdminCredentialsFile
from kvinstall.config.loader import load_file
from kvinstall.config.models import Config
from kvinstall.mirror.items import needed
from kvinstall.phases.context import Options
from kvinstall.phases.gate import required_refs_split
from kvinstall.plan.desired import desire, desire_upstream
from kvinstall.render.images import images_in, images_outside, normalize_image, rewrite_image
from kvinstall.session import open_session
from substrate.operators import cdi_operator_operands, pulled_images, virt_operator_operands
from upstream_pack import PackSource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CATALOG = load_catalog()
SITE = "registry.site.test:5000"
SOURCE = PackSource()


@pytest.fixture(autouse=True)
def _example_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORP_SSO_CLIENT_SECRET", "not-a-real-secret")  # the HA example's OIDC client


def listed(config: Config, components: list[Any]) -> set[str]:
    """`mirror list`'s images for the config (normalized)."""
    desired = desire_upstream(config, CATALOG, SOURCE, components=components)
    return {normalize_image(n.reference) for n in needed(desired) if n.kind == "image"}


def offline(config: Config) -> Config:
    off = config.offline.model_copy(update={"enabled": True, "registry": config.offline.registry or SITE})
    return config.model_copy(update={"offline": off})


def with_kubevirt(config: Config, version: str, gates: list[str]) -> Config:
    kv = config.components.kubevirt.model_copy(update={"version": version, "feature_gates": gates})
    return config.model_copy(update={"components": config.components.model_copy(update={"kubevirt": kv})})


def operator_images(objects: list[dict[str, Any]], gates: list[str]) -> set[str]:
    """What virt-operator and cdi-operator, as rendered, deploy for the gates."""
    out: set[str] = set()
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        if obj["metadata"]["name"] == "virt-operator":
            out |= pulled_images(virt_operator_operands(obj, gates), gates)
        elif obj["metadata"]["name"] == "cdi-operator":
            out |= pulled_images(cdi_operator_operands(obj))
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_rendered_and_deployed_image_is_listed_and_offline_at_the_site(path: Path, tmp_path: Path) -> None:
    config = load_file(path).config
    gates = list(config.components.kubevirt.feature_gates)
    components = components_for(AdminCredentialsFile(tmp_path))  # Dex's admin credential: none yet
    images = listed(config, components)
    upstream = desire_upstream(config, CATALOG, SOURCE, components=components)
    referenced = {i for c in upstream.components for i in images_in(c.objects)}
    referenced |= operator_images([o for c in upstream.components for o in c.objects], gates)
    assert {normalize_image(i) for i in referenced} - images == set()

    site_config = offline(config)
    site = site_config.offline.registry or SITE
    at_site = desire(site_config, CATALOG, SOURCE, components=components)
    objects = [o for c in at_site.components for o in c.objects]
    for comp in at_site.components:
        assert images_outside(comp.objects, site) == set(), comp.name
    # What the operators derive from their rewritten references is at the site too, and is exactly
    # the site's copy of a listed image (where `mirror push` puts it).
    pushed = {rewrite_image(i, site) for i in images}
    deployed = operator_images(objects, gates) | {i for c in at_site.components for i in images_in(c.objects)}
    assert deployed - pushed == set()


def _gate_sets(version: str) -> list[tuple[str, ...]]:
    gates = sorted(CATALOG.component("kubevirt", version).gate_images)
    return [combo for n in range(len(gates) + 1) for combo in combinations(gates, n)]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("version", CATALOG.versions("kubevirt"))
def test_every_gate_combination_of_the_catalog(path: Path, version: str) -> None:
    """Each combination of the image-bearing gates (with the example's own gates the version has)."""
    base = load_file(path).config
    release = CATALOG.component("kubevirt", version)
    own = [g for g in base.components.kubevirt.feature_gates if release.feature_gates.state(g) in ("alpha", "beta")]
    kubevirt = [component("kubevirt")]
    for combo in _gate_sets(version):
        gates = [*own, *(g for g in combo if g not in own)]
        config = with_kubevirt(base, version, gates)
        images = listed(config, kubevirt)
        objects = desire_upstream(config, CATALOG, SOURCE, components=kubevirt).components[0].objects
        deployed = operator_images(objects, gates) | images_in(objects)
        missing = {normalize_image(i) for i in deployed} - images
        assert missing == set(), (combo, missing)
        site_config = offline(config)
        site = site_config.offline.registry or SITE
        site_objects = desire(site_config, CATALOG, SOURCE, components=kubevirt).components[0].objects
        at_site = operator_images(site_objects, gates) | images_in(site_objects)
        assert at_site - {rewrite_image(i, site) for i in images} == set(), combo


# --- MetalLB, Longhorn, cert-manager and Multus -----------------------------------------------------

PLATFORM_SERVICES = ("multus", "certmanager", "metallb", "longhorn")
# Images that appear in no `image:` field: longhorn-manager deploys the instance manager from its
# --instance-manager-image flag, the driver deployer the CSI sidecars from *_IMAGE env, and
# cert-manager's controller starts ACME solver pods from --acme-http01-solver-image.
SET_BY_FLAG_OR_ENV = {
    "docker.io/longhornio/longhorn-instance-manager:v1.9.1",
    "docker.io/longhornio/longhorn-share-manager:v1.9.1",
    "docker.io/longhornio/csi-provisioner:v5.3.0-20250709",
    "quay.io/jetstack/cert-manager-acmesolver:v1.18.5",
}


def services_config(tmp_path: Path, *, frr_k8s: bool, plugin: str, site: str = SITE) -> Path:
    """The air-gapped example with the four on (Longhorn's class replaces the example's RWX class)."""
    tree = yaml.safe_load((ROOT / "examples" / "airgapped.yaml").read_text())
    tree.pop("storage")
    tree["offline"] = {"enabled": True, "registry": site, "insecure": True}
    tree["components"].update({
        "certManager": {"enabled": True},
        "multus": {"enabled": True, "plugin": plugin},
        "metallb": {"enabled": True, "frrK8s": frr_k8s, "bgpPeers": [{"address": "192.0.2.1", "asn": 64512,
                                                                      "myASN": 64513}],
                    "pools": [{"name": "lb", "addresses": ["192.0.2.200-192.0.2.220"]}]},
        "longhorn": {"enabled": True},
    })  # fmt: skip
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.mark.parametrize(("frr_k8s", "plugin"), [(False, "thick"), (True, "thin")])
def test_platform_services_images_are_listed_rewritten_and_gated(
    frr_k8s: bool, plugin: str, tmp_path: Path
) -> None:
    """Each of the four lists exactly the images its rendered objects use (container images, flags and
    env alike), `mirror list` holds them all, offline every one points at the site, and the gate
    requires exactly the site copies of what `mirror list` bundles: a bundle without one is refused."""
    path = services_config(tmp_path, frr_k8s=frr_k8s, plugin=plugin)
    session = open_session(path, state_override=tmp_path / "state")
    upstream = session.desire(SOURCE, upstream=True)
    listed_images = {normalize_image(n.reference) for n in needed(upstream) if n.kind == "image"}
    for name in PLATFORM_SERVICES:
        comp = upstream.component(name)
        assert comp is not None and comp.objects, name
        used = {normalize_image(i) for i in images_in(comp.objects)}
        assert used == {normalize_image(i) for i in comp.images}, name
        assert used <= listed_images, name
    assert listed_images >= SET_BY_FLAG_OR_ENV
    # FRR runs in the speaker, or (frrK8s) in the frr-k8s daemon, whose own image is listed only then.
    assert "quay.io/frrouting/frr:10.4.1" in listed_images
    assert ("quay.io/metallb/frr-k8s:v0.0.21" in listed_images) == frr_k8s
    multus = "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.3" + ("-thick" if plugin == "thick" else "")
    assert multus in listed_images

    ctx = session.context(Options(), source=SOURCE)
    pushed = {rewrite_image(i, SITE) for i in listed_images}
    for comp in ctx.desired.components:
        assert images_outside(comp.objects, SITE) == set(), comp.name
        assert {i for i in images_in(comp.objects)} <= pushed, comp.name
    gated, _ = required_refs_split(ctx)
    assert set(gated) == pushed
