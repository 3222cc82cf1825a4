"""Air-gap bundles: `mirror create` / `push` / `inspect` / `verify` / `serve`, the completeness gate and
the image reference rewrite. Host packages: aptfetch (collecting .debs for a bundle), packages and
debian (pure: needs, resolution, lock records, indexes), aptrepo (the signed apt repositories served
from a bundle), serve (the registry and package repository on the jump host). Public API (plain
values in and out):

    create_bundle(items, out, *, platforms, workers, progress, registries) -> BundleResult
    push_bundle(bundle, registry, *, ca_file, insecure, username, password, workers, progress) -> PushResult
    inspect_bundle(path) -> BundleInfo
    verify_bundle(path) -> list[BundleProblem]
    check_complete(client, refs) -> list[str]
    rewrite_image(ref, site_registry) -> str
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvinstall.imageref import Reference, parse_reference, rewrite_image
    from kvinstall.mirror.bundle import create_bundle, inspect_bundle, push_bundle
    from kvinstall.mirror.gate import check_complete
    from kvinstall.mirror.model import (
        DEFAULT_PLATFORMS,
        HELM_CHART_LAYER,
        HELM_CONFIG,
        KV_ARTIFACT_TYPE,
        KV_BINARY_LAYER,
        KV_MANIFEST_LAYER,
        BundleInfo,
        BundleProblem,
        BundleResult,
        FileItem,
        ImageItem,
        LockEntry,
        MirrorItem,
        PushResult,
        RegistryOptions,
    )
    from kvinstall.mirror.registry import RegistryClient
    from kvinstall.mirror.verify import verify_bundle

# The package's names are imported from their modules on first use: importing one light module
# (refs, by the image rewrite every render does) must not load the bundle and registry machinery.
_FROM = {
    "BundleInfo": "kvinstall.mirror.model",
    "BundleProblem": "kvinstall.mirror.model",
    "BundleResult": "kvinstall.mirror.model",
    "DEFAULT_PLATFORMS": "kvinstall.mirror.model",
    "FileItem": "kvinstall.mirror.model",
    "HELM_CHART_LAYER": "kvinstall.mirror.model",
    "HELM_CONFIG": "kvinstall.mirror.model",
    "ImageItem": "kvinstall.mirror.model",
    "KV_ARTIFACT_TYPE": "kvinstall.mirror.model",
    "KV_BINARY_LAYER": "kvinstall.mirror.model",
    "KV_MANIFEST_LAYER": "kvinstall.mirror.model",
    "LockEntry": "kvinstall.mirror.model",
    "MirrorItem": "kvinstall.mirror.model",
    "PushResult": "kvinstall.mirror.model",
    "Reference": "kvinstall.imageref",
    "RegistryClient": "kvinstall.mirror.registry",
    "RegistryOptions": "kvinstall.mirror.model",
    "check_complete": "kvinstall.mirror.gate",
    "create_bundle": "kvinstall.mirror.bundle",
    "inspect_bundle": "kvinstall.mirror.bundle",
    "parse_reference": "kvinstall.imageref",
    "push_bundle": "kvinstall.mirror.bundle",
    "rewrite_image": "kvinstall.imageref",
    "verify_bundle": "kvinstall.mirror.verify",
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_PLATFORMS",
    "HELM_CHART_LAYER",
    "HELM_CONFIG",
    "KV_ARTIFACT_TYPE",
    "KV_BINARY_LAYER",
    "KV_MANIFEST_LAYER",
    "BundleInfo",
    "BundleProblem",
    "BundleResult",
    "FileItem",
    "ImageItem",
    "LockEntry",
    "MirrorItem",
    "PushResult",
    "Reference",
    "RegistryClient",
    "RegistryOptions",
    "check_complete",
    "create_bundle",
    "inspect_bundle",
    "parse_reference",
    "push_bundle",
    "rewrite_image",
    "verify_bundle",
]
