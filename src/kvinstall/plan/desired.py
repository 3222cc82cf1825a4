"""desire (pure, no I/O): Config + release catalog -> DesiredState.

The hosts and the checks they get, the KubeOne manifest, every component's rendered objects,
images and readiness rules, and every artifact an offline site needs. Upstream artifact bytes come
through an ArtifactSource chosen by the caller (cache only for `plan`, network for `apply`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from kvinstall.catalog import Catalog
from kvinstall.components.base import Component
from kvinstall.config.models import Config, Host
from kvinstall.model import ArtifactSource, DesiredComponent, DesiredHost, DesiredState


def host_name(host: Host) -> str:
    return host.hostname or host.address


def planned_checks(config: Config, host: Host) -> tuple[str, ...]:
    from kvinstall.hosts.checks import CHECKS, applies_to_host

    user = host.user or config.ssh.user
    return tuple(c.id for c in CHECKS if applies_to_host(c, host, user, config))


def desire(
    config: Config,
    catalog: Catalog,
    source: ArtifactSource,
    *,
    components: list[Component] | None = None,
    host_keys: dict[str, str] | None = None,
) -> DesiredState:
    from kvinstall.components import ALL_COMPONENTS
    from kvinstall.kubeone.manifest import manifest_hash, render_manifest

    hosts = [
        DesiredHost(
            name=host_name(h),
            address=h.address,
            role=h.role,
            user=h.user or config.ssh.user,
            checks=planned_checks(config, h),
        )
        for h in config.hosts
    ]
    enabled = [c for c in (components if components is not None else list(ALL_COMPONENTS)) if c.enabled(config)]
    # Renders are pure and mostly wait on helm: run together, the charts render side by side and
    # one component's YAML is parsed while another's chart renders. Results (and the first error)
    # come in install order.
    with ThreadPoolExecutor(max_workers=4) as pool:
        renders = [pool.submit(comp.render, config, catalog, source) for comp in enabled]
        rendered_all = [r.result() for r in renders]
    desired_components = []
    for comp, rendered in zip(enabled, rendered_all, strict=True):
        desired_components.append(
            DesiredComponent(
                name=comp.name,
                title=comp.title,
                version=comp.version(config),
                namespace=comp.namespace,
                objects=rendered.objects,
                images=comp.images(config, catalog),
                artifacts=comp.artifacts(config, catalog),
                unavailable=rendered.unavailable,
                readiness=comp.readiness(config, catalog),
                notes=rendered.notes,
            )
        )
    k8s = catalog.kubernetes.get(config.kubernetes.version)
    kubeone = catalog.kubeone.get(config.kubeone.version)
    helm = catalog.helm.get(catalog.helm.default)
    binaries = [*(kubeone.artifacts if kubeone else ()), *(helm.artifacts if helm else ())]
    return DesiredState(
        cluster=config.name,
        hosts=hosts,
        kubeone_manifest=render_manifest(config, host_keys=host_keys),
        kubeone_manifest_sha256=manifest_hash(config, host_keys=host_keys),
        kubernetes_images=list(k8s.images) if k8s else [],
        components=desired_components,
        binaries=binaries,
        offline_registry=config.offline.registry if config.offline.enabled else None,
        upstream_dns=config.network.upstream_dns,
        package_repository=(
            config.offline.package_repository.url
            if config.offline.enabled and config.offline.package_repository
            else None
        ),
    )


def upstream_config(config: Config) -> Config:
    """The config with offline mode off: what renders the upstream image references (a bundle is
    made from, and its lock names, the upstream references that the offline render maps to the site)."""
    if not config.offline.enabled:
        return config
    return config.model_copy(update={"offline": config.offline.model_copy(update={"enabled": False})})


def desire_upstream(
    config: Config, catalog: Catalog, source: ArtifactSource, components: list[Component] | None = None
) -> DesiredState:
    """The desired state of the upstream view of `config`: what `mirror list/create` work from."""
    return desire(upstream_config(config), catalog, source, components=components)
