"""The release catalog: pinned versions and, per version, artifacts, images and feature gates.

The data lives in catalog.yaml beside this module; this module only reads it into plain values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from kvinstall.model import Artifact

GateState = Literal["alpha", "beta", "ga", "deprecated", "discontinued"]


@dataclass(frozen=True)
class FeatureGates:
    """A KubeVirt release's feature gates by state, as the release registers them. Alpha and beta
    gates are off until listed; GA ones are always on; deprecated ones still work (KubeVirt warns);
    discontinued ones are gone. `messages`: KubeVirt's own words for deprecated/discontinued gates."""

    ga: frozenset[str] = frozenset()
    beta: frozenset[str] = frozenset()
    alpha: frozenset[str] = frozenset()
    deprecated: frozenset[str] = frozenset()
    discontinued: frozenset[str] = frozenset()
    messages: tuple[tuple[str, str], ...] = ()

    @property
    def known(self) -> frozenset[str]:
        return self.ga | self.beta | self.alpha | self.deprecated | self.discontinued

    def state(self, gate: str) -> GateState | None:
        states: tuple[tuple[GateState, frozenset[str]], ...] = (
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("ga", self.ga),
            ("deprecated", self.deprecated),
            ("discontinued", self.discontinued),
        )
        return next((state for state, gates in states if gate in gates), None)

    def message(self, gate: str) -> str | None:
        return dict(self.messages).get(gate)


@dataclass(frozen=True)
class Release:
    """One version of one thing (a component, Kubernetes, KubeOne, helm)."""

    name: str
    version: str
    namespace: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    images: tuple[str, ...] = ()
    gate_images: dict[str, tuple[str, ...]] = field(default_factory=dict)
    feature_gates: FeatureGates = FeatureGates()
    cdi_feature_gates: tuple[str, ...] = ()
    kubernetes: tuple[str, ...] = ()  # for KubeOne: the Kubernetes versions it supports


@dataclass(frozen=True)
class Product:
    name: str
    default: str
    releases: dict[str, Release]

    def get(self, version: str) -> Release | None:
        return self.releases.get(version)


@dataclass(frozen=True)
class Catalog:
    kubernetes: Product
    kubeone: Product
    helm: Product
    components: dict[str, Product]

    def component(self, name: str, version: str) -> Release:
        """The release of a component; KeyError names what is missing (config checks catch it first)."""
        product = self.components[name]
        release = product.get(version)
        if release is None:
            raise KeyError(
                f"{name} {version} is not in the release catalog (known: {', '.join(product.releases)})"
            )
        return release

    def versions(self, name: str) -> list[str]:
        products = {
            "kubernetes": self.kubernetes,
            "kubeone": self.kubeone,
            "helm": self.helm,
            **self.components,
        }
        return list(products[name].releases)


def _artifact(raw: dict[str, Any], version: str) -> Artifact:
    return Artifact(
        name=raw["name"],
        kind=raw["kind"],
        source=raw["source"].replace("{v}", version),
        version=str(raw.get("version", version)),
        sha256=raw.get("sha256"),
        chart=raw.get("chart"),
        media_type=raw.get("mediaType"),
    )


def _feature_gates(raw: dict[str, Any]) -> FeatureGates:
    # alpha/beta/ga: lists of names; deprecated/discontinued: name -> KubeVirt's message.
    messages = {
        gate: str(msg) for state in ("deprecated", "discontinued") for gate, msg in (raw.get(state) or {}).items()
    }
    return FeatureGates(
        **{state: frozenset(raw.get(state) or ()) for state in ("alpha", "beta", "ga", "deprecated", "discontinued")},
        messages=tuple(sorted(messages.items())),
    )


def _product(name: str, raw: dict[str, Any]) -> Product:
    releases: dict[str, Release] = {}
    for version, spec in raw["versions"].items():
        gates = spec.get("featureGates")
        releases[version] = Release(
            name=name,
            version=version,
            namespace=spec.get("namespace"),
            artifacts=tuple(_artifact(a, version) for a in spec.get("artifacts", [])),
            images=tuple(i.replace("{v}", version) for i in spec.get("images", [])),
            gate_images={k: tuple(v) for k, v in spec.get("gateImages", {}).items()},
            feature_gates=_feature_gates(gates) if isinstance(gates, dict) else FeatureGates(),
            cdi_feature_gates=tuple(gates) if isinstance(gates, list) else (),
            kubernetes=tuple(spec.get("kubernetes", [])),
        )
    return Product(name=name, default=raw["default"], releases=releases)


def parse_catalog(data: dict[str, Any]) -> Catalog:
    return Catalog(
        kubernetes=_product("kubernetes", data["kubernetes"]),
        kubeone=_product("kubeone", data["kubeone"]),
        helm=_product("helm", data["helm"]),
        components={name: _product(name, raw) for name, raw in data["components"].items()},
    )


@lru_cache(maxsize=4)
def _load(path: str | None) -> Catalog:
    from kvinstall import fastyaml
    from kvinstall.errors import LocalIOError

    if path is None:
        text = resources.files("kvinstall.catalog").joinpath("catalog.yaml").read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise LocalIOError(f"cannot read the release catalog: {exc.strerror or exc}", where=path) from exc
    try:
        return parse_catalog(fastyaml.load(text))
    except (KeyError, TypeError, AttributeError, ValueError, fastyaml.YAMLError) as exc:
        from kvinstall.errors import ConfigError

        raise ConfigError([], message=f"{path}: not a valid release catalog ({type(exc).__name__}: {exc})") from exc


def load_catalog() -> Catalog:
    """The catalog shipped with this kvinstall, or the file KVINSTALL_CATALOG names (a site that
    pins its own artifact URLs and digests, e.g. an internal mirror; same format as catalog.yaml)."""
    return _load(os.environ.get("KVINSTALL_CATALOG") or None)
