"""Platform components, each a module exposing `COMPONENT` (see base.py for the protocol).

`ALL_COMPONENTS` lists them in install order (removal runs in reverse). The modules are imported
on first use, so importing kvinstall.components stays cheap.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvinstall.components.base import Component
    from kvinstall.components.dex import ChecksumKey, CredentialsProvider

# Install order (removal runs in reverse), each step after what it needs:
# - Kube-OVN first: without a CNI no node is Ready and no pod starts;
# - Multus right after it: it takes Kube-OVN's configuration as each pod's default network, and must
#   be in place before any pod asks for a secondary network;
# - cert-manager early: every later component that needs a certificate (Dex's TLS) gets it from its
#   cluster issuer, and its webhook must answer before such requests arrive;
# - MetalLB and Longhorn before the workloads that use them: LoadBalancer Services get addresses from
#   the start, and KubeVirt/CDI find the StorageClasses (CDI makes a StorageProfile per class, VM disks
#   are imported onto them);
# - KubeVirt, then CDI; Dex; Kyverno last among the controllers (its failurePolicy=Fail webhooks can
#   block other installs); then our policies, which need Kyverno's CRDs; workspaces last (they use
#   Kube-OVN, KubeVirt and Multus kinds).
COMPONENT_MODULES: tuple[str, ...] = (
    "kubeovn",
    "multus",
    "certmanager",
    "metallb",
    "longhorn",
    "kubevirt",
    "cdi",
    "dex",
    "kyverno",
    "policies",
    "workspaces",
)


@lru_cache(maxsize=1)
def all_components() -> tuple[Component, ...]:
    return tuple(importlib.import_module(f"{__name__}.{m}").COMPONENT for m in COMPONENT_MODULES)


def component(name: str) -> Component:
    """The component whose `name` is `name` (KeyError otherwise)."""
    for c in all_components():
        if c.name == name:
            return c
    raise KeyError(f"no component named {name!r}")


def __getattr__(attr: str) -> Any:
    if attr == "ALL_COMPONENTS":
        return list(all_components())
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def components_for(
    credentials: CredentialsProvider, checksum_key: ChecksumKey | None = None
) -> list[Component]:
    """The components for one cluster, Dex with its admin credential from `credentials` and the key
    of its config checksum from `checksum_key` (kvinstall.components.dex.AdminCredentialsFile and
    ChecksumKeyFile: the state directory's, written only by apply)."""
    from kvinstall.components.dex import DexComponent

    return [DexComponent(credentials, checksum_key) if c.name == "dex" else c for c in all_components()]
