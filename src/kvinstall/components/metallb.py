"""MetalLB: LoadBalancer Services on bare metal, from its upstream Helm chart (CRDs from its `crds`
subchart, BGP by an FRR container in each speaker, or by the frr-k8s subchart's daemon with
components.metallb.frrK8s), plus kvinstall's own configuration objects: an IPAddressPool per
configured pool, an L2Advertisement of all pools (unless `l2: false`), and with BGP peers a BGPPeer
each and a BGPAdvertisement.

The pools are checked against the cluster's networks and the machines' addresses when the config is
loaded (config/checks.py) and against the hosts' own networks in preflight (layer 2 announcements
only reach the hosts' segment). In IPVS mode kube-proxy must not answer ARP for every address: the
KubeOne manifest turns on strict ARP (kubeone/manifest.py).

The chart's webhook certificate (Secret metallb-webhook-cert) and the caBundle of its webhook
configuration and of the BGPPeer conversion webhook are filled in by MetalLB's controller at run time:
kvinstall applies the chart's empty Secret and never owns those fields. Until the controller serves
its webhook, the apiserver refuses the pools with a transient error that the apply engine retries.
Readiness: the controller and speakers, then the controller's ConfigurationState reporting the
configuration Valid (what MetalLB itself says of the pools).
Removal: the pools and peers first (custom resources go first), while the controller still runs and
releases the addresses, then the workloads, then the rest.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.charts import chart_objects
from kvinstall.components.kubevirt import offline_rewrite
from kvinstall.model import ArtifactSource, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CHART_ARTIFACT = "metallb-chart"
API = "metallb.io/v1beta1"
RELEASE = "metallb"  # helm release name: objects are called metallb-controller, metallb-speaker, ...
FRR_K8S = "frrK8s"  # the catalog's gateImages key of the frr-k8s images


def chart_values(config: Config) -> dict[str, Any]:
    """The chart values (pure): which BGP implementation runs."""
    frr_k8s = config.components.metallb.frr_k8s
    return {"speaker": {"frr": {"enabled": not frr_k8s}}, "frrk8s": {"enabled": frr_k8s}}


def _peer_name(address: str) -> str:
    return "peer-" + address.replace(".", "-").replace(":", "-").strip("-")


def config_objects(config: Config, namespace: str) -> list[dict[str, Any]]:
    """The IPAddressPools, advertisements and BGP peers for the config."""
    from kvinstall.render.env import render_template

    lb = config.components.metallb
    peers = []
    for i, peer in enumerate(lb.bgp_peers):
        password = None
        if peer.password is not None:
            clear = peer.password.require(("components", "metallb", "bgpPeers", i, "password"))
            password = {"password": base64.b64encode(clear.encode()).decode()}
        peers.append({
            "name": _peer_name(peer.address),
            "address": peer.address,
            "asn": peer.asn,
            "my_asn": peer.my_asn,
            "port": peer.port or 179,
            "password_data": password,
        })  # fmt: skip
    return render_template(
        "metallb-config.yaml.j2",
        ns=namespace,
        pools=[
            {"name": p.name, "addresses": list(p.addresses), "auto_assign": p.auto_assign} for p in lb.pools
        ],
        pool_names=[p.name for p in lb.pools],
        l2=lb.l2,
        peers=peers,
    )


class MetalLBComponent(CatalogComponent):
    name = "metallb"
    title = "MetalLB"
    namespace: str | None = "metallb-system"

    def enabled(self, config: Config) -> bool:
        return config.components.metallb.enabled

    def version(self, config: Config) -> str:
        return config.components.metallb.version

    def images(self, config: Config, catalog: Catalog) -> list[str]:
        release = self.release(config, catalog)
        extra = release.gate_images.get(FRR_K8S, ()) if config.components.metallb.frr_k8s else ()
        return [*release.images, *extra]

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        rendered = Rendered()
        release = self.release(config, catalog)
        objects = chart_objects(
            config,
            release,
            source,
            rendered,
            artifact=CHART_ARTIFACT,
            release_name=RELEASE,
            values=chart_values(config),
            privileged=True,
        )
        objects += config_objects(config, self._ns(config, catalog))
        rendered.objects = offline_rewrite(objects, config)
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self._ns(config, catalog)
        rules = [
            ReadinessRule("apps/v1", "Deployment", f"{RELEASE}-controller", ns),
            ReadinessRule("apps/v1", "DaemonSet", f"{RELEASE}-speaker", ns),
        ]
        if config.components.metallb.frr_k8s:
            rules.append(ReadinessRule("apps/v1", "DaemonSet", f"{RELEASE}-frr-k8s", ns))
        # The controller's own verdict on the pools (MetalLB reports it per component).
        rules.append(
            ReadinessRule(API, "ConfigurationState", "controller", ns, fields=(("status.result", "Valid"),))
        )
        return rules

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        # Custom resources (pools, advertisements, peers) go first, while the controller still runs.
        delete_all()


COMPONENT = MetalLBComponent()
