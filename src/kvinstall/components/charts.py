"""What the components installed from an upstream Helm chart share: the chart of a release rendered
with `helm template` (no hooks), in the release's namespace, with that Namespace added (helm renders
none for the release) and labelled for privileged pods where the component's node agents need it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvinstall.model import ArtifactSource, KubeObject, Rendered
from kvinstall.render.helm import helm_template

if TYPE_CHECKING:
    from kvinstall.catalog import Release
    from kvinstall.config.models import Config

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


def chart_objects(
    config: Config,
    release: Release,
    source: ArtifactSource,
    rendered: Rendered,
    *,
    artifact: str,
    release_name: str,
    values: dict[str, Any],
    privileged: bool = False,
) -> list[KubeObject]:
    """The chart's objects, the Namespace first; [] (and the chart recorded as unavailable in
    `rendered`) when the chart's bytes are not available here."""
    chart = next(a for a in release.artifacts if a.name == artifact)
    data = source.get(chart)
    if data is None:
        rendered.unavailable.append(chart)
        rendered.notes.append(f"{chart.describe()} is not available here: its objects are not shown")
        return []
    ns = release.namespace or release.name
    objects = helm_template(
        data,
        chart_name=chart.chart or chart.name,
        release=release_name,
        namespace=ns,
        values=values,
        version=chart.version,
        kube_version=config.kubernetes.version,
    )
    namespace: KubeObject = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    if privileged:
        # Node agents with host networking and privileged containers (speakers, longhorn-manager).
        namespace["metadata"]["labels"] = {PSA_ENFORCE: "privileged"}
    rest = [o for o in objects if not (o.get("kind") == "Namespace" and o["metadata"].get("name") == ns)]
    return [namespace, *rest]
