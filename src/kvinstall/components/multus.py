"""Multus: secondary networks for VMs, from the upstream daemonset manifest of the release tag (thick
plugin by default: a node daemon answers the CNI calls; `plugin: thin` for the plain binary).
Kube-OVN stays the default network: Multus' `auto` configuration takes the first CNI configuration
on each node (Kube-OVN's) as the default and adds the attachments workspaces ask for
(NetworkAttachmentDefinitions, rendered by the workspaces component). Installed right after Kube-OVN.

Deviations from the manifest, both deliberate:
- the image: the manifests of the tag name the moving tags `snapshot-thick` / `snapshot`; kvinstall
  pins the release's own image (`<tag>-thick` / `<tag>`, from the catalog), so what runs and what is
  mirrored is the release;
- the daemon configuration gets `cleanupConfigOnExit: true` (thin: `--cleanup-config-on-exit=true`):
  a stopping daemon removes the
  Multus CNI configuration it wrote on its node, so removing Multus leaves nodes on Kube-OVN alone
  instead of a configuration that calls a daemon that no longer runs. (After a reboot, pods started
  before the daemon writes its configuration again get the default network only, as with RKE2's
  Multus, which makes the same choice.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.kubevirt import CRD_API, find_object, offline_rewrite, parse_manifest
from kvinstall.errors import ArtifactError
from kvinstall.model import Artifact, ArtifactSource, KubeObject, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

DAEMONSET = "kube-multus-ds"
DAEMON_CONFIG = "multus-daemon-config"
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"
THIN = "thin"  # the catalog's gateImages key of the thin plugin's image


def _artifact_name(config: Config) -> str:
    return f"multus-{config.components.multus.plugin}"


def pinned(objects: list[KubeObject], image: str, where: str) -> list[KubeObject]:
    """The manifest's objects with the DaemonSet's images set to the release's `image` and the daemon
    told to remove its configuration when it stops (in place; the objects are fresh copies)."""
    ds = find_object(objects, "DaemonSet", DAEMONSET)
    if ds is None:
        raise ArtifactError(f"the Multus manifest has no DaemonSet {DAEMONSET}", where=where)
    pod = ds["spec"]["template"]["spec"]
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        container["image"] = image
        if "/thin_entrypoint" in (container.get("command") or []):
            args = [
                a for a in container.get("args") or [] if not str(a).startswith("--cleanup-config-on-exit")
            ]
            container["args"] = [*args, "--cleanup-config-on-exit=true"]
    cm = find_object(objects, "ConfigMap", DAEMON_CONFIG)
    if cm is not None and "daemon-config.json" in (cm.get("data") or {}):
        try:
            daemon = json.loads(cm["data"]["daemon-config.json"])
        except ValueError:
            raise ArtifactError("the Multus daemon configuration is not JSON", where=where) from None
        daemon["cleanupConfigOnExit"] = True
        cm["data"]["daemon-config.json"] = json.dumps(daemon, indent=4, sort_keys=True) + "\n"
    return objects


class MultusComponent(CatalogComponent):
    name = "multus"
    title = "Multus"
    namespace: str | None = "kube-system"

    def enabled(self, config: Config) -> bool:
        return config.components.multus.enabled

    def version(self, config: Config) -> str:
        return config.components.multus.version

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]:
        want = _artifact_name(config)
        return [a for a in self.release(config, catalog).artifacts if a.name == want]

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        release = self.release(config, catalog)
        return list(release.gate_images[THIN] if config.components.multus.plugin == THIN else release.images)

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        rendered = Rendered()
        (artifact,) = self.artifacts(config, catalog)
        data = source.get(artifact)
        if data is None:
            rendered.unavailable.append(artifact)
            rendered.notes.append(f"{artifact.describe()} is not available here: its objects are not shown")
            return rendered
        objects = pinned(parse_manifest(data, artifact), self.images(config, catalog)[0], artifact.describe())
        rendered.objects = offline_rewrite(objects, config)
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self.release(config, catalog).namespace or "kube-system"
        return [
            ReadinessRule(CRD_API, "CustomResourceDefinition", NAD_CRD),
            ReadinessRule("apps/v1", "DaemonSet", DAEMONSET, ns),
        ]

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        # Workspaces' attachments were pruned with the workspaces (an earlier phase); the daemons
        # remove their node configuration as they stop.
        delete_all()


COMPONENT = MultusComponent()
