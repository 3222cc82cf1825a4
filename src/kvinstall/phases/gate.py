"""The offline completeness gate: before any host is touched, prove that the site registry holds every
image and artifact the platform needs."""

from __future__ import annotations

from typing import Any

from kvinstall.errors import IncompleteMirrorError
from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan


class GatePhase:
    name = "gate"
    title = "Offline completeness gate"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return (True, "") if ctx.config.offline.enabled else (False, "not in offline mode")

    def inputs(self, ctx: Context) -> Any:
        from kvinstall.catalog.packages import load_package_catalog
        from kvinstall.mirror.packages import needed_packages

        packages = needed_packages(ctx.config, load_package_catalog())
        return [*sorted(required_refs(ctx)), *(f"{d}: {s}" for d, specs in packages.items() for s in specs)]

    def plan(self, ctx: Context) -> PhasePlan:
        desired = ctx.desired
        return PhasePlan(
            self.name,
            self.title,
            [
                Action(
                    action="run",
                    target=f"site registry {desired.offline_registry}",
                    reason="before any host is touched, prove every image and artifact is there",
                    details={"images": len(desired.all_images()), "artifacts": len(desired.all_artifacts())},
                )
            ],
        )

    def run(self, ctx: Context) -> str:
        from kvinstall.catalog.packages import load_package_catalog
        from kvinstall.components.artifacts import offline_registry
        from kvinstall.mirror.gate import check_complete, check_host_packages

        refs = required_refs(ctx)
        images, artifacts = required_refs_split(ctx)
        # Images as the nodes pull them, charts and manifests as kvinstall reads them (offline.charts).
        nodes, charts = offline_registry(ctx.config), offline_registry(ctx.config, charts=True)
        assert nodes is not None and charts is not None  # the gate runs in offline mode only
        with ctx.edges.registry(nodes) as client, ctx.edges.registry(charts) as chart_client:
            missing = check_complete(client, images) + check_complete(chart_client, artifacts)
        if missing:
            raise IncompleteMirrorError(
                f"{len(missing)} of {len(refs)} artifact(s) are missing from the site registry:\n  "
                + "\n  ".join(missing),
                where=str(ctx.config.offline.registry),
                hint="push the bundle with `kvinstall mirror push`, or make a new bundle for this config",
            )
        needed, lacking = check_host_packages(ctx.config, load_package_catalog())
        repo = ctx.config.offline.package_repository
        if lacking:
            raise IncompleteMirrorError(
                f"{len(lacking)} of {needed} host package(s) are missing from the site package repository:\n  "
                + "\n  ".join(lacking),
                where=repo.url if repo else None,
                hint="serve a bundle made for this config (`kvinstall mirror create -f`, then `mirror serve`)",
            )
        packages = f"; all {needed} host packages are in {repo.url}" if repo and needed else ""
        return f"all {len(refs)} images and artifacts are in {ctx.config.offline.registry}{packages}"


def required_refs(ctx: Context) -> list[str]:
    """Every image the rendered objects reference, every image of the catalog (operators such as
    virt-operator derive their operands' references from their own, so those appear in no object),
    plus every artifact, as site-registry references."""
    images, artifacts = required_refs_split(ctx)
    return [*images, *artifacts]


def required_refs_split(ctx: Context) -> tuple[list[str], list[str]]:
    """required_refs as (images, artifacts): each is checked with its own login."""
    from kvinstall.mirror.model import artifact_oci_ref
    from kvinstall.render.images import images_in, rewrite_image

    site = str(ctx.config.offline.registry)
    images: dict[str, None] = {}
    for comp in ctx.desired.components:
        for img in [*sorted(images_in(comp.objects)), *comp.images]:
            images.setdefault(img if img.startswith(site + "/") else rewrite_image(img, site), None)
    for img in ctx.desired.kubernetes_images:
        images.setdefault(rewrite_image(img, site), None)
    artifacts = {artifact_oci_ref(art, site): None for art in ctx.desired.all_artifacts()}
    return list(images), [a for a in artifacts if a not in images]
