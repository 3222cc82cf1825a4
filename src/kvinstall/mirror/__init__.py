"""Air-gap bundles: `mirror create` / `push` / `inspect` / `verify`, the completeness gate and the
image reference rewrite. Public API (plain values in and out):

    create_bundle(items, out, *, platforms, workers, progress, registries) -> BundleResult
    push_bundle(bundle, registry, *, ca_file, insecure, username, password, workers, progress) -> PushResult
    inspect_bundle(path) -> BundleInfo
    verify_bundle(path) -> list[BundleProblem]
    check_complete(client, refs) -> list[str]
    rewrite_image(ref, site_registry) -> str
"""

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
from kvinstall.mirror.refs import Reference, parse_reference, rewrite_image
from kvinstall.mirror.registry import RegistryClient
from kvinstall.mirror.verify import verify_bundle

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
