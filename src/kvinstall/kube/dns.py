"""The cluster DNS's upstream resolver (`network.upstreamDNS`, KubeV's `dnsServerIP`).

Pods resolve through NodeLocal DNSCache (KubeOne deploys it) and CoreDNS (kubeadm deploys it); both
forward names outside the cluster to the nodes' /etc/resolv.conf unless told otherwise. Telling them
is editing one line of each Corefile: the `forward .` of the root server block (`.:53`). The rewrite
is a pure function; `ensure_upstream` applies it to the live ConfigMaps (both reload their Corefile
themselves). KubeOne puts its NodeLocal DNSCache Corefile back when it runs: apply runs this after
KubeOne, every time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

# (namespace, name) of the ConfigMaps holding a Corefile under the key "Corefile".
COREFILES = (("kube-system", "coredns"), ("kube-system", "node-local-dns"))

_ROOT_BLOCK = re.compile(r"^\s*\.(:53)?\s*\{\s*$")
_FORWARD = re.compile(r"^(?P<head>\s*forward\s+\.\s+)(?P<to>[^{#]*?)(?P<tail>\s*\{?\s*)$")


class _Kube(Protocol):
    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> None: ...


def with_upstream(corefile: str, upstream: str) -> str | None:
    """`corefile` with its root block forwarding to `upstream`; None when it has no root block."""
    lines = corefile.split("\n")
    start = next((i for i, line in enumerate(lines) if _ROOT_BLOCK.match(line)), None)
    if start is None:
        return None
    depth = 0
    for i in range(start, len(lines)):
        code = lines[i].split("#", 1)[0]
        if i > start and depth == 1 and (m := _FORWARD.match(code)):
            lines[i] = f"{m['head']}{upstream}{m['tail']}" + lines[i][len(code) :]
            return "\n".join(lines)
        depth += code.count("{") - code.count("}")
        if depth == 0:
            # The block ends without a forward: add one at the block's indentation.
            inner = next((ln for ln in lines[start + 1 : i] if ln.strip()), "    ")
            indent = inner[: len(inner) - len(inner.lstrip())]
            lines.insert(i, f"{indent}forward . {upstream}")
            return "\n".join(lines)
    return None


@dataclass
class UpstreamResult:
    changed: list[str] = field(default_factory=list)  # "ConfigMap kube-system/coredns"
    unchanged: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # not deployed (e.g. NodeLocal DNSCache off)
    unparsed: list[str] = field(default_factory=list)  # no root server block to edit


def ensure_upstream(kube: _Kube, upstream: str, *, dry_run: bool = False) -> UpstreamResult:
    """Point the live Corefiles at `upstream`; only the ones that differ are written."""
    result = UpstreamResult()
    for namespace, name in COREFILES:
        ref = f"ConfigMap {namespace}/{name}"
        cm = kube.get("v1", "ConfigMap", name, namespace)
        corefile = ((cm or {}).get("data") or {}).get("Corefile")
        if corefile is None:
            result.absent.append(ref)
            continue
        new = with_upstream(corefile, upstream)
        if new is None:
            result.unparsed.append(ref)
        elif new == corefile:
            result.unchanged.append(ref)
        else:
            if not dry_run:
                kube.patch_merge("v1", "ConfigMap", name, {"data": {"Corefile": new}}, namespace)
            result.changed.append(ref)
    return result
