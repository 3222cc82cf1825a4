"""Upgrade rules: one pure function over the catalog's data (catalog.yaml `upgrades`, a release's
`kubernetes` range, KubeOne's Kubernetes list) and two version maps, installed and wanted.

`check_upgrades` returns the upgrades apply will carry out (from, to, the steps and their gates, in
the order apply takes them: Kubernetes, then the components in install order) and the refusals, each
naming the next allowed step. Nothing here knows a component by name: a new component or version
only adds data to the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kvinstall.catalog import Catalog, Product

KUBERNETES = "kubernetes"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(version: str) -> tuple[int, int, int]:
    """v1.34.4 -> (1, 34, 4); a minor alone (v1.34) is (1, 34, 0). ValueError for anything else."""
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"{version!r} is not a version like v1.2.3")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def minor(version: str) -> str:
    major, mnr, _ = parse_version(version)
    return f"v{major}.{mnr}"


def _minor_key(version: str) -> tuple[int, int]:
    major, mnr, _ = parse_version(version)
    return major, mnr


@dataclass(frozen=True)
class Upgrade:
    """One product's version change, carried out by apply in one supported hop."""

    name: str  # "kubernetes" or a component name
    title: str
    from_version: str
    to_version: str
    steps: tuple[str, ...]  # what apply does, in order, each gate included
    downgrade: bool = False  # forced (--force-downgrade)
    # KubeVirt: running VMs moved to the new virt-launcher by live migration (filled by the observer).
    migrations: int | None = None
    not_migratable: int | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "name": self.name,
            "title": self.title,
            "from": self.from_version,
            "to": self.to_version,
            "steps": list(self.steps),
        }
        if self.downgrade:
            d["downgrade"] = True
        if self.migrations is not None:
            d["liveMigrations"] = self.migrations
            d["notMigratable"] = self.not_migratable or 0
        return d


@dataclass(frozen=True)
class Refusal:
    """A version change apply will not make, why, and the next step that is allowed."""

    name: str
    title: str
    from_version: str | None
    to_version: str
    reason: str
    next_step: str

    def __str__(self) -> str:
        return f"{self.title}: {self.reason}; next step: {self.next_step}"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "nextStep": self.next_step,
        }


@dataclass
class UpgradeCheck:
    upgrades: list[Upgrade] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def hop_supported(product: Product, frm: str, to: str) -> bool:
    """One step from `frm` to the newer `to`: a patch release of the same minor, or a minor hop the
    catalog lists for the product."""
    if parse_version(to) <= parse_version(frm):
        return False
    if minor(frm) == minor(to):
        return True
    return minor(to) in product.upgrades.get(minor(frm), ())


def upgrade_path(product: Product, frm: str, to: str, versions: Sequence[str]) -> list[str] | None:
    """The shortest chain of supported hops from `frm` to `to` through `versions` (the catalog's,
    sorted by the newest first among equals), as the versions after `frm`; None when there is none."""
    candidates = sorted(
        {v for v in versions if parse_version(frm) < parse_version(v) <= parse_version(to)} | {to},
        key=parse_version,
    )
    paths: dict[str, list[str]] = {frm: []}
    frontier = [frm]
    while frontier:
        nxt: list[str] = []
        # Newest first: among equally short paths the one with the newest intermediate versions.
        for here in frontier:
            for v in reversed(candidates):
                if v not in paths and hop_supported(product, here, v):
                    paths[v] = [*paths[here], v]
                    nxt.append(v)
        if to in paths:
            return paths[to]
        frontier = nxt
    return None


def _in_range(k8s: str, bounds: tuple[str, str] | None) -> bool:
    """Whether the minor of `k8s` lies in (min, max), inclusive; a release without a range fits any."""
    if bounds is None:
        return True
    return _minor_key(bounds[0]) <= _minor_key(k8s) <= _minor_key(bounds[1])


def _range_text(bounds: tuple[str, str] | None) -> str:
    return "any Kubernetes" if bounds is None else f"Kubernetes {bounds[0]} to {bounds[1]}"


def _steps(catalog: Catalog, name: str, title: str, to: str) -> tuple[str, ...]:
    if name == KUBERNETES:
        return (
            f"KubeOne upgrades the control plane, then the nodes one at a time, to Kubernetes {to}",
            f"gate: every node Ready with kubelet {to}",
        )
    steps = [
        f"apply {title} {to}: CRDs, operator and workloads first",
        f"gate: {title}'s workloads rolled out and ready",
        "then its custom resources",
    ]
    signal = catalog.components[name].installed_version
    if signal is not None and signal.field:
        steps.append(f"gate: {signal.kind} {signal.name} reports {signal.field} = {to}, and is ready")
    elif signal is not None and signal.image:
        steps.append(f"gate: Deployment {signal.name} runs {to} and is ready")
    return tuple(steps)


