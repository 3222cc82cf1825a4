"""Import of Kubermatic Virtualization (KubeV) configs: `virtualization.k8c.io/v1alpha1` `KubeVCluster`.

Pure: a parsed KubeV tree -> the equivalent kvinstall data, plus
- a map from each produced kvinstall path back to the KubeV path it came from, so that problems
  found later point at the user's own line and field;
- the problems found in KubeV terms: the rules the KubeV documentation states (exactly one load
  balancer, storage and identity provider option, ipRange and address formats, interface names),
  refusals of what kvinstall does not provide (code `kubev-unsupported`), and warnings;
- the inline secrets (KubeV files hold them in clear text), so that `convert` can move each to a file.

Every field of the documented format is handled here; docs/kubev.md lists where each one goes.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from kvinstall.config.models import API_VERSION as KV_API_VERSION
from kvinstall.config.models import KIND as KV_KIND
from kvinstall.config.models import address_range
from kvinstall.config.positions import walk
from kvinstall.config.problems import Loc, Problem, format_path

API_VERSION = "virtualization.k8c.io/v1alpha1"
KIND = "KubeVCluster"

# KubeV's defaults where kvinstall's differ (its kubeconfig is kubev-cluster-kubeconfig).
DEFAULT_NAME = "kubev-cluster"
DEFAULT_NETWORK_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"

UNSUPPORTED = "kubev-unsupported"  # refused: kvinstall does not provide the feature
INVALID = "kubev-invalid"  # breaks a rule of the KubeV documentation
INLINE_SECRET = "kubev-inline-secret"  # warning: a clear-text secret in the file
NO_EFFECT = "kubev-no-effect"  # warning: a field that does nothing here (nor in KubeV)
NOTE = "kubev-note"  # warning: how kvinstall carries out a field

_TOP = (
    "apiVersion",
    "kind",
    "controlPlane",
    "staticWorkers",
    "networkConfiguration",
    "apiEndpoint",
    "loadBalancer",
    "storage",
    "offlineSettings",
    "kubevirt",
    "idp",
    "dashboard",
    "imagePullSecret",
    "kubeletConfig",
    # kvinstall's additions (not in KubeV's schema): the cluster name and the Kubernetes version.
    "name",
    "metadata",
    "versions",
)
_HOST = (
    "address",
    "sshUsername",
    "sshPrivateKeyFile",
    "labels",
    "annotations",
    "tunnelInterface",
    "kubelet",
    "taints",
)
_NODE_KUBELET = ("systemReserved", "kubeReserved", "evictionHard", "maxPods")
_KUBELET_GC = (
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
)
_MIGRATIONS = (
    "parallelMigrationsPerCluster",
    "parallelOutboundMigrationsPerNode",
    "completionTimeoutPerGiB",
    "progressTimeout",
)
_OCI = ("address", "username", "password", "insecure")
# Dex connector settings that hold secrets (the keys kvinstall's own check knows).
_SECRET_KEYS = {"clientsecret", "bindpw", "password", "secret", "token"}
# Linux interface names: at most 15 characters (IFNAMSIZ), alphanumerics and _ . -
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_REGEX_META = set("^$*.+?()[]{}|\\")
_GATE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_FINGERPRINT = re.compile(r"^(?:[0-9A-Fa-f]{4}\s*){10}$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Bare kvinstall names in messages that mean a differently named KubeV field.
_BARE_RENAMES = {"podCIDR": "networkCIDR"}


@dataclass(frozen=True)
class InlineSecret:
    """A clear-text secret of the KubeV file: where its `{value: ...}` sits in the kvinstall data
    (`loc`) and where it came from (`source`)."""

    loc: Loc
    source: Loc


@dataclass
class Converted:
    data: dict[str, Any]
    pathmap: dict[Loc, Loc] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    secrets: list[InlineSecret] = field(default_factory=list)

    def rename(self, text: str | None) -> str | None:
        """`text` with the kvinstall field paths it names replaced by the KubeV ones."""
        if not text:
            return text
        table = {
            format_path(new): format_path(old)
            for new, old in self.pathmap.items()
            if old and (len(new) > 1 or isinstance(new[-1], int))
        }
        table |= _BARE_RENAMES
        keys = sorted(table, key=len, reverse=True)
        pattern = re.compile(r"(?<![\w.\[\]])(" + "|".join(map(re.escape, keys)) + r")(?![\w\[])")
        return pattern.sub(lambda m: table[m.group(1)], text)


def is_kubev(tree: Any) -> bool:
    return isinstance(tree, dict) and tree.get("apiVersion") == API_VERSION and tree.get("kind") == KIND


def convert(tree: dict[str, Any], *, drop_unsupported: bool = False) -> Converted:
    """The kvinstall data for a KubeV tree (see the module doc). drop_unsupported: refusals become
    warnings ("dropped: ...") and the rest is converted, for `convert --drop-unsupported`."""
    return _Converter(tree, drop_unsupported).run()


def _kind_of(node: Any) -> str:
    if isinstance(node, list):
        return "a list"
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, str):
        return "a string"
    return "nothing" if node is None else f"a {type(node).__name__}"


class _Converter:
    def __init__(self, tree: dict[str, Any], drop_unsupported: bool) -> None:
        self.tree = tree
        self.drop = drop_unsupported
        self.out = Converted(data={"apiVersion": KV_API_VERSION, "kind": KV_KIND})

    # -- problems ----------------------------------------------------------------------------------

    def _problem(self, loc: Loc, msg: str, hint: str | None, code: str, severity: str = "error") -> None:
        self.out.problems.append(
            Problem(
                msg, loc=loc, hint=hint, code=code, severity="warning" if severity == "warning" else "error"
            )
        )

    def error(self, loc: Loc, msg: str, hint: str | None = None) -> None:
        self._problem(loc, msg, hint, INVALID)

    def refuse(self, loc: Loc, msg: str, hint: str | None = None) -> None:
        if self.drop:
            self._problem(loc, f"dropped: {msg}", hint, UNSUPPORTED, "warning")
        else:
            self._problem(loc, f"refused: {msg}", hint, UNSUPPORTED)

    def warn(self, loc: Loc, msg: str, hint: str | None = None, code: str = NOTE) -> None:
        self._problem(loc, msg, hint, code, "warning")

    # -- reading the tree --------------------------------------------------------------------------

    def node(self, loc: Loc) -> Any:
        return walk(self.tree, loc)

    def has(self, loc: Loc) -> bool:
        parent = self.node(loc[:-1])
        return isinstance(parent, dict) and loc[-1] in parent

    def mapping(self, loc: Loc, keys: Collection[str], *, what: str | None = None) -> dict[str, Any] | None:
        """The mapping at `loc` with only `keys` in it (unknown ones are errors), or None when the
        field is absent or empty (`key:` with no value)."""
        node = self.node(loc)
        if node is None:
            return None
        if not isinstance(node, dict):
            self.error(loc, f"expected a mapping, found {_kind_of(node)}")
            return None
        for key in node:
            if key not in keys:
                close = difflib.get_close_matches(str(key), list(keys), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(sorted(keys))}"
                where = f" in {what}" if what else ""
                self._problem((*loc, key), f"unknown field {key!r}{where}", hint, "unknown-field")
        return node

    def items(self, loc: Loc) -> list[Any]:
        node = self.node(loc)
        if node is None:
            return []
        if not isinstance(node, list):
            self.error(loc, f"expected a list, found {_kind_of(node)}")
            return []
        return node

    def one_of(self, loc: Loc, options: Collection[str], what: str) -> str | None:
        """The one option set in the section at `loc` (None: section absent). The KubeV rule:
        exactly one option; an omitted section means `none`."""
        sec = self.mapping(loc, options, what=f"{format_path(loc)} (options: {', '.join(options)})")
        if sec is None:
            return None  # absent, `section:` with no value (as if omitted), or not a mapping (reported)
        chosen = [k for k in sec if k in options]
        if len(chosen) != 1:
            self.error(
                loc,
                f"exactly one {what} option must be set, found {len(chosen)}"
                + (f" ({', '.join(chosen)})" if chosen else ""),
                hint=f"set one of: {', '.join(f'{o}' for o in options)} (omit the section for none)",
            )
            return None
        option = chosen[0]
        if not isinstance(sec[option], (dict, type(None))):
            self.error((*loc, option), f"expected a mapping, found {_kind_of(sec[option])}")
            return None
        return option

    # -- writing the kvinstall data ----------------------------------------------------------------

    def put(self, new: Loc, old: Loc, value: Any) -> None:
        node: Any = self.out.data
        for part, following in itertools.pairwise(new):
            node = _child(node, part, [] if isinstance(following, int) else {})
        if isinstance(new[-1], int):
            _child(node, new[-1], None)
        node[new[-1]] = value
        self.out.pathmap[new] = old

    def secret(self, new: Loc, old: Loc, value: Any) -> None:
        if not isinstance(value, str):
            self.error(old, f"expected a string, found {_kind_of(value)}")
            return
        # Without the newline a YAML block scalar ends with: a secret read from a file loses it too.
        self.put(new, old, {"value": str(value).rstrip("\n")})
        self.out.secrets.append(InlineSecret(new, old))
        self.warn(
            old,
            "clear-text secret: used as given, never printed",
            hint="`kvinstall convert -o OUT` moves it to a 0600 file next to OUT",
            code=INLINE_SECRET,
        )

    def copy(self, src: Loc, dst: Loc, keys: Collection[str]) -> None:
        """Each of `keys` present under `src` to the same key under `dst`."""
        sec = self.node(src)
        if not isinstance(sec, dict):
            return
        for key in keys:
            if key in sec:
                self.put((*dst, key), (*src, key), sec[key])

    # -- the sections ------------------------------------------------------------------------------

    def run(self) -> Converted:
        self.mapping((), _TOP, what="a KubeVCluster")
        self.name()
        self.hosts()
        self.network()
        self.api_endpoint()
        self.load_balancer()
        self.storage()
        self.kubevirt()
        self.offline()
        self.idp()
        self.dashboard()
        self.image_pull_secret()
        self.kubelet_config()
        return self.out

    def name(self) -> None:
        if self.node(("name",)) is not None:
            self.put(("metadata", "name"), ("name",), self.node(("name",)))
        elif self.node(("metadata", "name")) is not None:
            self.mapping(("metadata",), ("name",))
            self.put(("metadata", "name"), ("metadata", "name"), self.node(("metadata", "name")))
        else:
            self.out.data["metadata"] = {"name": DEFAULT_NAME}
        versions = self.mapping(("versions",), ("kubernetes",))
        if versions and "kubernetes" in versions:
            self.put(("kubernetes", "version"), ("versions", "kubernetes"), versions["kubernetes"])

    def hosts(self) -> None:
        hosts: list[dict[str, Any]] = []
        for section, role in (("controlPlane", "controlPlane"), ("staticWorkers", "worker")):
            sec = self.mapping((section,), ("hosts",))
            entries = self.items((section, "hosts")) if sec is not None else []
            listed = self.node((section, "hosts"))
            # A section or hosts list of the wrong shape is reported already.
            shapeless = (sec is None and self.node((section,)) is not None) or (
                listed is not None and not isinstance(listed, list)
            )
            if section == "controlPlane" and not entries and not shapeless:
                self.error(
                    (section,) if sec is None else (section, "hosts"),
                    "required: at least one control plane host",
                    hint="controlPlane: {hosts: [{address: 192.168.1.10, sshUsername: ubuntu}]}",
                )
            for i, entry in enumerate(entries):
                old: Loc = (section, "hosts", i)
                if not isinstance(entry, dict):
                    self.error(old, f"expected a host mapping, found {_kind_of(entry)}")
                    continue
                self.host(old, role, entry, hosts)
        self.out.data["hosts"] = hosts
        self.out.pathmap[("hosts",)] = ("controlPlane",) if self.has(("controlPlane",)) else ()

    def host(self, old: Loc, role: str, h: dict[str, Any], hosts: list[dict[str, Any]]) -> None:
        self.mapping(old, _HOST, what="a host")
        new: Loc = ("hosts", len(hosts))
        host: dict[str, Any] = {"role": role}
        hosts.append(host)
        self.out.pathmap[new] = old
        # Entries of the kvinstall host and where they came from, for the path map.
        mapped: dict[str, str] = {}

        def set_(key: str, src: str, value: Any) -> None:
            host[key] = value
            mapped[key] = src

        address = h.get("address")
        if address is None:
            self.error((*old, "address"), "required field is missing: the node's internal IP address")
        elif not _ipv4(address):
            self.error(
                (*old, "address"),
                f"invalid IP address {address!r}: the node's internal IPv4 address, e.g. 192.168.1.10",
            )
        else:
            set_("address", "address", str(address))
        if h.get("sshUsername") is not None:
            set_("user", "sshUsername", h["sshUsername"])
        if h.get("sshPrivateKeyFile"):  # "" is KubeV's default: no key file
            set_("privateKeyFile", "sshPrivateKeyFile", h["sshPrivateKeyFile"])
        for key in ("labels", "annotations", "taints"):
            if h.get(key) is not None:
                set_(key, key, h[key])
        iface = h.get("tunnelInterface")
        if iface is not None:
            if isinstance(iface, str) and _IFACE.match(iface) and iface not in (".", ".."):
                set_("tunnelInterface", "tunnelInterface", iface)
            else:
                self.error(
                    (*old, "tunnelInterface"),
                    f"{iface!r} is not a Linux interface name: a per-node tunnelInterface is one name "
                    "of at most 15 characters (letters, digits, _ . -)",
                    hint="lists and regular expressions go in networkConfiguration.tunnelInterface",
                )
        kubelet = self.mapping((*old, "kubelet"), (*_NODE_KUBELET, *_KUBELET_GC), what="a node's kubelet")
        if kubelet:
            for key in _KUBELET_GC:
                if key in kubelet:
                    self.refuse(
                        (*old, "kubelet", key),
                        f"kvinstall cannot set {key} per node: KubeOne applies image garbage collection "
                        "settings cluster-wide only",
                        hint=f"set kubeletConfig.{key} instead",
                    )
            node_kubelet = {k: v for k, v in kubelet.items() if k in _NODE_KUBELET}
            if node_kubelet:
                set_("kubelet", "kubelet", node_kubelet)
        for key, src in mapped.items():
            self.out.pathmap[(*new, key)] = (*old, src)

    def network(self) -> None:
        loc: Loc = ("networkConfiguration",)
        net = self.mapping(loc, ("dnsServerIP", "networkCIDR", "serviceCIDR", "gatewayIP", "tunnelInterface"))
        net = net or {}
        # KubeV's defaults, which differ from kvinstall's.
        self.put(
            ("network", "podCIDR"), (*loc, "networkCIDR"), net.get("networkCIDR") or DEFAULT_NETWORK_CIDR
        )
        self.put(
            ("network", "serviceCIDR"), (*loc, "serviceCIDR"), net.get("serviceCIDR") or DEFAULT_SERVICE_CIDR
        )
        if net.get("gatewayIP") is not None:
            self.put(("network", "gateway"), (*loc, "gatewayIP"), net["gatewayIP"])
        dns = net.get("dnsServerIP")
        if dns is not None:
            self.dns_server(loc, dns, net)
        iface = net.get("tunnelInterface")
        if iface is not None and self.tunnel_interface((*loc, "tunnelInterface"), iface):
            self.put(("network", "tunnelInterface"), (*loc, "tunnelInterface"), iface)

    def dns_server(self, loc: Loc, dns: Any, net: dict[str, Any]) -> None:
        where = (*loc, "dnsServerIP")
        try:
            ip = ipaddress.ip_address(str(dns))
        except ValueError:
            self.error(where, f"dnsServerIP {dns!r} is not a valid IP address")
            return
        for key, default in (("serviceCIDR", DEFAULT_SERVICE_CIDR), ("networkCIDR", DEFAULT_NETWORK_CIDR)):
            try:
                cidr = ipaddress.ip_network(str(net.get(key) or default), strict=False)
            except ValueError:
                continue  # reported as the CIDR's own problem
            if ip.version == cidr.version and ip in cidr:
                self.error(
                    where,
                    f"dnsServerIP {ip} lies inside {key} {cidr}: it is the DNS resolver the platform uses "
                    "(e.g. 8.8.8.8 or the site's DNS server), not an address of the cluster",
                    hint="the cluster's own DNS service is set up without it",
                )
                return
        self.put(("network", "upstreamDNS"), where, str(ip))

    def tunnel_interface(self, loc: Loc, value: Any) -> bool:
        """The docs' rule: a name, a comma-separated list of names, or a regular expression (any
        value with a regex metacharacter, which is not name-checked)."""
        if not isinstance(value, str) or not value:
            self.error(
                loc, f"expected an interface name, list or regular expression, found {_kind_of(value)}"
            )
            return False
        if _REGEX_META & set(value):
            try:
                re.compile(value)
            except re.error as exc:
                self.error(loc, f"{value!r} is not a valid regular expression: {exc}")
                return False
            return True
        bad = [n for n in value.split(",") if not _IFACE.match(n.strip())]
        if bad:
            self.error(
                loc,
                f"{', '.join(repr(b) for b in bad)} is not a Linux interface name "
                "(at most 15 characters: letters, digits, _ . -)",
                hint='a name ("eth0"), a comma-separated list ("eth0,ens3") or a regular expression ("^eth[0-9]+$")',
            )
            return False
        return True

    def api_endpoint(self) -> None:
        loc: Loc = ("apiEndpoint",)
        api = self.mapping(loc, ("host", "alternativeNames"))
        if api is None:
            return
        if api.get("host") is None:
            self.error((*loc, "host"), "required field is missing: the hostname or IP of the Kubernetes API")
        else:
            self.put(("apiEndpoint", "host"), (*loc, "host"), api["host"])
        names = self.items((*loc, "alternativeNames"))
        for i, name in enumerate(names):
            if not (isinstance(name, str) and (_ip(name) or _DNS_NAME.match(name.lower()))):
                self.error(
                    (*loc, "alternativeNames", i),
                    f"{name!r} is neither an IP address nor a DNS name (a certificate's subject alternative name)",
                )
        if names:
            self.put(("apiEndpoint", "alternativeNames"), (*loc, "alternativeNames"), list(names))

    def load_balancer(self) -> None:
        loc: Loc = ("loadBalancer",)
        option = self.one_of(loc, ("none", "metallb"), "load balancer")
        if option == "metallb":
            lb = self.mapping((*loc, "metallb"), ("ipRange",)) or {}
            ip_range = lb.get("ipRange")
            if ip_range is None:
                self.error((*loc, "metallb", "ipRange"), "required field is missing: the address range")
                return
            if not _ip_range(ip_range):
                self.error(
                    (*loc, "metallb", "ipRange"),
                    f"ipRange {ip_range!r} is neither a CIDR (192.168.10.0/24) nor an inclusive range "
                    "(192.168.10.50-192.168.10.100)",
                )
                return
            # KubeV's MetalLB: one pool announced on the hosts' network (layer 2).
            dst: Loc = ("components", "metallb")
            self.put((*dst, "enabled"), (*loc, "metallb"), True)
            self.put((*dst, "pools"), (*loc, "metallb"), [{"name": "default"}])
            self.put((*dst, "pools", 0, "addresses", 0), (*loc, "metallb", "ipRange"), str(ip_range).strip())
        elif option == "none":
            self.mapping((*loc, "none"), ())

    def storage(self) -> None:
        loc: Loc = ("storage",)
        option = self.one_of(loc, ("none", "longhorn"), "storage")
        if option == "longhorn":
            self.mapping((*loc, "longhorn"), ())
            # Longhorn with its StorageClasses: the cluster default and a ReadWriteMany one.
            self.put(("components", "longhorn", "enabled"), (*loc, "longhorn"), True)
        elif option == "none":
            self.mapping((*loc, "none"), ())

    def kubevirt(self) -> None:
        loc: Loc = ("kubevirt",)
        kv = self.mapping(
            loc,
            ("developerConfiguration", "migrations", "commonInstancetypesDeployment", "permittedHostDevices"),
        )
        if kv is None:
            return
        dst: Loc = ("components", "kubevirt")
        self.out.pathmap[dst] = loc
        dev = self.mapping((*loc, "developerConfiguration"), ("featureGates", "useEmulation"))
        gates: list[Any] = []
        if dev is not None:
            gates = list(self.items((*loc, "developerConfiguration", "featureGates")))
            for i, gate in enumerate(gates):
                if not (isinstance(gate, str) and _GATE.match(gate)):
                    self.error(
                        (*loc, "developerConfiguration", "featureGates", i),
                        f"{gate!r} is not a feature gate name (letters, digits, dots and hyphens, "
                        "starting and ending with a letter or digit)",
                    )
            if "featureGates" in dev:
                self.put((*dst, "featureGates"), (*loc, "developerConfiguration", "featureGates"), gates)
            if "useEmulation" in dev:
                self.put(
                    (*dst, "useEmulation"),
                    (*loc, "developerConfiguration", "useEmulation"),
                    dev["useEmulation"],
                )
        if self.mapping((*loc, "migrations"), _MIGRATIONS) is not None:
            self.out.pathmap[(*dst, "migrations")] = (*loc, "migrations")
            self.copy((*loc, "migrations"), (*dst, "migrations"), _MIGRATIONS)
        cit = self.mapping((*loc, "commonInstancetypesDeployment"), ("enabled",))
        if cit is not None and cit.get("enabled") is not None:
            self.put(
                (*dst, "commonInstancetypes"),
                (*loc, "commonInstancetypesDeployment", "enabled"),
                cit["enabled"],
            )
        self.host_devices(loc, dst, gates)

    def host_devices(self, loc: Loc, dst: Loc, gates: list[Any]) -> None:
        phd = (*loc, "permittedHostDevices")
        if self.mapping(phd, ("pciHostDevices",)) is None:
            return
        devices = []
        for i, dev in enumerate(self.items((*phd, "pciHostDevices"))):
            if not isinstance(dev, dict):
                self.error((*phd, "pciHostDevices", i), f"expected a device mapping, found {_kind_of(dev)}")
                continue
            keys = ("pciVendorSelector", "resourceName", "externalResourceProvider")
            self.mapping((*phd, "pciHostDevices", i), keys, what="a PCI host device")
            devices.append(dict(dev))
        self.put((*dst, "permittedHostDevices", "pciHostDevices"), (*phd, "pciHostDevices"), devices)
        self.out.pathmap[(*dst, "permittedHostDevices")] = phd
        if devices and "HostDevices" not in gates:
            # KubeVirt passes devices through only with its HostDevices gate: the permission implies it.
            self.put(
                (*dst, "featureGates"),
                (*loc, "developerConfiguration", "featureGates"),
                [*gates, "HostDevices"],
            )
            self.warn(
                phd,
                "KubeVirt passes PCI devices through only with its HostDevices feature gate: kvinstall enables it",
            )

    def registry(self, loc: Loc) -> tuple[str, str] | None:
        """(HOST[:PORT], scheme) of an OCIConfiguration's address."""
        address = self.node((*loc, "address"))
        if address is None:
            self.error(
                (*loc, "address"),
                "required field is missing: the registry's URL, e.g. https://10.0.0.10:5000",
            )
            return None
        text = str(address).strip()
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "https", text
        rest = rest.rstrip("/")
        host, _, port = rest.partition(":")
        problem = None
        if scheme not in ("http", "https"):
            problem = f"the protocol must be http or https, not {scheme!r}"
        elif "/" in rest:
            problem = "give the registry only (protocol, host and port), without a path"
        elif not host or not (_ip(host) or _DNS_NAME.match(host.lower())):
            problem = "the host is neither an IP address nor a DNS name"
        elif port and not (port.isdigit() and 0 < int(port) < 65536):
            problem = "the port is not a number between 1 and 65535"
        if problem:
            self.error((*loc, "address"), f"registry address {text!r}: {problem}")
            return None
        return rest, scheme

    def offline(self) -> None:
        loc: Loc = ("offlineSettings",)
        keys = (
            "enabled",
            "containerRegistry",
            "helmRegistry",
            "packageRepository",
            "packageRepositoryKeyFingerprint",
        )
        off = self.mapping(loc, keys)
        if off is None:
            return
        enabled = off.get("enabled") is True
        if "enabled" in off:
            self.put(("offline", "enabled"), (*loc, "enabled"), off["enabled"])
        self.out.pathmap[("offline",)] = loc
        images = None
        if self.mapping((*loc, "containerRegistry"), _OCI) is not None:
            images = self.registry((*loc, "containerRegistry"))
        elif enabled:
            self.error(
                (*loc, "containerRegistry"),
                "required when offline mode is enabled: the registry holding every image",
            )
        if images is not None:
            self.images_registry(loc, images)
        if self.mapping((*loc, "helmRegistry"), _OCI) is not None:
            charts = self.registry((*loc, "helmRegistry"))
            if charts is not None and images is not None:
                self.charts_registry(loc, images, charts)
        fingerprint = off.get("packageRepositoryKeyFingerprint")
        if fingerprint is not None and not _FINGERPRINT.match(str(fingerprint).strip()):
            self.error(
                (*loc, "packageRepositoryKeyFingerprint"),
                f"{fingerprint!r} is not a key fingerprint (40 hexadecimal digits, as gpg --show-keys prints it)",
            )
        refusals = {
            "packageRepository": (
                "kvinstall takes no OS package repository from a KubeV file: it needs the repository's signing "
                "key file and the hosts' OS releases, which the file does not give",
                "remove it, then set offline.hostPackages and offline.packageRepository in the converted file "
                "(`kvinstall mirror serve -f` writes them for a repository it serves from the bundle)",
            ),
            "packageRepositoryKeyFingerprint": (
                "kvinstall checks the package signing key by its file (offline.packageRepository.signingKey), "
                "not by a fingerprint",
                "remove it together with packageRepository",
            ),
        }
        for key, (why, hint) in refusals.items():
            if key not in off:
                continue
            if enabled:
                self.refuse((*loc, key), why, hint=hint)
            else:
                self.warn((*loc, key), f"offline mode is off: {key} has no effect", code=NO_EFFECT)

    def images_registry(self, loc: Loc, images: tuple[str, str]) -> None:
        src: Loc = (*loc, "containerRegistry")
        host, scheme = images
        self.put(("offline", "registry"), (*src, "address"), host)
        if scheme == "http":
            self.put(("offline", "insecure"), (*src, "address"), True)
        elif self.node((*src, "insecure")) is not None:
            self.put(("offline", "insecureSkipVerify"), (*src, "insecure"), self.node((*src, "insecure")))
        self.credentials(src, ("offline", "credentials"))

    def charts_registry(self, loc: Loc, images: tuple[str, str], charts: tuple[str, str]) -> None:
        """KubeV's helmRegistry: kvinstall reads its charts from the container registry, so the same
        registry is required; its own login and TLS setting are kept (offline.charts)."""
        src: Loc = (*loc, "helmRegistry")
        if charts[0] != images[0]:
            self.refuse(
                (*src, "address"),
                f"kvinstall does not read charts from a registry ({charts[0]}) other than the container "
                f"registry ({images[0]}): it keeps its charts and manifests there (`kvinstall mirror push` "
                "puts them there)",
                hint="give helmRegistry the containerRegistry's address",
            )
            return
        if charts[1] != images[1]:
            self.error(
                (*src, "address"), f"the same registry cannot be served over both {images[1]} and {charts[1]}"
            )
            return
        container = self.node((*loc, "containerRegistry")) or {}
        helm = self.node(src) or {}
        same_login = all(container.get(k) == helm.get(k) for k in ("username", "password"))
        same_tls = bool(container.get("insecure")) == bool(helm.get("insecure"))
        if same_login and same_tls:
            return  # reads charts exactly as the images are pulled: nothing of its own
        self.out.data.setdefault("offline", {})["charts"] = {}
        self.out.pathmap[("offline", "charts")] = src
        if charts[1] == "https" and helm.get("insecure") is not None:
            self.put(("offline", "charts", "insecureSkipVerify"), (*src, "insecure"), helm["insecure"])
        self.credentials(src, ("offline", "charts", "credentials"))

    def credentials(self, src: Loc, dst: Loc) -> None:
        user, password = self.node((*src, "username")), self.node((*src, "password"))
        if user is None and password is None:
            return
        if user is None or password is None:
            missing = "password" if password is None else "username"
            self.error((*src, missing), f"{missing} is missing: basic auth needs both username and password")
            return
        self.put((*dst, "username"), (*src, "username"), user)
        self.secret((*dst, "password"), (*src, "password"), password)

    def idp(self) -> None:
        loc: Loc = ("idp",)
        option = self.one_of(loc, ("dex", "none"), "identity provider")
        if option == "none":
            self.mapping((*loc, "none"), ())
        if option != "dex":
            return
        dex_loc: Loc = (*loc, "dex")
        dex = self.mapping(dex_loc, ("issuer", "connectors", "staticClients", "enablePasswordDB")) or {}
        self.out.pathmap[("auth",)] = dex_loc
        if dex.get("issuer") is None:
            self.error((*dex_loc, "issuer"), "required field is missing: the URL Dex is reachable at")
        else:
            self.put(("auth", "issuer"), (*dex_loc, "issuer"), dex["issuer"])
        connectors = self.items((*dex_loc, "connectors"))
        password_db = dex.get("enablePasswordDB") is True
        if not connectors and not password_db:
            self.error(dex_loc, "at least one of connectors or enablePasswordDB: true must be set")
        # Dex's password DB is kvinstall's mode basic; connectors come with it (or alone: mode oidc).
        mode_from = (*dex_loc, "enablePasswordDB") if password_db else (*dex_loc, "connectors")
        self.put(("auth", "mode"), mode_from, "basic" if password_db else "oidc")
        if password_db:
            self.warn(
                (*dex_loc, "enablePasswordDB"),
                "Dex's password login: kvinstall also creates an admin user (its password is written to a "
                "0600 file in the state directory)",
            )
        for i, conn in enumerate(connectors):
            self.connector((*dex_loc, "connectors", i), ("auth", "oidc", "connectors", i), conn)
        for i, client in enumerate(self.items((*dex_loc, "staticClients"))):
            self.static_client((*dex_loc, "staticClients", i), ("auth", "staticClients", i), client)

    def connector(self, old: Loc, new: Loc, conn: Any) -> None:
        if not isinstance(conn, dict):
            self.error(old, f"expected a connector mapping, found {_kind_of(conn)}")
            return
        self.mapping(old, ("type", "id", "name", "config"), what="a connector")
        self.out.pathmap[new] = old
        self.copy(old, new, ("type", "id", "name"))
        config = self.node((*old, "config"))
        if config is None:
            return
        if not isinstance(config, dict):
            self.error((*old, "config"), f"expected a mapping, found {_kind_of(config)}")
            return
        settings = {
            k: v for k, v in config.items() if not (str(k).lower() in _SECRET_KEYS and isinstance(v, str))
        }
        self.put((*new, "config"), (*old, "config"), settings)
        for key, value in config.items():
            if str(key).lower() in _SECRET_KEYS and isinstance(value, str):
                self.secret((*new, "config", key), (*old, "config", key), value)

    def static_client(self, old: Loc, new: Loc, client: Any) -> None:
        if not isinstance(client, dict):
            self.error(old, f"expected a static client mapping, found {_kind_of(client)}")
            return
        self.mapping(old, ("id", "name", "secret", "redirectURIs", "public"), what="a static client")
        self.out.pathmap[new] = old
        # A Dex static client needs a name: KubeV's table marks it required.
        self.copy(old, new, ("id", "name", "redirectURIs", "public"))
        if client.get("secret") is not None:
            self.secret((*new, "secret"), (*old, "secret"), client["secret"])

    def dashboard(self) -> None:
        loc: Loc = ("dashboard",)
        dash = self.mapping(loc, ("enabled", "dashboardURL", "imagePullSecret", "auth"))
        if dash is None:
            return
        option = self.one_of((*loc, "auth"), ("none", "basic", "oidc"), "dashboard authentication")
        if option == "basic":
            self.mapping((*loc, "auth", "basic"), ("secretName", "secretNamespace", "sessionDuration"))
        elif option == "oidc":
            keys = ("issuerURL", "clientID", "clientSecret", "redirectURL", "scopes")
            self.mapping((*loc, "auth", "oidc"), keys)
        elif option == "none":
            self.mapping((*loc, "auth", "none"), ())
        if dash.get("enabled") is True:
            self.refuse(
                (*loc, "enabled"),
                "kvinstall does not deploy the KubeV API server and web dashboard",
                hint="set dashboard.enabled: false, or remove the section",
            )
            return
        others = [k for k in dash if k != "enabled"]
        if others:
            self.warn(
                loc,
                f"the dashboard is not enabled: {', '.join(f'dashboard.{k}' for k in others)} "
                f"{'has' if len(others) == 1 else 'have'} no effect",
                code=NO_EFFECT,
            )

    def image_pull_secret(self) -> None:
        value = self.node(("imagePullSecret",))
        if value is None:
            return
        from kvinstall.config.dockerconfig import docker_config_logins

        if isinstance(value, str):
            try:
                docker_config_logins(value)
            except ValueError as exc:
                self.error(("imagePullSecret",), str(exc))
                return
        self.secret(("imagePullSecret",), ("imagePullSecret",), value)

    def kubelet_config(self) -> None:
        loc: Loc = ("kubeletConfig",)
        if self.mapping(loc, (*_NODE_KUBELET, *_KUBELET_GC), what="kubeletConfig") is None:
            return
        self.out.pathmap[("kubelet",)] = loc
        self.copy(loc, ("kubelet",), (*_NODE_KUBELET, *_KUBELET_GC))


def _child(node: Any, part: str | int, empty: Any) -> Any:
    """node[part], created as `empty` when missing (lists grow to the index)."""
    if isinstance(part, int):
        while len(node) <= part:
            node.append({} if empty is not None else None)
        if node[part] is None or (node[part] == {} and isinstance(empty, list)):
            node[part] = empty
        return node[part]
    return node.setdefault(part, empty)


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ipv4(value: Any) -> bool:
    try:
        return isinstance(ipaddress.ip_address(str(value)), ipaddress.IPv4Address) and isinstance(value, str)
    except ValueError:
        return False


def _ip_range(value: Any) -> bool:
    """MetalLB's two formats: a CIDR, or an inclusive START-END range of one address family."""
    try:
        address_range(str(value))
    except ValueError:
        return False
    return True
