"""KubeV fields that act on the live cluster, against a real kube-apiserver + etcd (fixture kube_api):
dnsServerIP edits the Corefiles of CoreDNS and of KubeOne's NodeLocal DNSCache (then stays put: no
writes on a re-run), node labels/annotations are set and, with a trailing '-', removed, and a registry's
`insecure` is TLS without verification against a real HTTPS registry (fixture registries).

What a real cluster would hold is made here with the real objects' shapes: kubeadm's default Corefile,
and KubeOne's NodeLocal DNSCache ConfigMap from the KubeOne release source in ../shared/upstream.
Nodes are plain Node objects (no kubelet runs here); the phase finds them by InternalIP as it does
nodes KubeOne named after their hostname.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cluster_dns import KUBEADM_COREFILE, nodelocaldns_corefile
from kvinstall.config.loader import load_text
from kvinstall.kube import Kube
from kvinstall.kube.dns import ensure_upstream
from kvinstall.phases.bootstrap import dns_actions, label_nodes, upstream_dns

pytestmark = pytest.mark.integration

KUBEV = "apiVersion: virtualization.k8c.io/v1alpha1\nkind: KubeVCluster\n"


@pytest.fixture
def kube(kube_api: Any) -> Iterator[Kube]:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


class Events:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def emit(self, kind: str, **fields: Any) -> None:
        self.seen.append({"kind": kind, **fields})


def _configmap(kube: Kube, name: str, corefile: str) -> None:
    kube.delete("v1", "ConfigMap", name, "kube-system")
    kube.wait_deleted("v1", "ConfigMap", name, "kube-system", timeout=60)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "kube-system"},
            "data": {"Corefile": corefile},
        },
        force=True,
    )


def test_dns_server_ip_is_the_upstream_of_the_live_cluster_dns(kube: Kube, kube_api: Any) -> None:
    _configmap(kube, "coredns", KUBEADM_COREFILE)
    _configmap(kube, "node-local-dns", nodelocaldns_corefile())
    cfg = load_text(
        KUBEV + "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"
        "networkConfiguration:\n  dnsServerIP: 192.168.1.1\n"
    ).config
    ctx = SimpleNamespace(config=cfg, events=Events())

    # plan, observing the cluster: both Corefiles would change; nothing is written.
    mark = kube_api.audit_mark()
    dry = ensure_upstream(kube, "192.168.1.1", dry_run=True)
    assert kube_api.write_count(mark) == 0
    actions, notes = dns_actions(str(cfg.network.upstream_dns), dry)  # the bootstrap phase's dry run
    assert [(a.action, a.target, a.object) for a in actions] == [
        ("update", "ConfigMap kube-system/coredns", "ConfigMap/kube-system/coredns"),
        ("update", "ConfigMap kube-system/node-local-dns", "ConfigMap/kube-system/node-local-dns"),
    ]
    assert notes == []

    assert upstream_dns(kube, ctx) == "cluster DNS forwards to 192.168.1.1 (2 Corefile(s) updated)"
    coredns = kube.get("v1", "ConfigMap", "coredns", "kube-system")
    local = kube.get("v1", "ConfigMap", "node-local-dns", "kube-system")
    assert coredns is not None and local is not None
    assert "    forward . 192.168.1.1 {\n       max_concurrent 1000\n    }" in coredns["data"]["Corefile"]
    assert "forward . 192.168.1.1\n" in local["data"]["Corefile"]
    assert "__PILLAR__CLUSTER__DNS__" in local["data"]["Corefile"]  # the cluster zones: unchanged
    assert [e["object"] for e in ctx.events.seen] == [  # as the plan's actions name them
        "ConfigMap/kube-system/coredns",
        "ConfigMap/kube-system/node-local-dns",
    ]

    # A re-run changes nothing and writes nothing.
    mark = kube_api.audit_mark()
    again = ensure_upstream(kube, "192.168.1.1")
    assert again.changed == [] and len(again.unchanged) == 2
    assert kube_api.write_count(mark) == 0

    # KubeOne puts its NodeLocal DNSCache Corefile back on each run: the next apply edits it again.
    _configmap(kube, "node-local-dns", nodelocaldns_corefile())
    assert ensure_upstream(kube, "192.168.1.1").changed == ["ConfigMap kube-system/node-local-dns"]


def test_without_cluster_dns_the_phase_says_what_is_missing(kube: Kube) -> None:
    from kvinstall.errors import ClusterError

    kube.delete("v1", "ConfigMap", "coredns", "kube-system")
    kube.wait_deleted("v1", "ConfigMap", "coredns", "kube-system", timeout=60)
    cfg = load_text(
        KUBEV + "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"
        "networkConfiguration:\n  dnsServerIP: 192.168.1.1\n"
    ).config
    with pytest.raises(ClusterError, match="ConfigMap kube-system/coredns"):
        upstream_dns(kube, SimpleNamespace(config=cfg, events=Events()))


def test_node_labels_and_annotations_are_set_and_removed(kube: Kube, kube_api: Any) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    address = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"stale-label": "x", "zone": "b"},
                "annotations": {"example.com/old": "1"},
            },
        },
        force=True,
    )
    kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={"status": {"addresses": [{"type": "InternalIP", "address": address}]}},
        content_type="application/merge-patch+json",
        where=f"Node {name}",
    )
    cfg = load_text(
        KUBEV + f"staticWorkers:\n  hosts:\n    - address: {address}\n"
        "      labels: {zone: a, stale-label-: ''}\n"
        "      annotations: {example.com/owner: ops, example.com/old-: ''}\n"
        "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"
    ).config
    ctx = SimpleNamespace(config=cfg, events=Events())
    assert label_nodes(kube, ctx) == 1
    node = kube.get("v1", "Node", name)
    assert node is not None
    assert node["metadata"]["labels"].get("zone") == "a" and "stale-label" not in node["metadata"]["labels"]
    assert node["metadata"]["annotations"].get("example.com/owner") == "ops"
    assert "example.com/old" not in node["metadata"]["annotations"]
    (event,) = ctx.events.seen
    assert {"path": "metadata.labels.stale-label", "op": "remove", "after": None} in event["changes"]
    mark = kube_api.audit_mark()
    assert label_nodes(kube, ctx) == 0
    assert kube_api.write_count(mark) == 0


def test_insecure_means_tls_without_verification_against_a_real_registry(registries: Any) -> None:
    """KubeV's `containerRegistry.insecure` (offline.insecureSkipVerify): kvinstall's own client talks
    TLS to a registry whose CA it was not given; without the flag it refuses that registry."""
    from kvinstall.components.artifacts import offline_registry
    from kvinstall.errors import KvError
    from kvinstall.mirror.items import PushTarget, push_target

    host = registries.tls.host
    text = (
        KUBEV + "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"
        f"offlineSettings:\n  enabled: true\n  containerRegistry:\n    address: https://{host}\n"
    )
    strict = load_text(text).config
    lax = load_text(text + "    insecure: true\n").config
    reg = offline_registry(strict)
    assert reg is not None
    with reg.client(retries=1) as client, pytest.raises(KvError, match=r"(?i)certificate|TLS|SSL"):
        client.ping()
    reg = offline_registry(lax)
    assert reg is not None and reg.skip_verify
    with reg.client(retries=1) as client:
        client.ping()
    assert push_target(lax, override=PushTarget("")).skip_verify
    assert not push_target(lax, override=PushTarget("elsewhere:5000")).skip_verify