def check_upgrades(
    catalog: Catalog,
    installed: Mapping[str, str | None],
    wanted: Mapping[str, str],
    *,
    titles: Mapping[str, str],
    kubeone_version: str,
    force_downgrade: bool = False,
) -> UpgradeCheck:
    """The upgrades (and refusals) for going from `installed` to `wanted`, both name -> version, with
    `kubernetes` for the cluster; `wanted` in apply's order (Kubernetes first, then the components in
    install order). A product not installed (None or absent) is a fresh install: only its version
    skew with Kubernetes is checked."""
    out = UpgradeCheck()
    kubeone = catalog.kubeone.get(kubeone_version)
    k1_range = kubeone.kubernetes_range if kubeone else None
    k8s_choices = [v for v in catalog.kubernetes.releases if _in_range(v, k1_range)]
    for name, to in wanted.items():
        frm = installed.get(name)
        title = titles.get(name, name)
        product = catalog.kubernetes if name == KUBERNETES else catalog.components.get(name)
        if product is None or frm is None or frm == to:
            continue
        versions = k8s_choices if name == KUBERNETES else list(product.releases)
        if name == KUBERNETES and k1_range is not None and _minor_key(frm) < _minor_key(k1_range[0]):
            out.refusals.append(
                Refusal(
                    name,
                    title,
                    frm,
                    to,
                    f"the cluster runs {frm}, below what KubeOne {kubeone_version} manages "
                    f"({k1_range[0]} to {k1_range[1]})",
                    "upgrade the cluster with an older KubeOne release first",
                )
            )
            continue
        if parse_version(to) < parse_version(frm):
            if force_downgrade:
                out.upgrades.append(
                    Upgrade(name, title, frm, to, _steps(catalog, name, title, to), downgrade=True)
                )
                continue
            out.refusals.append(
                Refusal(
                    name,
                    title,
                    frm,
                    to,
                    f"downgrade from {frm} to {to} is refused",
                    f"keep version {frm} in the file (or pass --force-downgrade, at your own risk)",
                )
            )
            continue
        path = upgrade_path(product, frm, to, versions)
        if path is not None and len(path) == 1:
            out.upgrades.append(Upgrade(name, title, frm, to, _steps(catalog, name, title, to)))
            continue
        if path is not None:
            out.refusals.append(
                Refusal(
                    name,
                    title,
                    frm,
                    to,
                    f"{frm} -> {to} skips a minor version (one supported step at a time: "
                    f"{' -> '.join([frm, *path])})",
                    f"set the version to {path[0]}, apply, then continue to {to}",
                )
            )
            continue
        reachable = sorted((v for v in versions if hop_supported(product, frm, v)), key=parse_version)
        out.refusals.append(
            Refusal(
                name,
                title,
                frm,
                to,
                f"{frm} -> {to} is not a supported upgrade path",
                f"upgrade to {reachable[-1]} first"
                if reachable
                else f"keep version {frm}: no supported upgrade from it is in the release catalog",
            )
        )
    _check_skew(catalog, installed, wanted, titles, out)
    return out


def _check_skew(
    catalog: Catalog,
    installed: Mapping[str, str | None],
    wanted: Mapping[str, str],
    titles: Mapping[str, str],
    out: UpgradeCheck,
) -> None:
    """Every component must support the cluster's Kubernetes at every point of the run: Kubernetes is
    upgraded first, so the installed components meet the new Kubernetes before they are upgraded."""
    k8s_to = wanted.get(KUBERNETES) or installed.get(KUBERNETES)
    if k8s_to is None:
        return
    k8s_changes = installed.get(KUBERNETES) not in (None, k8s_to)
    for name, to in wanted.items():
        product = catalog.components.get(name)
        if name == KUBERNETES or product is None:
            continue
        title = titles.get(name, name)
        frm = installed.get(name)
        checks = [(to, f"{title} {to}")]
        if k8s_changes and frm is not None and frm != to and frm in product.releases:
            checks.insert(0, (frm, f"the installed {title} {frm}"))
        for version, who in checks:
            release = product.releases.get(version)
            if release is None or _in_range(k8s_to, release.kubernetes_range):
                continue
            fits = sorted(
                (v for v, r in product.releases.items() if _in_range(k8s_to, r.kubernetes_range)),
                key=parse_version,
            )
            if version == frm:
                nxt = (
                    f"upgrade {title} to {fits[-1]} before Kubernetes (keep Kubernetes at "
                    f"{installed.get(KUBERNETES)} in this run)"
                    if fits
                    else f"keep Kubernetes at {installed.get(KUBERNETES)}"
                )
            else:
                nxt = (
                    f"choose {title} {fits[-1]}"
                    if fits
                    else f"keep Kubernetes at {installed.get(KUBERNETES) or 'a supported version'}"
                )
            out.refusals.append(
                Refusal(
                    name,
                    title,
                    frm,
                    to,
                    f"{who} does not support Kubernetes {minor(k8s_to)} "
                    f"(it supports {_range_text(release.kubernetes_range)})",
                    nxt,
                )
            )
            break
