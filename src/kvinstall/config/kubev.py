"""Import of Kubermatic Virtualization (KubeV) configs: `virtualization.k8c.io/v1alpha1` `KubeVCluster`.

Pure: a parsed KubeV tree -> the equivalent kvinstall data, a map from each produced path back to
the KubeV path it came from (so errors point into the user's file), and the fields that have no
kvinstall equivalent, each named with its location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvinstall.config.models import API_VERSION as KV_API_VERSION
from kvinstall.config.models import KIND as KV_KIND
from kvinstall.config.problems import Loc, Problem

API_VERSION = "virtualization.k8c.io/v1alpha1"
KIND = "KubeVCluster"

_HOST_KEYS = {"address", "sshUsername", "sshPrivateKeyFile", "labels", "tunnelInterface", "annotations"}


@dataclass
class Converted:
    data: dict[str, Any]
    pathmap: dict[Loc, Loc] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def is_kubev(tree: Any) -> bool:
    return isinstance(tree, dict) and tree.get("apiVersion") == API_VERSION and tree.get("kind") == KIND


def convert(tree: dict[str, Any]) -> Converted:
    out = Converted(data={"apiVersion": KV_API_VERSION, "kind": KV_KIND})
    d = out.data

    def unsupported(loc: Loc, what: str, hint: str | None = None) -> None:
        out.problems.append(
            Problem(
                f"KubeV field not supported by kvinstall: {what}",
                loc=loc,
                hint=hint,
                code="kubev-unsupported",
            )
        )

    def put(new: Loc, old: Loc, value: Any) -> None:
        node: Any = d
        for part in new[:-1]:
            node = node.setdefault(part, {})
        node[new[-1]] = value
        out.pathmap[new] = old

    known_top = {
        "apiVersion",
        "kind",
        "name",
        "metadata",
        "controlPlane",
        "staticWorkers",
        "networkConfiguration",
        "apiEndpoint",
        "loadBalancer",
        "storage",
        "kubevirt",
        "offlineSettings",
        "idp",
        "dashboard",
        "versions",
    }
    for key in tree:
        if key not in known_top:
            unsupported((key,), f"unknown KubeV field {key!r}")

    name = tree.get("name") or (tree.get("metadata") or {}).get("name") or "kubev"
    put(("metadata",), ("name",) if "name" in tree else ("metadata",), {"name": name})

    versions = tree.get("versions")
    if isinstance(versions, dict) and "kubernetes" in versions:
        put(("kubernetes",), ("versions", "kubernetes"), {"version": versions["kubernetes"]})

    hosts: list[Any] = []
    for section, role in (("controlPlane", "controlPlane"), ("staticWorkers", "worker")):
        sec = tree.get(section)
        if sec is None:
            continue
        if not isinstance(sec, dict) or not isinstance(sec.get("hosts", []), list):
            unsupported((section,), f"{section} must be a mapping with a hosts list")
            continue
        for i, h in enumerate(sec.get("hosts") or []):
            old: Loc = (section, "hosts", i)
            if not isinstance(h, dict):
                unsupported(old, "a host must be a mapping")
                continue
            host: dict[str, Any] = {"role": role}
            for key, value in h.items():
                if key == "address":
                    host["address"] = value
                elif key == "sshUsername":
                    host["user"] = value
                elif key == "sshPrivateKeyFile":
                    host["privateKeyFile"] = value
                elif key == "labels":
                    host["labels"] = value
                elif key == "tunnelInterface":
                    host["tunnelInterface"] = value
                elif key == "annotations":
                    unsupported((*old, key), "node annotations", hint="use labels")
                else:
                    unsupported((*old, key), f"unknown host field {key!r}")
            idx = len(hosts)
            hosts.append(host)
            out.pathmap[("hosts", idx)] = old
            for key, src in (
                ("address", "address"),
                ("user", "sshUsername"),
                ("privateKeyFile", "sshPrivateKeyFile"),
                ("labels", "labels"),
                ("tunnelInterface", "tunnelInterface"),
            ):
                out.pathmap[("hosts", idx, key)] = (*old, src)
    d["hosts"] = hosts
    out.pathmap[("hosts",)] = ("controlPlane",)

    net = tree.get("networkConfiguration")
    if isinstance(net, dict):
        mapping = {
            "networkCIDR": "podCIDR",
            "serviceCIDR": "serviceCIDR",
            "gatewayIP": "gateway",
            "dnsServerIP": "dnsServer",
            "tunnelInterface": "tunnelInterface",
        }
        for key, value in net.items():
            if key in mapping:
                put(("network", mapping[key]), ("networkConfiguration", key), value)
            else:
                unsupported(("networkConfiguration", key), f"unknown network field {key!r}")

    api = tree.get("apiEndpoint")
    if isinstance(api, dict):
        for key, value in api.items():
            if key in ("host", "alternativeNames", "port"):
                put(("apiEndpoint", key), ("apiEndpoint", key), value)
            else:
                unsupported(("apiEndpoint", key), f"unknown apiEndpoint field {key!r}")

    for section, kinds in (("loadBalancer", "metallb"), ("storage", "longhorn")):
        sec = tree.get(section)
        if isinstance(sec, dict):
            for key in sec:
                if key != "none":
                    unsupported(
                        (section, key),
                        f"{section}.{key} ({kinds} is not installed by kvinstall)",
                        hint=f"install it separately and set {section}: {{none: {{}}}}",
                    )

    kv = tree.get("kubevirt")
    if isinstance(kv, dict):
        for key, value in kv.items():
            if key != "developerConfiguration" or not isinstance(value, dict):
                unsupported(("kubevirt", key), f"kubevirt.{key}")
                continue
            for dkey, dval in value.items():
                if dkey == "featureGates":
                    put(("components", "kubevirt", "featureGates"), ("kubevirt", key, dkey), dval)
                elif dkey == "useEmulation":
                    put(("components", "kubevirt", "useEmulation"), ("kubevirt", key, dkey), dval)
                else:
                    unsupported(("kubevirt", key, dkey), f"kubevirt.developerConfiguration.{dkey}")

    off = tree.get("offlineSettings")
    if isinstance(off, dict):
        for key, value in off.items():
            old = ("offlineSettings", key)
            if key == "enabled":
                put(("offline", "enabled"), old, value)
            elif key == "containerRegistry":
                put(("offline", "registry"), old, value)
            elif key == "helmRegistry" and isinstance(value, dict):
                # Charts travel in the same OCI registry as the images with kvinstall.
                for hkey, hval in value.items():
                    hold = (*old, hkey)
                    if hkey == "address":
                        if off.get("containerRegistry") not in (None, hval):
                            unsupported(
                                hold,
                                "a helm registry separate from the container registry",
                                hint="kvinstall keeps charts in the container registry",
                            )
                    elif hkey == "username":
                        put(("offline", "credentials", "username"), hold, hval)
                    elif hkey == "password":
                        put(("offline", "credentials", "password"), hold, hval)
                    elif hkey == "insecure":
                        put(("offline", "insecure"), hold, hval)
                    else:
                        unsupported(hold, f"helmRegistry.{hkey}")
            else:
                unsupported(
                    old,
                    f"offlineSettings.{key}",
                    hint="OS packages must come from the hosts' own repository mirror",
                )

    idp = tree.get("idp")
    if isinstance(idp, dict):
        for key, value in idp.items():
            if key == "none":
                continue
            if key != "dex" or not isinstance(value, dict):
                unsupported(("idp", key), f"idp.{key}")
                continue
            mode = "oidc" if value.get("connectors") else "basic" if value.get("enablePasswordDB") else "oidc"
            put(("auth", "mode"), ("idp", key), mode)
            for dkey, dval in value.items():
                old = ("idp", key, dkey)
                if dkey == "issuer":
                    put(("auth", "issuer"), old, dval)
                elif dkey == "connectors":
                    put(("auth", "oidc", "connectors"), old, dval)
                elif dkey == "staticClients":
                    put(("auth", "staticClients"), old, dval)
                elif dkey == "enablePasswordDB":
                    continue
                else:
                    unsupported(old, f"idp.dex.{dkey}")

    dash = tree.get("dashboard")
    if isinstance(dash, dict) and dash.get("enabled"):
        unsupported(("dashboard",), "the dashboard", hint="kvinstall does not deploy a dashboard")
    return out
