"""The release catalog against the real upstream artifacts (tests/upstream_pack.py): it lists exactly
the versions of the pack, every image it names is the one the chart or manifest (or the operator it
installs) really uses, and every chart value kvinstall sets is read by the chart version it targets.
Charts are rendered by the real helm, as kvinstall renders them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components import component
from kvinstall.components.kubeovn import CHART_ARTIFACT as KUBEOVN_CHART
from kvinstall.components.kubeovn import chart_values as kubeovn_values
from kvinstall.components.kyverno import CHART_ARTIFACT as KYVERNO_CHART
from kvinstall.components.kyverno import chart_values as kyverno_values
from kvinstall.config.models import Config
from kvinstall.render.helm import helm_template_text
from kvinstall.render.images import images_in
from substrate.operators import pulled_images, virt_operator_operands
from upstream_pack import PackSource, artifact_bytes, documents, pack_artifacts, pack_dir

CATALOG = load_catalog()
# Catalog component -> its folder in the pack, and how a release names its folder there.
PACKED = {"kubeovn": "kube-ovn", "kubevirt": "kubevirt", "cdi": "cdi", "kyverno": "kyverno"}


def config(**extra: Any) -> Config:
    data: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "lab"},
        "hosts": [
            {"address": "192.0.2.10", "privateAddress": "10.0.0.1", "role": "controlPlane"},
            {"address": "192.0.2.11", "privateAddress": "10.0.0.2", "role": "controlPlane"},
            {"address": "192.0.2.12", "privateAddress": "10.0.0.3", "role": "controlPlane"},
        ],
    }
    data.update(extra)
    return Config.model_validate(data)


def releases(name: str) -> list[str]:
    return CATALOG.versions(name)


def test_the_catalog_lists_exactly_the_versions_of_the_pack() -> None:
    for name, folder in PACKED.items():
        in_pack = {p.name for p in (pack_dir() / folder).iterdir() if p.is_dir()}
        # Kyverno's releases sit in the pack under their chart's version.
        listed = (
            {a.version for v in releases(name) for a in CATALOG.component(name, v).artifacts}
            if name == "kyverno"
            else set(releases(name))
        )
        assert listed == in_pack, name
    for name, release, artifact, path in pack_artifacts():
        assert path.is_file(), f"{name} {release.version}: {artifact.describe()} has no file in the pack"


def _operator(name: str, version: str) -> dict[str, Any]:
    objects = documents(artifact_bytes(name, version)[f"{name}-operator"])
    return next(o for o in objects if o["kind"] == "Deployment")


@pytest.mark.parametrize("version", releases("kubevirt"))
def test_kubevirt_images_are_those_virt_operator_deploys(version: str) -> None:
    """The catalog's images (always, and per gate) are exactly what virt-operator of the release
    deploys: its own image from the manifest, its operands derived from it (substrate/operators.py)."""
    release = CATALOG.component("kubevirt", version)
    operator = _operator("kubevirt", version)
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBEVIRT_VERSION"] == version
    own = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert own == env["VIRT_OPERATOR_IMAGE"] == release.images[0]

    def deployed(gates: tuple[str, ...]) -> set[str]:
        return {own} | pulled_images(virt_operator_operands(operator, gates), gates)

    base = deployed(())
    assert set(release.images) == base
    gates = release.feature_gates
    for gate in sorted(gates.alpha | gates.beta | gates.deprecated):
        assert deployed((gate,)) - base == set(release.gate_images.get(gate, ())), gate
    assert set(release.gate_images) <= gates.alpha | gates.beta


@pytest.mark.parametrize("version", releases("cdi"))
def test_cdi_images_are_those_of_the_operator_manifest(version: str) -> None:
    objects = documents(artifact_bytes("cdi", version)["cdi-operator"])
    assert images_in(objects) == set(CATALOG.component("cdi", version).images)


@pytest.mark.parametrize(("name", "version"), [(n, v) for n in ("kubeovn", "kyverno") for v in releases(n)])
def test_chart_images_are_those_of_the_rendered_chart(name: str, version: str) -> None:
    key = {"kubeovn": "kubeOVN", "kyverno": "kyverno"}[name]
    cfg = config(components={key: {"version": version}})
    rendered = component(name).render(cfg, CATALOG, PackSource())
    assert images_in(rendered.objects) == set(CATALOG.component(name, version).images)


# --- every value kvinstall sets is read by the chart ---------------------------------------------


def _leaves(values: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


def _with(values: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(values)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _sentinel(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    return f"{value}x7"


# Configs that make kvinstall set every value it ever sets: offline (registries), NAT gateway,
# tunnel interfaces, IPv4 networks.
FULL = {
    "offline": {"enabled": True, "registry": "registry.site.test:5000"},
    "network": {"tunnelInterface": "eth1", "tunnelType": "vxlan"},
    "components": {"kubeOVN": {"enableNatGateway": True, "enableLoadBalancer": False}},
}


def _cases() -> list[tuple[str, str]]:
    return [(n, v) for n in ("kubeovn", "kyverno") for v in releases(n)]


@pytest.mark.parametrize(("name", "version"), _cases())
def test_every_chart_value_kvinstall_sets_is_read(name: str, version: str) -> None:
    """For each value kvinstall passes, a render with that one value changed differs from the render
    with kvinstall's values: a value no template reads (a key the chart version does not have) fails."""
    key = {"kubeovn": "kubeOVN", "kyverno": "kyverno"}[name]
    cfg = config(**{**FULL, "components": {**FULL["components"], key: {
        **FULL["components"].get(key, {}), "version": version}}})  # fmt: skip
    release = CATALOG.component(name, version)
    chart_name = KUBEOVN_CHART if name == "kubeovn" else KYVERNO_CHART
    chart = next(a for a in release.artifacts if a.name == chart_name)
    values = kubeovn_values(cfg, release) if name == "kubeovn" else kyverno_values(cfg)
    data = artifact_bytes(name, version)[chart_name]

    def render(v: dict[str, Any]) -> str:
        return helm_template_text(
            data,
            chart_name=chart.chart or chart.name,
            release="kube-ovn" if name == "kubeovn" else "kyverno",
            namespace=release.namespace or "",
            values=v,
            version=chart.version,
            kube_version=cfg.kubernetes.version,
        )

    leaves = list(_leaves(values))
    assert leaves, "kvinstall sets values for this chart in this config"
    with ThreadPoolExecutor(max_workers=2) as pool:
        base, *changed = pool.map(render, [values, *(_with(values, p, _sentinel(v)) for p, v in leaves)])
    ignored = [".".join(p) for (p, _), out in zip(leaves, changed, strict=True) if out == base]
    assert ignored == [], f"{name} chart {chart.version} does not read {ignored}"
