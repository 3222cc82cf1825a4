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

from kvinstall.catalog import load_catalog
from kvinstall.components import component, components_for
from kvinstall.components.dex import AdminCredentialsFile
from kvinstall.config.loader import load_file
from kvinstall.config.models import Config
from kvinstall.mirror.items import needed
from kvinstall.plan.desired import desire, desire_upstream
from kvinstall.render.images import images_in, images_outside, normalize_image, rewrite_image
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
