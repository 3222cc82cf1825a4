"""The cluster DNS Corefiles a real cluster holds, for the tests of `network.upstreamDNS` (KubeV's
dnsServerIP): kubeadm's default CoreDNS Corefile, and the Corefile of KubeOne's NodeLocal DNSCache
addon read from the real KubeOne release source in ../shared/upstream."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
# ../shared/upstream next to the checkout (CI), or next to a folder above it (a git worktree).
UPSTREAM = Path(
    os.environ.get("KVINSTALL_UPSTREAM_DIR")
    or next((p / "shared" / "upstream" for p in ROOT.parents if (p / "shared" / "upstream").is_dir()), "")
)

# kubeadm's default Corefile (what `kubeadm init` writes into kube-system/coredns).
KUBEADM_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""


def nodelocaldns_corefile() -> str:
    """The Corefile of KubeOne's NodeLocal DNSCache addon (KubeOne v1.13.7), rendered as KubeOne does:
    the cluster domain filled in, the __PILLAR__ names left for node-cache."""
    with tarfile.open(UPSTREAM / "kubeone" / "kubeone-v1.13.7-src.tar.gz") as tar:
        member = tar.extractfile("addons/nodelocaldns/nodelocaldns.yaml")
        assert member is not None
        docs = list(YAML(typ="safe").load_all(io.StringIO(member.read().decode())))
    cm = next(d for d in docs if d and d.get("kind") == "ConfigMap")
    return str(cm["data"]["Corefile"]).replace(
        "{{ .Config.ClusterNetwork.ServiceDomainName }}", "cluster.local"
    )
